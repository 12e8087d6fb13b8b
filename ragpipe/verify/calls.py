"""How the verifier's checks call the LLM: which node and prompt, how much of each chunk, and the
trace events of each call, worded the same way for every kind of check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragpipe.errors import LLMError
from ragpipe.llm.base import ABANDONED, Completion
from ragpipe.prompts import numbered_documents
from ragpipe.schema import ScoredChunk, TraceEvent

if TYPE_CHECKING:
    from ragpipe.context import RunContext


@dataclass(frozen=True)
class CallSite:
    """Where a check's calls go (``node``'s LLM), with which prompt, showing ``chunk_chars`` of each chunk."""

    prompt: str
    node: str = "verify"
    chunk_chars: int = 1200

    def shown(self, text: str) -> str:
        return text[: self.chunk_chars]


async def ask_over_passages(
    call: CallSite, evidence: Sequence[ScoredChunk], ctx: RunContext, **variables: Any,
) -> Completion:
    """One temperature-0 call of ``call``'s prompt (``variables`` and the numbered passages); raises
    :class:`LLMError`.

    No json_schema request: the replies are read tolerantly, so any backend's plain chat will do.
    A reply that starts quoting passages is an echo, so it stops there; one that matches the
    prompt's ``abandon_at`` has left the format it was asked for, so the embedded backend stops there too.
    """
    template = ctx.prompts.get(call.prompt)
    messages = template.render(**variables, documents=numbered_documents(evidence, call.shown))
    return await ctx.llm_for(call.node).chat(messages, temperature=0.0,
                                             **template.chat_options(extra_stop=("<data", "</data>")))


# Parse methods that read the reply as asked, or found nothing to read: no repair to report.
UNREPAIRED = ("json:strict", "none", "none_word", "as_asked")


def call_failed(node: str, what: str, err: LLMError, **ids: Any) -> TraceEvent:
    """The event of a call that raised: the node falls back, and the trace says why."""
    return TraceEvent(node=node, kind="llm_error", message=f"{what} call failed: {err}",
                      data={**ids, "error": type(err).__name__})


def reply_events(node: str, what: str, completion: Completion, *, method: str, readable: bool,
                 ids: dict[str, Any] | None = None, **data: Any) -> list[TraceEvent]:
    """The reply as it came, and whether it was cut off at max_tokens or read leniently."""
    ids = ids or {}
    events = [TraceEvent(node=node, kind="llm_reply", message=what,
                         data={**ids, "raw": completion.text, "parse": method, "readable": readable,
                               "finish_reason": completion.finish_reason, **data})]
    if completion.truncated:
        events.append(TraceEvent(node=node, kind="truncation", message=f"{what} stopped at max_tokens; read what was there",
                                 data={**ids, "readable": readable}))
    elif completion.finish_reason == ABANDONED:
        events.append(TraceEvent(node=node, kind="truncation",
                                 message=f"{what} left the asked format, so it was stopped there; read what was there",
                                 data={**ids, "readable": readable, "abandoned": True}))
    if method not in UNREPAIRED:
        events.append(TraceEvent(node=node, kind="repair", message=f"{what} read via {method}",
                                 data={**ids, "method": method}))
    return events
