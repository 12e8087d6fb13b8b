"""Latency of ``ragpipe ask``: cold start, warm per-query overhead, and peak memory.

    python eval/bench_latency.py prepare [--data DIR]  # build the ~10k-chunk folder and index it once
    python eval/bench_latency.py run [--data DIR] [--queries 50] [--cold-repeats 5] [--skip-rss]

* ``cold_start_s``: a fresh ``ragpipe ask … --retrieve-only`` process, from start until it prints
  its first retrieved chunk, on the already indexed folder (imports, opening Chroma, loading the
  embedder, embedding the question, hybrid search).
* ``warm_overhead_ms_p50``/``_p95``: per query, with models loaded, everything except LLM time:
  a pipeline whose LLM answers instantly (a scripted model), minus the LLM seconds it reports;
  ``cpu_ms_p50``/``_p95``: the CPU time of the process (all threads) per query, which a shared
  machine's load does not inflate. Goals: ``fast`` <= 15 ms, ``meteora`` <= 30 ms p50.
* ``cold_start_steps``: the same cold start split into steps (ask-path imports, chromadb import,
  bm25s import, Chroma client start and index open, query-encoder load, first and second query)
  with ``python -X importtime`` self time per top-level module (see ``bench_startup.py``).
* ``peak_rss_mb``: the peak resident memory of a real ``ragpipe ask`` on the embedded defaults
  (SmolLM2 through llama.cpp, all-MiniLM-L6-v2) on the same, already indexed folder (a later
  ask; goal <= 600 MB). The first ask, which indexes, is measured by ``bench_ask.py``.
* cold start goal: <= 2 s.

Data: ``prepare`` builds the folder from the ``corpus.jsonl`` passages of ``trec_dl2019_bm25``,
``trec_dl2020_bm25``, ``trec_dl2021_bm25``, ``fiqa_goldpool``, ``scifact_goldpool``,
``hotpotqa_hipporag_train100`` and ``musique_hipporag_train100``, one passage per file, under
``eval/work/latency``; ``run`` asks the ``queries.jsonl`` questions of the three TREC DL folders.
``run`` prints a table and writes ``eval/results/latency.json``: the figures above with their
samples, per-node medians, the goals, and ``data``/``index_data`` (the data folder and the record
counts the questions and the indexed folder came from).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "eval" / "work" / "latency"
DOCS = WORK / "docs"
RESULTS = ROOT / "eval" / "results" / "latency.json"
CORPORA = ("trec_dl2019_bm25", "trec_dl2020_bm25", "trec_dl2021_bm25", "fiqa_goldpool", "scifact_goldpool",
           "hotpotqa_hipporag_train100", "musique_hipporag_train100")
QUERY_SETS = ("trec_dl2019_bm25", "trec_dl2020_bm25", "trec_dl2021_bm25")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
sys.path.insert(0, str(ROOT))

from bench_startup import cold_start_steps, print_steps  # noqa: E402
from datapaths import DataFolder, add_data_arguments, open_data  # noqa: E402

NEEDS = {"prepare": {name: ("corpus.jsonl",) for name in CORPORA},
         "run": {name: ("queries.jsonl",) for name in QUERY_SETS}}
INDEX_DATA = WORK / "data.json"  # what ``prepare`` indexed, recorded by ``run``
GOALS = {"cold_start_s": 2.0, "warm_overhead_ms_p50": 15.0, "warm_overhead_ms_p50_by_method": {"fast": 15.0, "meteora": 30.0},
         "peak_rss_mb_later_ask": 600}


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_folder(data: DataFolder) -> int:
    """One .txt file per passage; returns the number of files."""
    count = 0
    for name in CORPORA:
        target = DOCS / name
        target.mkdir(parents=True, exist_ok=True)
        for row in _jsonl(data / name / "corpus.jsonl"):
            text = f"{row.get('title') or ''}\n\n{row['text']}".strip()
            path = target / f"{str(row['_id']).replace('/', '_')}.txt"
            if not path.exists():
                path.write_text(text, encoding="utf-8")
            count += 1
    return count


def questions(data: DataFolder, limit: int) -> list[str]:
    found: list[str] = []
    for name in QUERY_SETS:
        found += [row["text"] for row in _jsonl(data / name / "queries.jsonl")]
    return found[:limit]


def prepare(data: DataFolder) -> None:
    from ragpipe.config import load_settings
    from ragpipe.ingest.indexer import index_folder

    files = write_folder(data)
    print(f"{files} passage files under {DOCS}")
    last = [0.0]

    def progress(event) -> None:  # noqa: ANN001
        if time.perf_counter() - last[0] > 15 or event.phase == "done":
            last[0] = time.perf_counter()
            print(f"  {event.phase}: {event.done}/{event.total} ({event.chunks} chunks)", flush=True)

    report = index_folder(DOCS, load_settings(), progress=progress)
    print(f"indexed: {report.chunks_added} chunks added, total {report.chunks_total}, {report.seconds:.0f} s")
    INDEX_DATA.write_text(json.dumps(data.describe(), indent=2) + "\n", encoding="utf-8")


def cold_start(question: str, repeats: int) -> list[float]:
    """Seconds from process start to the first retrieved chunk on stdout."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ragpipe", "ask", question, "--docs", str(DOCS), "--retrieve-only", "--top-k", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        first = proc.stdout.readline()
        elapsed = time.perf_counter() - start
        proc.communicate()
        if proc.returncode != 0 or not first:
            raise SystemExit(f"cold start run failed: {proc.returncode}")
        samples.append(elapsed)
    return samples


