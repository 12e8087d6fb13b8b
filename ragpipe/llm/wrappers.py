"""Cross-cutting LLM behaviour as wrappers around any backend: concurrency limit and metering.

Wrappers implement the same protocol as backends, so they stack:
``Metered(Limited(Cached(backend)), meter, node="listwise")``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator

from ragpipe.llm.base import LLM, BaseLLM, Capabilities, ChatRequest, Completion
from ragpipe.schema import Usage


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


class UsageMeter:
    """Sums usage per node name. Thread-safe; shared by every node of one run."""

    def __init__(self) -> None:
        self._by_node: dict[str, Usage] = defaultdict(Usage)
        self._lock = threading.Lock()

    def add(self, node: str, usage: Usage) -> None:
        with self._lock:
            self._by_node[node] = self._by_node[node] + usage

    def by_node(self) -> dict[str, Usage]:
        with self._lock:
            return dict(self._by_node)

    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_node().values():
            total = total + usage
        return total


class Metered(Wrapper):
    """Records every call's usage (and failures) under ``node`` in a ``UsageMeter``."""

    def __init__(self, inner: LLM, meter: UsageMeter, node: str) -> None:
        super().__init__(inner)
        self.meter = meter
        self.node = node

    async def complete(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        try:
            completion = await self.inner.complete(request)  # type: ignore[attr-defined]
        except Exception:
            self.meter.add(self.node, Usage(calls=1, failed_calls=1, llm_seconds=time.perf_counter() - start))
            raise
        usage = completion.usage.model_copy(update={"calls": 1, "cached_calls": int(completion.cached)})
        self.meter.add(self.node, usage)
        return completion

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Meters a streamed call when it ends; token counts come from the backend's tokenizer."""
        start = time.perf_counter()
        pieces: list[str] = []
        try:
            async for piece in self.inner.stream(request):  # type: ignore[attr-defined]
                pieces.append(piece)
                yield piece
        except Exception:
            self.meter.add(self.node, Usage(calls=1, failed_calls=1, llm_seconds=time.perf_counter() - start))
            raise
        prompt = sum(self.count_tokens(m.content) for m in request.messages)
        self.meter.add(
            self.node,
            Usage(calls=1, prompt_tokens=prompt, completion_tokens=self.count_tokens("".join(pieces)),
                  llm_seconds=time.perf_counter() - start),
        )
