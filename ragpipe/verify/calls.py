"""How the verifier's checks call the LLM: which node and prompt, how much of each chunk, and the
trace events of each call, worded the same way for every kind of check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragpipe.errors import LLMError
from ragpipe.llm.base import Completion
from ragpipe.schema import TraceEvent


@dataclass(frozen=True)
class CallSite:
    """Where a check's calls go (``node``'s LLM), with which prompt, showing ``chunk_chars`` of each chunk."""

    prompt: str
    node: str = "verify"
    chunk_chars: int = 1200

    def shown(self, text: str) -> str:
        return text[: self.chunk_chars]


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
    if method not in UNREPAIRED:
        events.append(TraceEvent(node=node, kind="repair", message=f"{what} read via {method}",
                                 data={**ids, "method": method}))
    return events
