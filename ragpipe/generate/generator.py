"""The answer generator: answers from verified evidence only, with validated ``[n]`` citations.

It abstains without calling the LLM when there is no evidence, and abstains after the call when
the model says the evidence does not contain the answer. Evidence that does not fit the model's
context window is left out (and the trace says so) rather than overflowing the prompt.

Answer modes: ``generate`` writes the answer with the LLM; ``extractive`` quotes the evidence
sentences that best answer the question (no LLM); ``auto`` (the default) generates and, when the
answer is degenerate (only ``[1]``, echoed markup, the question again, a refusal…) even after one
retry with a simpler answer-first prompt, answers by extraction instead. ``generate`` abstains in
that case. ``auto`` also quotes the evidence when a usable generated answer (or an abstention) is
weaker than the evidence's best sentence (see :mod:`ragpipe.generate.choose`). Every retry,
fallback and choice is in the trace.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ragpipe.concurrency import run_blocking
from ragpipe.context import RunContext
from ragpipe.errors import ConfigError, Truncated
from ragpipe.generate.abstain import NOT_FOUND_TEXT, says_not_found, starts_with_not_found
from ragpipe.generate.choose import prefer_quote, quote_could_win
from ragpipe.generate.citations import resolve_citations
from ragpipe.generate.degenerate import degenerate_reason
from ragpipe.generate.extractive import Extraction, extract_answer
from ragpipe.generate.quotes import pin_citations
from ragpipe.generate.repair import (
    attribute_citations,
    drop_repeated_lines,
    drop_repeated_sentences,
    strip_answer_label,
    trim_unfinished_sentence,
)
from ragpipe.llm.base import LLM, ChatOptions, Completion
from ragpipe.prompts import numbered_documents
from ragpipe.schema import Answer, ScoredChunk, TraceEvent
from ragpipe.select.budget import fit_leading

ANSWER_MODES = ("extractive", "generate", "auto")
RETRY_PROMPT = "answer.simple"


def check_answer_mode(mode: str) -> str:
    """``mode`` when it is an answer mode, else a ``ConfigError`` naming the choices."""
    if mode not in ANSWER_MODES:
        raise ConfigError(f"answer mode '{mode}' is not one of: {', '.join(ANSWER_MODES)}")
    return mode


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
    """Renders ``prompt`` over the evidence, calls the LLM, validates citations or abstains.

    ``answer`` is the answer mode (``extractive`` | ``generate`` | ``auto``); None reads the
    pipeline setting ``answer`` (``auto`` when there are no settings).
    """

    def __init__(self, prompt: str = "answer.cited", node: str = "generate", max_tokens: int | None = None,
                 answer: str | None = None, retry_prompt: str = RETRY_PROMPT) -> None:
        if answer is not None:
            check_answer_mode(answer)
        self.prompt = prompt
        self.node = node
        self.max_tokens = max_tokens
        self.answer = answer
        self.retry_prompt = retry_prompt

    def mode(self, ctx: RunContext) -> str:
        """The answer mode for this run: the generator's own, else the pipeline setting."""
        return self.answer or getattr(ctx.settings, "answer", None) or "auto"

    # -- prompt -----------------------------------------------------------------------------
    def _fit(self, question: str, evidence: list[ScoredChunk], ctx: RunContext, llm: LLM,
             prompt_name: str | None = None) -> tuple[list[ScoredChunk], list[TraceEvent]]:
        """The evidence prefix that fits the context window next to the prompt and the answer."""
        name = prompt_name or self.prompt
        fit = fit_leading(lambda k: self._messages(question, evidence[:k], ctx, name), len(evidence), llm,
                          output_tokens=self._options(ctx, name)["max_tokens"])
        fitted = evidence[:fit.kept]
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

    def _messages(self, question: str, evidence: list[ScoredChunk], ctx: RunContext,
                  prompt_name: str | None = None) -> list[Any]:
        return ctx.prompts.get(prompt_name or self.prompt).render(question=question, documents=numbered_documents(evidence))

    def _options(self, ctx: RunContext, prompt_name: str | None = None) -> ChatOptions:
        return ctx.prompts.get(prompt_name or self.prompt).chat_options(max_tokens=self.max_tokens)

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
            return Generation(Answer(question=question, text=""), events)
        raw, labelled = strip_answer_label(raw)
        if labelled:
            events.append(TraceEvent(node=self.node, kind="repair", message="removed the leading 'Answer:' label"))
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
        citations = pin_citations(cited.text, cited.citations, evidence)
        return Generation(Answer(question=question, text=cited.text, citations=citations), events)

    # -- degenerate answers: retry, then extract -------------------------------------------
    def _degenerate(self, generation: Generation, question: str, evidence: list[ScoredChunk]) -> str | None:
        if generation.answer.abstained:
            return None
        reason = degenerate_reason(generation.answer.text, question, evidence)
        if reason is not None:
            generation.events.append(
                TraceEvent(node=self.node, kind="degenerate", message=f"the answer is not usable: {reason}",
                           data={"reason": reason, "text": generation.answer.text,
                                 "cited": [c.chunk_id for c in generation.answer.citations]})
            )
        return reason

    async def _recover(self, question: str, first: Generation, evidence: list[ScoredChunk], ctx: RunContext,
                       llm: LLM, mode: str) -> Generation:
        """Keep a usable answer; else ask once more with the simpler prompt; else extract or abstain."""
        if self._degenerate(first, question, evidence) is None:
            return await self._choose(question, first, evidence, ctx, mode)
        events = first.events
        fitted, dropped = await run_blocking(self._fit, question, evidence, ctx, llm, self.retry_prompt)
        events.extend(dropped)
        if fitted:
            events.append(TraceEvent(node=self.node, kind="retry",
                                     message=f"asked again with the simpler answer-first prompt '{self.retry_prompt}'"))
            messages = self._messages(question, fitted, ctx, self.retry_prompt)
            completion = await self._call(llm, messages, ctx, self.retry_prompt)
            second = self._finish(question, completion, fitted, events)
            if self._degenerate(second, question, fitted) is None:
                return await self._choose(question, second, fitted, ctx, mode)
        if mode == "auto":
            return await self._extract(question, evidence, ctx, events, because="the generated answer stayed unusable")
        return self._abstain(question, "no usable generated answer after the retry", events)

    async def _choose(self, question: str, generation: Generation, evidence: list[ScoredChunk], ctx: RunContext,
                mode: str) -> Generation:
        """In ``auto``: the usable generated answer (or abstention), unless the evidence's best sentence
        answers better; the replaced answer stays in the trace."""
        answer = generation.answer
        if mode != "auto" or not quote_could_win(None if answer.abstained else answer.text, question, evidence):
            return generation
        start = time.perf_counter()
        extraction = await self._extraction(question, evidence, ctx, generation.events)
        reason = None if extraction is None else prefer_quote(
            None if answer.abstained else answer.text, question, evidence, extraction)
        if reason is None:
            return generation
        replaced = {"text": "" if answer.abstained else answer.text, "abstained": answer.abstained,
                    "cited": [c.chunk_id for c in answer.citations]}
        return self._quote(question, extraction, evidence, ctx, generation.events, because=reason, start=start,
                           replaced=replaced)

    async def _extraction(self, question: str, evidence: list[ScoredChunk], ctx: RunContext,
                          events: list[TraceEvent]) -> Extraction | None:
        """The best evidence sentences, scored off the event loop (embedding the sentences blocks)."""
        try:
            return await run_blocking(extract_answer, question, evidence, ctx.embedder)
        except Exception as err:  # an embedder failure must not cost the answer: score by words only
            events.append(TraceEvent(node=self.node, kind="fallback",
                                     message=f"sentence embedding failed ({type(err).__name__}: {err}); scored by words only"))
            return extract_answer(question, evidence, None)

    async def _extract(self, question: str, evidence: list[ScoredChunk], ctx: RunContext, events: list[TraceEvent],
                       because: str) -> Generation:
        start = time.perf_counter()
        extraction = await self._extraction(question, evidence, ctx, events)
        return self._quote(question, extraction, evidence, ctx, events, because=because, start=start)

    def _quote(self, question: str, extraction: Extraction | None, evidence: list[ScoredChunk], ctx: RunContext,
               events: list[TraceEvent], because: str, start: float,
               replaced: dict[str, Any] | None = None) -> Generation:
        if extraction is None:
            return self._abstain(question, "no evidence sentence to quote", events)
        data = {"because": because, "scores": [round(c.score, 4) for c in extraction.quoted],
                "scoring": "words+embedding" if ctx.embedder is not None else "words",
                "seconds": round(time.perf_counter() - start, 4)}
        if replaced is not None:
            data["replaced"] = replaced
        events.append(
            TraceEvent(
                node=self.node,
                kind="extractive",
                message=f"answered with {len(extraction.quoted)} quoted evidence sentence(s), no LLM ({because})",
                data=data,
            )
        )
        answer = Answer(question=question, text=extraction.text, citations=extraction.citations, mode="extracted")
        return Generation(answer, events)

    # -- answer -----------------------------------------------------------------------------
    async def agenerate(self, question: str, evidence: list[ScoredChunk], ctx: RunContext) -> Generation:
        """Answer ``question`` from ``evidence`` in the run's answer mode (abstaining when it cannot)."""
        events: list[TraceEvent] = []
        if not evidence:
            return self._abstain(question, "no evidence survived selection and verification", events)
        mode = self.mode(ctx)
        if mode == "extractive":
            return await self._extract(question, evidence, ctx, events, because="answer mode is extractive")
        llm = ctx.llm_for(self.node)
        fitted, events = await run_blocking(self._fit, question, evidence, ctx, llm)  # tokenizers block
        if not fitted:
            return self._abstain(question, "no evidence fits the context window", events)
        completion = await self._call(llm, self._messages(question, fitted, ctx), ctx)
        return await self._recover(question, self._finish(question, completion, fitted, events), fitted, ctx, llm, mode)

    async def _call(self, llm: LLM, messages: list[Any], ctx: RunContext, prompt_name: str | None = None) -> Completion:
        try:
            return await llm.chat(messages, temperature=0.0, **self._options(ctx, prompt_name))
        except Truncated as err:  # some wrappers raise instead of returning finish_reason="length"
            return Completion(text=err.raw or "", finish_reason="length")

    async def astream(self, question: str, evidence: list[ScoredChunk], ctx: RunContext) -> AsyncIterator[TokenEvent | AnswerEvent | Generation]:
        """Yield ``TokenEvent``s as text arrives, then the ``Generation`` (validated citations).

        Streaming backends (embedded llama.cpp, OpenAI-compatible servers) yield text piece by piece
        through ``chat_stream``; others yield the whole text as one event. When the streamed answer
        is degenerate, the final ``Generation`` holds the retried or extracted answer instead.
        """
        if not evidence:
            generation = self._abstain(question, "no evidence survived selection and verification", [])
            yield TokenEvent(generation.answer.text)
            yield generation
            return
        mode = self.mode(ctx)
        if mode == "extractive":
            generation = await self._extract(question, evidence, ctx, [], because="answer mode is extractive")
            yield TokenEvent(generation.answer.text)
            yield generation
            return
        llm = ctx.llm_for(self.node)
        fitted, events = await run_blocking(self._fit, question, evidence, ctx, llm)  # tokenizers block
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
            async for piece in stream(messages, temperature=0.0, **self._options(ctx)):
                pieces.append(piece)
                yield TokenEvent(piece)
            completion = Completion(text="".join(pieces))
        yield await self._recover(question, self._finish(question, completion, fitted, events), fitted, ctx, llm, mode)
