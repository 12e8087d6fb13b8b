"""Cross-cutting LLM behaviour as wrappers around any backend: concurrency limit and recording.

Wrappers implement the same protocol as backends, so they stack:
``Recorded(Limited(Cached(backend)), log, node="listwise")``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ragpipe.errors import redact
from ragpipe.llm.base import LLM, BaseLLM, Capabilities, ChatRequest, Completion
from ragpipe.schema import TraceEvent, Usage


class Wrapper(BaseLLM):
    """Delegates everything to ``inner``; subclasses override ``complete``."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.inner.complete(request)  # type: ignore[attr-defined]

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        async for piece in self.inner.stream(request):  # type: ignore[attr-defined]
            yield piece

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def __getattr__(self, name: str):  # expose backend extras (tokenizer, etc.)
        return getattr(self.inner, name)


class SharedLimit:
    """A counting semaphore that holds across event loops and threads.

    ``asyncio.Semaphore`` belongs to one loop; a backend shared by an application's loop and by
    sync calls from threads needs one count for all of them. Waiters are woken on their own loop.
    """

    def __init__(self, value: int) -> None:
        self._free = value
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                queued = (loop, waiter) in self._waiters
                if queued:
                    self._waiters.remove((loop, waiter))
            if not queued and waiter.done() and not waiter.cancelled():
                self.release()  # granted, then cancelled before it ran: pass the slot on
            raise  # granted but not yet delivered: ``_deliver`` sees the cancelled waiter and passes it on

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._deliver, waiter)
                    return
                except RuntimeError:  # that loop is closed: its waiter is gone
                    continue
            self._free += 1

    def _deliver(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():
            self.release()
        else:
            waiter.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Limited(Wrapper):
    """At most ``max_concurrency`` calls in flight, counted across all event loops and threads."""

    def __init__(self, inner: LLM, max_concurrency: int) -> None:
        super().__init__(inner)
        self.max_concurrency = max(1, max_concurrency)
        self._limit = SharedLimit(self.max_concurrency)

    async def complete(self, request: ChatRequest) -> Completion:
        async with self._limit:
            return await self.inner.complete(request)  # type: ignore[attr-defined]

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        async with self._limit:
            async for piece in self.inner.stream(request):  # type: ignore[attr-defined]
                yield piece


@dataclass(frozen=True)
class CallRecord:
    """One LLM call as it happened: who asked, what it cost, and (when kept) what was said."""

    node: str
    usage: Usage
    messages: list[dict[str, str]] | None = None
    raw: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    model: str = ""
    max_tokens: int | None = None
    streamed: bool = False

    @property
    def cached(self) -> bool:
        return self.usage.cached_calls > 0

    def event(self) -> TraceEvent:
        """The ``llm_call`` trace event for this call (what ``ragpipe ask --trace`` prints)."""
        data: dict[str, Any] = {"messages": self.messages or [], "max_tokens": self.max_tokens,
                                "prompt_tokens": self.usage.prompt_tokens,
                                "completion_tokens": self.usage.completion_tokens,
                                "latency_s": round(self.usage.llm_seconds, 4), "cached": self.cached}
        if self.error is not None:
            data["error"] = self.error
            message = f"failed: {self.error}"
        else:
            data["raw"] = self.raw or ""
            data["finish_reason"] = self.finish_reason
            message = "streamed" if self.streamed else f"{self.model} finish={self.finish_reason}"
        return TraceEvent(node=self.node, kind="llm_call", message=message, data=data)


class CallLog:
    """The one record of a run's LLM calls; usage per node and ``llm_call`` traces are read from it.

    Thread-safe and shared by every node of one query. ``keep_text`` keeps prompts and raw
    outputs (for traces); without it only the cost is kept. A ``child()`` log sees the calls of
    one component and passes each on to its parent, so a call is recorded once however many
    views read it.
    """

    def __init__(self, *, keep_text: bool = False, parent: CallLog | None = None) -> None:
        self.keep_text = keep_text if parent is None else parent.keep_text
        self._parent = parent
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()

    def child(self) -> CallLog:
        return CallLog(parent=self)

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)
        if self._parent is not None:
            self._parent.add(record)

    def records(self) -> list[CallRecord]:
        with self._lock:
            return list(self._records)

    def events(self) -> list[TraceEvent]:
        return [record.event() for record in self.records()]

    def by_node(self) -> dict[str, Usage]:
        totals: dict[str, Usage] = defaultdict(Usage)
        for record in self.records():
            totals[record.node] = totals[record.node] + record.usage
        return dict(totals)

    def total(self) -> Usage:
        total = Usage()
        for record in self.records():
            total = total + record.usage
        return total


def _messages(request: ChatRequest) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in request.messages]


class Recorded(Wrapper):
    """Records every call (cost, latency, cache hit or failure; text when kept) in a ``CallLog``."""

    def __init__(self, inner: LLM, log: CallLog, node: str) -> None:
        super().__init__(inner)
        self.log = log
        self.node = node

    def _failed(self, request: ChatRequest, err: Exception, start: float, streamed: bool = False) -> None:
        self.log.add(CallRecord(
            node=self.node, usage=Usage(calls=1, failed_calls=1, llm_seconds=time.perf_counter() - start),
            messages=_messages(request) if self.log.keep_text else None, error=redact(f"{type(err).__name__}: {err}"),
            max_tokens=request.max_tokens, streamed=streamed, model=f"{self.backend}:{self.model}"))

    async def complete(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        try:
            completion = await self.inner.complete(request)  # type: ignore[attr-defined]
        except Exception as err:
            self._failed(request, err, start)
            raise
        usage = completion.usage.model_copy(update={"calls": 1, "cached_calls": int(completion.cached)})
        keep = self.log.keep_text
        self.log.add(CallRecord(
            node=self.node, usage=usage, messages=_messages(request) if keep else None,
            raw=completion.text if keep else None, finish_reason=completion.finish_reason,
            model=f"{completion.backend}:{completion.model}", max_tokens=request.max_tokens))
        return completion

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Records a streamed call when it ends; token counts come from the backend's tokenizer."""
        start = time.perf_counter()
        pieces: list[str] = []
        try:
            async for piece in self.inner.stream(request):  # type: ignore[attr-defined]
                pieces.append(piece)
                yield piece
        except Exception as err:
            self._failed(request, err, start, streamed=True)
            raise
        text = "".join(pieces)
        prompt = sum(self.count_tokens(m.content) for m in request.messages)
        usage = Usage(calls=1, prompt_tokens=prompt, completion_tokens=self.count_tokens(text),
                      llm_seconds=time.perf_counter() - start)
        keep = self.log.keep_text
        self.log.add(CallRecord(
            node=self.node, usage=usage, messages=_messages(request) if keep else None, raw=text if keep else None,
            finish_reason="stop", model=f"{self.backend}:{self.model}", max_tokens=request.max_tokens, streamed=True))
