"""The answer generator: answers from verified evidence only, with validated ``[n]`` citations.

It abstains without calling the LLM when there is no evidence, and abstains after the call when
the model says the evidence does not contain the answer. Evidence that does not fit the model's
context window is left out (and the trace says so) rather than overflowing the prompt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ragpipe.context import RunContext
from ragpipe.errors import Truncated
from ragpipe.generate.abstain import NOT_FOUND_TEXT, says_not_found, starts_with_not_found
from ragpipe.generate.citations import resolve_citations
from ragpipe.generate.repair import (
    attribute_citations,
    drop_repeated_lines,
    drop_repeated_sentences,
    trim_unfinished_sentence,
)
from ragpipe.llm.base import LLM, Completion
from ragpipe.schema import Answer, ScoredChunk, TraceEvent

PER_ITEM_OVERHEAD_TOKENS = 16


@dataclass
class TokenEvent:
    """A piece of answer text as the model produces it (before citation validation)."""

    text: str
    kind: str = "token"


@dataclass
class AnswerEvent:
    """The last event of a stream: the final answer with validated citations."""

    answer: Answer
    kind: str = "answer"


@dataclass
class Generation:
    answer: Answer
    events: list[TraceEvent] = field(default_factory=list)


class Generator:
    """Renders ``prompt`` over the evidence, calls the LLM, validates citations or abstains."""

    def __init__(self, prompt: str = "answer.cited", node: str = "generate", max_tokens: int | None = None) -> None:
        self.prompt = prompt
        self.node = node
        self.max_tokens = max_tokens

    # -- prompt -----------------------------------------------------------------------------
    def _fit(self, question: str, evidence: list[ScoredChunk], ctx: RunContext, llm: LLM) -> tuple[list[ScoredChunk], list[TraceEvent]]:
        """The evidence prefix that fits the context window next to the prompt and the answer."""
        prompt = ctx.prompts.get(self.prompt)
        budget = llm.capabilities.context_window - (self.max_tokens or prompt.max_tokens)
        used = sum(llm.count_tokens(m.content) for m in prompt.render(question=question, evidence=[]))
        fitted: list[ScoredChunk] = []
        for item in evidence:
            cost = llm.count_tokens(item.chunk.text) + PER_ITEM_OVERHEAD_TOKENS
            if used + cost > budget:
                break
            fitted.append(item)
            used += cost
        events = []
        if len(fitted) < len(evidence):
            events.append(
                TraceEvent(
                    node=self.node,
                    kind="truncation",
                    message=f"left out {len(evidence) - len(fitted)} evidence chunk(s) that do not fit the context window",
                    data={"kept": len(fitted), "left_out": [e.id for e in evidence[len(fitted):]]},
                )
            )
        return fitted, events

    def _messages(self, question: str, evidence: list[ScoredChunk], ctx: RunContext) -> list[Any]:
        items = [{"text": e.chunk.text, "source": e.chunk.source or e.chunk.doc_id} for e in evidence]
        return ctx.prompts.get(self.prompt).render(question=question, evidence=items)

    def _max_tokens(self, ctx: RunContext) -> int:
        return self.max_tokens or ctx.prompts.get(self.prompt).max_tokens

    # -- answer -----------------------------------------------------------------------------
    def _abstain(self, question: str, reason: str, events: list[TraceEvent]) -> Generation:
        events.append(TraceEvent(node=self.node, kind="abstain", message=reason))
        return Generation(Answer(question=question, text=NOT_FOUND_TEXT, abstained=True), events)

    def _finish(self, question: str, completion: Completion, evidence: list[ScoredChunk], events: list[TraceEvent]) -> Generation:
        raw = completion.text
        if completion.truncated:
            events.append(
                TraceEvent(node=self.node, kind="truncation", message="the answer stopped at max_tokens; kept the partial text",
                           data={"raw": raw})
            )
        if not raw.strip():
            events.append(TraceEvent(node=self.node, kind="fallback", message="the model returned an empty answer"))
            return self._abstain(question, "empty model output", events)
        raw, repeated = drop_repeated_lines(raw)
        if repeated:
            events.append(TraceEvent(node=self.node, kind="repair", message=f"removed {repeated} repeated line(s)"))
        raw, repeated = drop_repeated_sentences(raw)
        if repeated:
            events.append(TraceEvent(node=self.node, kind="repair", message=f"removed {repeated} repeated sentence(s)"))
        if completion.truncated:
            raw, trimmed = trim_unfinished_sentence(raw)
            if trimmed:
                events.append(TraceEvent(node=self.node, kind="repair",
                                         message="cut the unfinished last sentence of the truncated answer"))
        cited = resolve_citations(raw, evidence, node=self.node)
        events.extend(cited.events)
        if starts_with_not_found(raw) or (says_not_found(raw) and not cited.citations):
            return self._abstain(question, "the model said the evidence does not contain the answer", events)
        if not cited.citations:
            attributed_text, attributed = attribute_citations(cited.text, evidence)
            if attributed:
                cited = resolve_citations(attributed_text, evidence, node=self.node)
                events.append(
                    TraceEvent(node=self.node, kind="repair",
                               message=f"the model cited nothing; attributed {len(attributed)} sentence(s) to the "
                                       "evidence they restate (word overlap)",
                               data={"sentences": {str(k): v for k, v in attributed.items()}})
                )
            else:
                events.append(
                    TraceEvent(node=self.node, kind="uncited", message="the answer cites no evidence; treat it with care")
                )
        return Generation(Answer(question=question, text=cited.text, citations=cited.citations), events)

    async def agenerate(self, question: str, evidence: list[ScoredChunk], ctx: RunContext) -> Generation:
        """Answer ``question`` from ``evidence`` (abstaining when it cannot)."""
        events: list[TraceEvent] = []
        if not evidence:
            return self._abstain(question, "no evidence survived selection and verification", events)
        llm = ctx.llm_for(self.node)
        fitted, events = self._fit(question, evidence, ctx, llm)
        if not fitted:
            return self._abstain(question, "no evidence fits the context window", events)
        completion = await self._call(llm, self._messages(question, fitted, ctx), ctx)
        return self._finish(question, completion, fitted, events)

    async def _call(self, llm: LLM, messages: list[Any], ctx: RunContext) -> Completion:
        try:
            return await llm.chat(messages, max_tokens=self._max_tokens(ctx), temperature=0.0)
        except Truncated as err:  # some wrappers raise instead of returning finish_reason="length"
            return Completion(text=err.raw or "", finish_reason="length")

    async def astream(self, question: str, evidence: list[ScoredChunk], ctx: RunContext) -> AsyncIterator[TokenEvent | AnswerEvent | Generation]:
        """Yield ``TokenEvent``s as text arrives, then the ``Generation`` (validated citations).

        Streaming backends (embedded llama.cpp, OpenAI-compatible servers) yield text piece by piece
        through ``chat_stream``; others yield the whole text as one event.
        """
        if not evidence:
            generation = self._abstain(question, "no evidence survived selection and verification", [])
            yield TokenEvent(generation.answer.text)
            yield generation
            return
        llm = ctx.llm_for(self.node)
        fitted, events = self._fit(question, evidence, ctx, llm)
        if not fitted:
            generation = self._abstain(question, "no evidence fits the context window", events)
            yield TokenEvent(generation.answer.text)
            yield generation
            return
        messages = self._messages(question, fitted, ctx)
        stream = getattr(llm, "chat_stream", None)
        if stream is None:
            completion = await self._call(llm, messages, ctx)
            yield TokenEvent(completion.text)
        else:
            pieces: list[str] = []
            async for piece in stream(messages, max_tokens=self._max_tokens(ctx), temperature=0.0):
                pieces.append(piece)
                yield TokenEvent(piece)
            completion = Completion(text="".join(pieces))
        yield self._finish(question, completion, fitted, events)