def warm_overhead(qs: list[str], method: str, limit: int) -> dict:
    """Per-query wall time minus LLM time, with an instant scripted LLM."""
    from ragpipe.config import load_settings
    from ragpipe.ingest.indexer import open_index
    from ragpipe.llm.scripted import ScriptedLLM
    from ragpipe.pipeline import Pipeline

    settings = load_settings()
    index = open_index(DOCS, settings)
    def instant_reply(request) -> str:  # noqa: ANN001 - a plausible reply per task, at zero latency
        system = request.messages[0].content
        if "evidence searches" in system:  # rationales
            return ('{"rationales": [{"label": "topic", "text": "What the question asks about", "flag_instructions": '
                    '"reject unsupported claims"}, {"label": "background", "text": "Background facts"}]}')
        if "audit evidence" in system:  # the verifier's one listwise pass
            return '{"suspicious": []}'
        return "The answer is in [1]."

    llm = ScriptedLLM(fn=instant_reply)
    pipe = Pipeline.from_settings(index=index, settings=settings, llm=llm, method=method, top_k=30)

    async def one(q: str) -> tuple[float, dict, float]:
        start, cpu = time.perf_counter(), time.process_time()
        answer = await pipe.aask(q)
        wall = time.perf_counter() - start
        return wall - answer.usage.llm_seconds, answer.timings, time.process_time() - cpu

    async def all_queries() -> list[tuple[float, dict, float]]:
        await one(qs[0])  # load BM25 and warm caches
        return [await one(q) for q in qs[:limit]]

    runs = asyncio.run(all_queries())
    overheads = sorted(r[0] * 1000 for r in runs)
    cpu = sorted(r[2] * 1000 for r in runs)
    nodes = {node: statistics.median(r[1].get(node, 0.0) * 1000 for r in runs) for node in runs[0][1]}
    return {
        "method": method,
        "queries": len(runs),
        "p50": statistics.median(overheads),
        "p95": _p95(overheads),
        "node_ms_p50": nodes,
        # CPU seconds of the whole process (every thread) per query: what the query costs, without
        # the time it waited for a core on a shared machine.
        "cpu_ms_p50": statistics.median(cpu),
        "cpu_ms_p95": _p95(cpu),
    }


