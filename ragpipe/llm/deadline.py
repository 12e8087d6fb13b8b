"""One question's time budget for LLM calls, and a breaker that stops a node after a hard failure.

A hung or dead server must not keep a user waiting for every call of every node in turn (timeout
x attempts x calls). ``CallBudget`` is created per question: each call waits at most until the
question's deadline, and once a node has seen a hard failure (server unreachable, timeout after
its retries, key rejected, model not served, rate limit after retries) or the deadline has
passed, that node's remaining calls fail at once with the same error instead of being tried
one by one. Nodes already fall back on LLM errors, so the trace then says why. ``waiting()``
tells a status line what is being waited on.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ragpipe.errors import LLMError, LLMTimeout
from ragpipe.llm.base import LLM, ChatRequest, Completion
from ragpipe.llm.wrappers import Wrapper

T = TypeVar("T")
DEFAULT_DEADLINE_S = 300.0


class DeadlinePassed(LLMTimeout):
    """The question's LLM time budget is spent; the call was not made (or was abandoned)."""


@dataclass(frozen=True)
class Waiting:
    """The longest-running LLM call of a question, for a status line."""

    node: str
    seconds: float
    calls: int
    remaining_s: float | None


class CallBudget:
    """Deadline and per-node breaker of one question. Safe to share between its coroutines."""

    def __init__(self, deadline_s: float | None = DEFAULT_DEADLINE_S, *, clock=time.monotonic) -> None:
        self.deadline_s = deadline_s
        self._clock = clock
        self._start = clock()
        self._tripped: dict[str, LLMError] = {}
        self._in_flight: dict[int, tuple[str, float]] = {}
        self._ids = itertools.count()
        self._events: dict[str, asyncio.Event] = {}
        self._lock = threading.Lock()

    # -- state ---------------------------------------------------------------------------
    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a deadline."""
        if self.deadline_s is None:
            return None
        return max(0.0, self.deadline_s - (self._clock() - self._start))

    def tripped(self, node: str) -> LLMError | None:
        with self._lock:
            return self._tripped.get(node)

    def trip(self, node: str, err: LLMError) -> None:
        with self._lock:
            self._tripped.setdefault(node, err)
            event = self._events.get(node)
        if event is not None:
            event.set()

    def waiting(self) -> Waiting | None:
        """The oldest call in flight (None when nothing is waiting on the LLM)."""
        with self._lock:
            calls = list(self._in_flight.values())
        if not calls:
            return None
        node, started = min(calls, key=lambda c: c[1])
        return Waiting(node, self._clock() - started, len(calls), self.remaining())

    # -- guarding one call ---------------------------------------------------------------
    def check(self, node: str) -> None:
        """Raise instead of calling when the node is tripped or the deadline has passed."""
        tripped = self.tripped(node)
        if tripped is not None:
            raise type(tripped)(f"not called: an earlier {node} call failed ({tripped})",
                                attempts=0, skipped=True)
        if self.remaining() == 0.0:
            raise self._passed(node)

    def _passed(self, node: str) -> DeadlinePassed:
        err = DeadlinePassed(
            f"the {self.deadline_s:g} s answer deadline passed before {node} got an answer "
            "(raise llm.ask_deadline_s for slow models)", attempts=0)
        self.trip(node, err)
        return err

    def _enter(self, node: str) -> int:
        call_id = next(self._ids)
        with self._lock:
            self._in_flight[call_id] = (node, self._clock())
        return call_id

    def _leave(self, call_id: int) -> None:
        with self._lock:
            self._in_flight.pop(call_id, None)

    def _trip_event(self, node: str) -> asyncio.Event:
        with self._lock:
            if node not in self._events:
                self._events[node] = asyncio.Event()
                if node in self._tripped:
                    self._events[node].set()
            return self._events[node]

    async def run(self, node: str, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()`` within the deadline; a hard failure trips the node and ends its other calls."""
        self.check(node)
        call_id = self._enter(node)
        tripped = self._trip_event(node)
        task = asyncio.ensure_future(call())
        watcher = asyncio.ensure_future(tripped.wait())
        try:
            done, _ = await asyncio.wait({task, watcher}, timeout=self.remaining(),
                                         return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            task.cancel()
            if watcher in done:
                self.check(node)  # raises the error that tripped the node
            raise self._passed(node)
        except BaseException as err:
            task.cancel()
            if isinstance(err, LLMError) and err.recurs:
                self.trip(node, err)
            raise
        finally:
            watcher.cancel()
            self._leave(call_id)


class Budgeted(Wrapper):
    """Every call of ``node`` goes through the question's ``CallBudget``."""

    def __init__(self, inner: LLM, budget: CallBudget, node: str) -> None:
        super().__init__(inner)
        self.budget = budget
        self.node = node

    async def complete(self, request: ChatRequest) -> Completion:
        return await self.budget.run(self.node, lambda: self.inner.complete(request))  # type: ignore[attr-defined]

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Streams are checked before they start; the deadline then bounds each wait for a piece."""
        self.budget.check(self.node)
        pieces = self.inner.stream(request).__aiter__()  # type: ignore[attr-defined]
        while True:
            try:
                piece = await self.budget.run(self.node, pieces.__anext__)
            except StopAsyncIteration:
                return
            yield piece
