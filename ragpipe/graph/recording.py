"""Per-query contexts: a fresh usage meter for every query, its LLM time budget, and optional
prompt/output recording.

A pipeline's ``RunContext`` is shared by all queries; ``query_context`` derives a private copy
so usage adds up per answer, every LLM call of the query goes through the query's
``CallBudget`` (deadline and per-node breaker) when one is given, and with ``record=True`` every
prompt and raw LLM output is kept as an ``llm_call`` trace event (what ``ragpipe ask --trace``
prints).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ragpipe.context import RunContext
from ragpipe.errors import redact
from ragpipe.llm.base import LLM, ChatRequest, Completion
from ragpipe.llm.deadline import Budgeted, CallBudget
from ragpipe.llm.wrappers import UsageMeter, Wrapper
from ragpipe.schema import TraceEvent


class Recorder:
    """Collects ``llm_call`` events from any thread or coroutine of one query."""

    def __init__(self) -> None:
        self._events: list[TraceEvent] = []
        self._lock = threading.Lock()

    def add(self, event: TraceEvent) -> None:
        with self._lock:
            self._events.append(event)

    def events(self) -> list[TraceEvent]:
        with self._lock:
            return list(self._events)


def _messages(request: ChatRequest) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in request.messages]


class Recording(Wrapper):
    """Records each request's messages and the raw completion (or the error) under ``node``."""

    def __init__(self, inner: LLM, recorder: Recorder, node: str) -> None:
        super().__init__(inner)
        self.recorder = recorder
        self.node = node

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        pieces: list[str] = []
        async for piece in self.inner.stream(request):  # type: ignore[attr-defined]
            pieces.append(piece)
            yield piece
        self.recorder.add(TraceEvent(node=self.node, kind="llm_call", message="streamed",
                                     data={"messages": _messages(request), "raw": "".join(pieces),
                                           "max_tokens": request.max_tokens}))

    async def complete(self, request: ChatRequest) -> Completion:
        messages = _messages(request)
        try:
            completion = await self.inner.complete(request)  # type: ignore[attr-defined]
        except Exception as err:
            self.recorder.add(TraceEvent(node=self.node, kind="llm_call", message=redact(f"failed: {err}"),
                                         data={"messages": messages, "error": redact(repr(err))}))
            raise
        self.recorder.add(
            TraceEvent(
                node=self.node,
                kind="llm_call",
                message=f"{completion.backend}:{completion.model} finish={completion.finish_reason}",
                data={"messages": messages, "raw": completion.text, "finish_reason": completion.finish_reason,
                      "cached": completion.cached, "max_tokens": request.max_tokens},
            )
        )
        return completion


@dataclass
class QueryContext(RunContext):
    """A ``RunContext`` for one query: own meter, optional recorder and LLM time budget."""

    recorder: Recorder | None = field(default=None)
    budget: CallBudget | None = field(default=None)

    def llm_for(self, node: str) -> LLM:
        llm = super().llm_for(node)
        if self.recorder is not None:
            llm = Recording(llm, self.recorder, node)
        return Budgeted(llm, self.budget, node) if self.budget is not None else llm


def query_context(base: RunContext, *, record: bool = False, budget: CallBudget | None = None) -> QueryContext:
    """A copy of ``base`` that shares its components but has its own meter (recorder, budget)."""
    shared = {f.name: getattr(base, f.name) for f in dataclasses.fields(RunContext) if f.name != "meter"}
    return QueryContext(**shared, meter=UsageMeter(), recorder=Recorder() if record else None, budget=budget)
