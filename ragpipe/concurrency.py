"""One small thread pool for ragpipe's blocking query-time work, so it never runs on the event loop.

Embedding a question, reading chunks and vectors from the store, BM25 search and counting prompt
tokens are blocking Python calls. They run here instead of in asyncio's default executor: that
pool grows to ``cpu_count + 4`` threads, starts them from the loop thread as load rises, and is
shared with whatever else the application offloads. Every extra thread doing Python work is one
more contender for the GIL the event loop needs between requests, so a few threads serve many
concurrent requests with shorter loop stalls and the same throughput (the work is GIL-bound:
more threads would not finish it sooner).

The pool is one per process (GIL contention is per process), bounded by the
``retrieval.worker_threads`` setting, and its threads are daemons named ``ragpipe-work-N``.

In-process LLM generation (llama.cpp) keeps its own path: it holds the model's lock for seconds
per call, so in this pool it would make every retrieval wait behind it, and a busy retrieval
burst would delay the next generation.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_WORKERS = 2
THREAD_PREFIX = "ragpipe-work"

_pool: ThreadPoolExecutor | None = None
_workers = DEFAULT_WORKERS
_lock = threading.Lock()


def set_workers(workers: int) -> None:
    """Size the pool (``retrieval.worker_threads``). A new size replaces the pool; work already
    queued on the old one still finishes there, and its idle threads then exit."""
    global _pool, _workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"retrieval.worker_threads must be a whole number of at least 1, got {workers!r}")
    with _lock:
        if workers == _workers:
            return
        old, _pool, _workers = _pool, None, workers
    if old is not None:
        old.shutdown(wait=False)


def workers() -> int:
    """The pool's size."""
    return _workers


def blocking_pool() -> ThreadPoolExecutor:
    """The process's pool for blocking work, made on first use."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_workers, thread_name_prefix=THREAD_PREFIX)
        return _pool


async def run_blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the pool, awaited; context variables travel with it (as with
    ``asyncio.to_thread``)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    loop = asyncio.get_running_loop()
    try:
        future = loop.run_in_executor(blocking_pool(), call)
    except RuntimeError:  # the pool was resized between looking it up and submitting: use the new one
        future = loop.run_in_executor(blocking_pool(), call)
    return await future