def _p95(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def measured_run(cmd: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; its return code, stdout, stderr, wall seconds and its own peak RSS in MB."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage, not the max over all children
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return {"returncode": proc.returncode, "stdout": out.read().decode("utf-8", "replace"),
                "stderr": err.read().decode("utf-8", "replace"), "wall_s": wall,
                "peak_rss_mb": usage.ru_maxrss / 1024}


def peak_rss(question: str) -> dict:
    """Peak RSS of a real ``ragpipe ask`` (embedded llama.cpp + MiniLM) on the indexed folder, and its wall time."""
    done = measured_run([sys.executable, "-m", "ragpipe", "ask", question, "--docs", str(DOCS), "--method", "fast",
                         "--top-k", "10", "--json"])
    result = {k: done[k] for k in ("returncode", "wall_s", "peak_rss_mb")}
    if done["returncode"] == 0:
        doc = json.loads(done["stdout"])
        result.update(answer=doc["answer"], llm_calls=doc["usage"]["total"]["calls"], timings=doc["timings"])
    else:
        result["error"] = done["stderr"].strip().splitlines()[-1:] or [""]
    return result


def rss_only(data: DataFolder) -> None:
    """Measure the real ask again and update those fields of an existing result file."""
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    rss = peak_rss(questions(data, 2)[1])
    results.update(peak_rss_mb=rss["peak_rss_mb"], real_ask=rss, real_ask_load_average=os.getloadavg(),
                   real_ask_command=" ".join(["python", "eval/bench_latency.py", *sys.argv[1:]]))
    RESULTS.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"{'peak RSS real ask (MB)':<28}{rss['peak_rss_mb']:>12.0f}  <= {GOALS['peak_rss_mb_later_ask']} "
          f"(wall {rss['wall_s']:.1f} s, rc {rss['returncode']})")


def run(args: argparse.Namespace, data: DataFolder) -> None:
    from ragpipe.config import load_settings
    from ragpipe.ingest.indexer import open_index

    if args.rss_only:
        return rss_only(data)
    load = os.getloadavg()
    chunks = open_index(DOCS, load_settings()).store.count()
    qs = questions(data, args.queries)
    cold = cold_start(qs[0], args.cold_repeats)
    steps = cold_start_steps(ROOT, DOCS, qs[0], args.cold_repeats)
    warm = {m: warm_overhead(qs, m, args.queries if m == "fast" else args.slow_queries) for m in args.methods}
    rss = None if args.skip_rss else peak_rss(qs[1])
    default = warm.get("fast") or next(iter(warm.values()))
    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared)",
        "load_average_at_start": load,
        "indexed_chunks": chunks,
        "cold_start_s": statistics.median(cold),
        "cold_start_samples_s": cold,
        "cold_start_steps": steps,
        "warm_overhead_ms_p50": default["p50"],
        "warm_overhead_ms_p95": default["p95"],
        "warm": warm,
        "peak_rss_mb": rss["peak_rss_mb"] if rss else None,
        "real_ask": rss,
        "load_average_at_end": os.getloadavg(),
        "goals": GOALS,
        "command": " ".join(["python", "eval/bench_latency.py", *sys.argv[1:]]),
        "data": data.describe(),
        "index_data": json.loads(INDEX_DATA.read_text(encoding="utf-8")) if INDEX_DATA.is_file() else None,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"{'metric':<28}{'value':>12}  goal")
    print(f"{'indexed chunks':<28}{chunks:>12}")
    print(f"{'cold start (p50, s)':<28}{results['cold_start_s']:>12.2f}  <= {GOALS['cold_start_s']}")
    print_steps(steps)
    for method, w in warm.items():
        goal = GOALS["warm_overhead_ms_p50_by_method"].get(method, GOALS["warm_overhead_ms_p50"])
        print(f"{'warm overhead p50 ms ' + method:<28}{w['p50']:>12.1f}  <= {goal}")
        print(f"{'warm overhead p95 ms ' + method:<28}{w['p95']:>12.1f}")
        print(f"{'  CPU ms p50 / p95':<28}{w['cpu_ms_p50']:>12.1f}  / {w['cpu_ms_p95']:.1f}")
        print(f"{'  per node p50 ms':<28}  " + ", ".join(f"{k} {v:.1f}" for k, v in w["node_ms_p50"].items()))
    if rss:
        print(f"{'peak RSS real ask (MB)':<28}{rss['peak_rss_mb']:>12.0f}  <= {GOALS['peak_rss_mb_later_ask']} "
              f"(wall {rss['wall_s']:.1f} s, rc {rss['returncode']})")
    print(f"wrote {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the passage folder and index it")
    add_data_arguments(p)
    r = sub.add_parser("run", help="measure (the folder must be indexed)")
    add_data_arguments(r)
    r.add_argument("--queries", type=int, default=50)
    r.add_argument("--cold-repeats", type=int, default=5)
    r.add_argument("--methods", nargs="+", default=["fast", "meteora"])
    r.add_argument("--slow-queries", type=int, default=15, help="queries for the LLM-selector presets")
    r.add_argument("--skip-rss", action="store_true")
    r.add_argument("--rss-only", action="store_true",
                   help="only the real ask (peak RSS), written into the existing result file")
    args = parser.parse_args()
    data = open_data(args, NEEDS[args.cmd])
    prepare(data) if args.cmd == "prepare" else run(args, data)


if __name__ == "__main__":
    main()
