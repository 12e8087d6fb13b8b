"""Serving many users from one ``Pipeline``: throughput, latency and event-loop stalls vs concurrency.

    python eval/bench_serving.py [--requests 32] [--llm-latency-ms 200] [--levels 1,2,4,8,16]

One pipeline is built once over a small temporary index (synthetic notes, all-MiniLM-L6-v2,
the embedded Chroma store; indexed by ``ragpipe index`` in a subprocess, as a deployment does)
with a scripted LLM that answers after a fixed ``asyncio.sleep`` (a remote model's latency, with
no CPU cost), so the figures show what the pipeline adds around its LLM calls. For each concurrency level ``c``, ``c`` clients send ``--requests`` questions in
all, each client one at a time, through two paths:

* ``aask``: coroutines on one long-lived event loop;
* ``ask``: ``c`` threads of an already started pool calling the sync API (which runs on the
  process's background loop).

Each path first serves one burst at the highest level (``first_burst``: thread pools start,
caches fill), reported apart, not in the levels. Then ``gc.freeze()`` and both paths again (rows
``gc: frozen``): a full pass of Python's garbage collector walks every object the process holds
(every loaded module and model: ``objects_tracked_by_gc``) with the GIL held, stalling the loop
for tens to hundreds of ms now and then; frozen objects are skipped.

The baseline, in the same run, is the LLM alone (path ``llm``): the same scripted model called
directly by ``c`` coroutines, with no retrieval or pipeline around it; ``ideal_rps`` is the
throughput in theory, ``c`` requests in flight each waiting ``llm calls per request × latency``.
A heartbeat coroutine wakes every 5 ms on the loop that serves the requests;
``worst_loop_stall_ms`` is the longest it overslept (goal < 20 ms: anything blocking that loop
delays every request in flight), with the default garbage collector; the same heartbeat on an
idle loop gives the machine's own scheduling noise. Prints a table and writes
``eval/results/serving.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "eval" / "results" / "serving.json"
HEARTBEAT_S = 0.005
STALL_GOAL_MS = 20.0

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
sys.path.insert(0, str(ROOT))

# (file, text): small notes on distinct topics, so each question has one clearly best chunk.
NOTES = [
    ("rivers.md", "The Seine flows through Paris and reaches the English Channel at Le Havre."),
    ("keys.md", "Rotate the API keys every ninety days from the admin console under Security."),
    ("backup.md", "Nightly backups are written to the cold storage bucket and kept for thirty days."),
    ("vpn.md", "Connect to the office VPN with the WireGuard profile issued by the help desk."),
    ("leave.md", "Employees receive twenty-five days of paid leave per calendar year."),
    ("deploy.md", "Deployments run from the main branch after the integration tests pass."),
    ("oncall.md", "The on-call engineer answers pages within fifteen minutes, day or night."),
    ("coffee.md", "The coffee machine on the third floor is descaled every Friday morning."),
    ("expenses.md", "Submit travel expenses within thirty days, with receipts attached as PDF."),
    ("printer.md", "The printer in room 204 needs the blue toner cartridge, model TN-421."),
    ("parking.md", "Visitor parking is in the north lot; register plates at reception."),
    ("security.md", "Report a lost badge to security at once so it can be blocked."),
    ("laptops.md", "Laptops are replaced every four years or earlier when they fail."),
    ("wifi.md", "The guest Wi-Fi password changes every Monday and is posted at reception."),
    ("lunch.md", "The canteen serves lunch from half past eleven until two o'clock."),
    ("fire.md", "Fire drills take place twice a year; assemble in the south courtyard."),
]
QUESTIONS = [
    "Which river flows through Paris?", "How often must API keys be rotated?",
    "How long are nightly backups kept?", "How do I connect to the office VPN?",
    "How many days of paid leave do employees get?", "When do deployments run?",
    "How fast must the on-call engineer answer a page?", "When is the coffee machine descaled?",
    "How soon must travel expenses be submitted?", "Which toner does the printer in room 204 need?",
    "Where do visitors park?", "What should I do after losing my badge?",
    "How often are laptops replaced?", "When does the guest Wi-Fi password change?",
    "When is lunch served?", "Where do we assemble during a fire drill?",
]


class FullCollections:
    """Times every full (oldest-generation) pass of the garbage collector while installed."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.ms.append((time.perf_counter() - self._start) * 1000)

    def summary(self) -> dict:
        return {"full_gc_passes": len(self.ms), "full_gc_ms_max": max(self.ms, default=0.0)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Heartbeat:
    """A coroutine that sleeps ``HEARTBEAT_S`` at a time and records how much longer each sleep took."""

    def __init__(self) -> None:
        self.stalls_ms: list[float] = []
        self._stop = threading.Event()

    async def beat(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            await asyncio.sleep(HEARTBEAT_S)
            now = time.perf_counter()
            self.stalls_ms.append(max(0.0, (now - last - HEARTBEAT_S) * 1000))
            last = now

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict[str, float]:
        stalls = self.stalls_ms or [0.0]
        return {"worst_loop_stall_ms": max(stalls), "loop_stall_ms_p99": percentile(stalls, 0.99),
                "heartbeats": len(self.stalls_ms)}


def cited_reply(request) -> str:  # noqa: ANN001
    """What a good model says: the first document's fact in other words, cited as [1]."""
    prompt = request.messages[-1].content
    match = re.search(r'<data id="1">(.*?)</data>', prompt, re.S)
    fact = match.group(1).strip().splitlines()[-1].rstrip(".") if match else ""
    return f"According to the notes, {fact[:1].lower()}{fact[1:]} [1]." if fact else "Not found in the documents."


def build_pipeline(folder: Path, latency_s: float, max_concurrency: int, method: str):  # noqa: ANN201
    from ragpipe import Pipeline
    from ragpipe.config import load_settings
    from ragpipe.llm.scripted import ScriptedLLM
    from ragpipe.llm.wrappers import Limited

    docs = folder / "docs"
    docs.mkdir()
    for name, text in NOTES:
        (docs / name).write_text(f"# {name[:-3].title()}\n\n{text}\n", encoding="utf-8")
    index = folder / "index"
    # Indexed by another process, as a deployment does: the server never loads the indexing stack.
    subprocess.run([sys.executable, "-m", "ragpipe", "index", str(docs), "--set", f"store.path={index}"],
                   cwd=ROOT, check=True, capture_output=True)
    settings = load_settings(store__path=str(index), llm__max_concurrency=max_concurrency)
    llm = Limited(ScriptedLLM(fn=cited_reply, delay_s=latency_s), max_concurrency)
    return Pipeline.from_settings(docs, settings=settings, llm=llm, method=method, verify=False, answer="generate",
                                  auto_index=False)


Level = tuple[list[float], list[int], float, dict]  # latencies, LLM calls per request, wall seconds, stalls


async def _run_async(call, concurrency: int, requests: int) -> Level:  # noqa: ANN001
    """``concurrency`` coroutines, each sending its requests one after another, on this loop."""
    heart = Heartbeat()
    beat = asyncio.create_task(heart.beat())
    pending = list(range(requests))[::-1]
    latencies: list[float] = []
    calls: list[int] = []

    async def client() -> None:
        while pending:
            i = pending.pop()
            start = time.perf_counter()
            calls.append(await call(i))
            latencies.append(time.perf_counter() - start)

    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    heart.stop()
    await beat
    return latencies, calls, wall, heart.summary()


async def serve_async(call, levels: list[int], requests: int) -> tuple[dict, list[Level]]:  # noqa: ANN001
    """All levels on one long-lived loop, as in a server; the first burst (thread pools and caches
    still cold) is measured apart and left out of the levels."""
    first = await _run_async(call, max(levels), 2 * max(levels))
    return first[3], [await _run_async(call, c, requests) for c in levels]


def serve_threads(pipe, levels: list[int], requests: int) -> tuple[dict, list[Level]]:  # noqa: ANN001
    """Sync ``ask`` from a pool of already started threads (as a threaded web server has); the
    heartbeat runs on the background loop those calls share."""
    from ragpipe.llm.base import run_sync

    def one(i: int) -> int:
        return pipe.ask(QUESTIONS[i % len(QUESTIONS)]).usage.calls

    def level(pool: ThreadPoolExecutor, concurrency: int, count: int) -> Level:
        heart = Heartbeat()
        beating = threading.Thread(target=run_sync, args=(heart.beat,), daemon=True)
        beating.start()
        time.sleep(0.02)
        pending = list(range(count))[::-1]
        lock = threading.Lock()
        latencies: list[float] = []
        calls: list[int] = []

        def client() -> None:
            while True:
                with lock:
                    if not pending:
                        return
                    i = pending.pop()
                start = time.perf_counter()
                n = one(i)
                with lock:
                    calls.append(n)
                    latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
        wall = time.perf_counter() - started
        heart.stop()
        beating.join()
        return latencies, calls, wall, heart.summary()

    with ThreadPoolExecutor(max_workers=max(levels)) as pool:
        first = level(pool, max(levels), 2 * max(levels))
        return first[3], [level(pool, c, requests) for c in levels]


async def _idle(seconds: float = 2.0) -> dict:
    """The heartbeat on a loop with nothing else to do: the machine's own scheduling noise."""
    heart = Heartbeat()
    beat = asyncio.create_task(heart.beat())
    await asyncio.sleep(seconds)
    heart.stop()
    await beat
    return heart.summary()


def llm_call(pipe):  # noqa: ANN001, ANN201
    """The baseline's request: the pipeline's LLM called directly, no retrieval or graph around it."""
    from ragpipe.llm.base import ChatRequest, Message

    prompt = '<data id="1">\nThe Seine flows through Paris.\n</data>\nQuestion: Which river flows through Paris?'
    request = ChatRequest(messages=[Message(role="user", content=prompt)], max_tokens=64)

    async def call(_i: int) -> int:
        await pipe.ctx.llm.complete(request)
        return 1

    return call


def aask_call(pipe):  # noqa: ANN001, ANN201
    async def call(i: int) -> int:
        return (await pipe.aask(QUESTIONS[i % len(QUESTIONS)])).usage.calls

    return call


def row(path: str, concurrency: int, level: Level, latency_s: float, max_concurrency: int) -> dict:
    latencies, calls, wall, stalls = level
    calls_per_request = statistics.mean(calls)
    ideal = min(concurrency, max_concurrency) / max(calls_per_request * latency_s, 1e-9)
    throughput = len(latencies) / wall
    return {
        "path": path, "concurrency": concurrency, "requests": len(latencies),
        "throughput_rps": throughput, "ideal_rps": ideal, "efficiency": throughput / ideal,
        "latency_ms_p50": statistics.median(latencies) * 1000, "latency_ms_p95": percentile(latencies, 0.95) * 1000,
        "llm_calls_per_request": calls_per_request, **stalls,
    }


def print_table(rows: list[dict]) -> None:
    print(f"{'path':<5} {'gc':<7} {'conc':>4} {'req/s':>7} {'ideal':>7} {'eff':>5} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'worst stall ms':>14} {'p99 stall ms':>12}")
    for r in rows:
        print(f"{r['path']:<5} {r['gc']:<7} {r['concurrency']:>4} {r['throughput_rps']:>7.2f} {r['ideal_rps']:>7.2f} "
              f"{r['efficiency']:>5.2f} {r['latency_ms_p50']:>8.1f} {r['latency_ms_p95']:>8.1f} "
              f"{r['worst_loop_stall_ms']:>14.1f} {r['loop_stall_ms_p99']:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level and path")
    parser.add_argument("--llm-latency-ms", type=float, default=200.0, help="the scripted LLM's fixed latency")
    parser.add_argument("--levels", default="1,2,4,8,16", help="comma-separated concurrency levels")
    parser.add_argument("--method", default="fast", help="the pipeline's selection method")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    latency_s = args.llm_latency_ms / 1000
    max_concurrency = max(levels)

    from ragpipe.concurrency import workers

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ragpipe-serving-") as tmp:
        started = time.perf_counter()
        pipe = build_pipeline(Path(tmp), latency_s, max_concurrency, args.method)
        build_s = time.perf_counter() - started
        idle = asyncio.run(_idle())
        rows, first_burst = [], {}
        collections: dict[str, dict] = {}
        objects = len(gc.get_objects())  # before freezing: frozen objects are no longer listed
        for gc_mode, paths in (("default", ("llm", "aask", "ask")), ("frozen", ("aask", "ask"))):
            if gc_mode == "frozen":
                gc.freeze()  # what a server does once after start-up: later collections skip these objects
            full = FullCollections()
            gc.callbacks.append(full)
            for path in paths:
                if path == "ask":
                    burst, levels_run = serve_threads(pipe, levels, args.requests)
                else:
                    call = llm_call(pipe) if path == "llm" else aask_call(pipe)
                    burst, levels_run = asyncio.run(serve_async(call, levels, args.requests))
                first_burst[path if gc_mode == "default" else f"{path}, gc frozen"] = burst
                rows += [{**row(path, c, lv, latency_s, max_concurrency), "gc": gc_mode}
                         for c, lv in zip(levels, levels_run)]
            gc.callbacks.remove(full)
            collections[gc_mode] = full.summary()
        chunks = pipe.index.store.count()
    print_table(rows)
    worst = max(r["worst_loop_stall_ms"] for r in rows if r["path"] != "llm" and r["gc"] == "default")
    frozen = max(r["worst_loop_stall_ms"] for r in rows if r["gc"] == "frozen")
    print(f"worst loop stall {worst:.1f} ms, {frozen:.1f} ms after gc.freeze() (goal < {STALL_GOAL_MS:.0f} ms); idle loop, same run: "
          f"{idle['worst_loop_stall_ms']:.1f} ms; first burst (cold pools): "
          + ", ".join(f"{p} {v['worst_loop_stall_ms']:.1f} ms" for p, v in first_burst.items()))
    doc = {
        "command": " ".join(["python", "eval/bench_serving.py", *sys.argv[1:]]),
        "setup": {"llm": f"scripted, {args.llm_latency_ms:.0f} ms per call (asyncio.sleep)",
                  "llm_latency_ms": args.llm_latency_ms, "max_concurrency": max_concurrency,
                  "method": args.method, "verify": False, "answer": "generate",
                  "embedder": "all-MiniLM-L6-v2", "store": "embedded Chroma (temporary folder)",
                  "documents": len(NOTES), "chunks": chunks, "questions": len(QUESTIONS),
                  "heartbeat_ms": HEARTBEAT_S * 1000, "worker_threads": workers(), "pipeline_build_s": build_s,
                  "machine": f"{platform.machine()} {os.cpu_count()} cores (shared)",
                  "load_average_1min": [load_before, os.getloadavg()[0]]},  # before, after: other jobs' noise
        "goal": {"worst_loop_stall_ms": STALL_GOAL_MS},
        "worst_loop_stall_ms": worst,
        "baseline_worst_loop_stall_ms": max(r["worst_loop_stall_ms"] for r in rows if r["path"] == "llm"),
        "worst_loop_stall_ms_gc_frozen": frozen,
        # p99 of the same heartbeats, and the baseline's, so scheduler noise reads apart from real stalls
        "loop_stall_ms_p99": max(r["loop_stall_ms_p99"] for r in rows if r["path"] != "llm" and r["gc"] == "default"),
        "loop_stall_ms_p99_gc_frozen": max(r["loop_stall_ms_p99"] for r in rows if r["gc"] == "frozen"),
        "baseline_loop_stall_ms_p99": max(r["loop_stall_ms_p99"] for r in rows if r["path"] == "llm"),
        "meets_stall_goal": worst < STALL_GOAL_MS,
        "meets_stall_goal_gc_frozen": frozen < STALL_GOAL_MS,
        "objects_tracked_by_gc": objects,
        "full_gc": collections,  # passes while each mode ran, and the longest (ms)
        "idle_loop": idle,
        "first_burst": first_burst,
        "levels": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print("full garbage collections: " + "; ".join(
        f"{mode} {c['full_gc_passes']} (longest {c['full_gc_ms_max']:.0f} ms)" for mode, c in collections.items()))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
