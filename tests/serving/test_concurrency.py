"""Serving many callers at once: the event loop never stalls, and the concurrency limit holds."""

from __future__ import annotations

import asyncio
import threading
import time

from ragpipe.context import RunContext
from ragpipe.generate import Generator
from ragpipe.llm.base import run_sync
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.llm.wrappers import Limited
from ragpipe.schema import Chunk, ScoredChunk

QUESTION = "Which river flows through Paris?"
EVIDENCE = [ScoredChunk(chunk=Chunk(id="seine", doc_id="geo", position=0, text="The Seine flows through Paris.",
                                    source="geo.md"))]


class SlowTokenizerLLM(ScriptedLLM):
    """Like a local model whose tokenizer shares a lock with generation: counting blocks its thread."""

    def count_tokens(self, text: str) -> int:
        time.sleep(0.05)
        return super().count_tokens(text)


async def _worst_stall(work) -> float:
    """The longest gap seen by a 10 ms heartbeat while ``work`` runs."""
    stop = asyncio.Event()
    worst = 0.0

    async def heartbeat() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            worst = max(worst, now - last - 0.01)
            last = now

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.02)
    try:
        return_value = await work
    finally:
        stop.set()
        await beat
    assert return_value is not None
    return worst


async def test_blocking_token_counting_does_not_stall_the_event_loop() -> None:
    llm = SlowTokenizerLLM(cycle=["The Seine [1]."], delay_s=0.02)
    generator = Generator()
    work = asyncio.gather(*(generator.agenerate(QUESTION, EVIDENCE, RunContext(llm=llm)) for _ in range(4)))
    worst = await _worst_stall(work)
    # Each answer counts tokens several times at 50 ms a count; on the loop that stalled it ~0.8 s.
    assert worst < 0.04, f"event loop stalled {worst * 1000:.0f} ms"


def _run_threads(target, n: int) -> list:
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(target())) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_the_limit_holds_for_sync_calls_from_threads() -> None:
    inner = ScriptedLLM(cycle=["ok"], delay_s=0.05)
    llm = Limited(inner, 1)
    results = _run_threads(lambda: llm.chat_sync([{"role": "user", "content": "hi"}], max_tokens=4), 4)
    assert [r.text for r in results] == ["ok"] * 4
    assert inner.max_in_flight == 1


def test_the_limit_holds_across_event_loops() -> None:
    inner = ScriptedLLM(cycle=["ok"], delay_s=0.05)
    llm = Limited(inner, 2)

    async def three() -> list:
        return await asyncio.gather(*(llm.chat([{"role": "user", "content": "hi"}], max_tokens=4) for _ in range(3)))

    results = _run_threads(lambda: asyncio.run(three()), 3)
    assert len(results) == 3 and all(len(r) == 3 for r in results)
    spans = sorted(inner.call_spans)
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap <= 2


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    inner = ScriptedLLM(cycle=["ok"], delay_s=0.05)
    llm = Limited(inner, 1)
    first = asyncio.create_task(llm.chat([{"role": "user", "content": "a"}], max_tokens=4))
    waiting = asyncio.create_task(llm.chat([{"role": "user", "content": "b"}], max_tokens=4))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await first
    third = await asyncio.wait_for(llm.chat([{"role": "user", "content": "c"}], max_tokens=4), timeout=1)
    assert third.text == "ok"


def test_sync_calls_share_one_background_loop() -> None:
    async def which_loop() -> int:
        return id(asyncio.get_running_loop())

    loops = set(_run_threads(lambda: run_sync(which_loop), 4)) | {run_sync(which_loop)}
    assert len(loops) == 1


async def test_run_sync_inside_the_background_loop_does_not_deadlock() -> None:
    async def inner() -> str:
        return "inner"

    async def outer() -> str:
        return run_sync(inner)  # a sync API used from a coroutine on the shared loop

    assert await asyncio.to_thread(run_sync, outer) == "inner"
