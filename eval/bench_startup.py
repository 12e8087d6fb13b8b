"""Startup cost: ``import ragpipe``, ``ragpipe --version``, and the cold start of an ``ask``, step by step.

    python eval/bench_startup.py [--repeats 15] [--steps-repeats 5] [--docs FOLDER] [--no-steps]

Data: no evaluation data. The cold-start steps run on ``--docs`` when given (it must
be indexed already), else on the project's own Markdown documentation, copied to
``eval/work/startup/docs`` and indexed there once.

* ``python_bare_s``/``import_ragpipe_s``/``cli_version_s``: p50, min and max seconds of each
  command in a fresh process, and the import time net of interpreter start. Goal: ``import
  ragpipe`` < 0.5 s.
* ``cold_start``: wall seconds of each step of ``ragpipe ask --retrieve-only`` in a fresh
  interpreter (imports of the ask path, chromadb import, bm25s import, Chroma client start and
  index open, query-encoder load, first query, second query), median over repeats; and
  ``python -X importtime`` self time summed per top-level module over the same run, which is
  steadier than wall time on a loaded machine. ``load_average`` is recorded with the figures.

Every child process runs with ``PYTHONPATH`` set to this checkout, so a checkout of another
branch measures its own code. Prints a table and writes eval/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "startup.json"
OWN_DOCS = ROOT / "eval" / "work" / "startup" / "docs"
QUESTION = "How do I ask a question over a folder of documents?"

# Runs in the child: argv = docs folder, question. Prints one JSON line of step seconds.
STEPS = r'''
import json, os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
marks = [("start", time.perf_counter())]
def mark(name): marks.append((name, time.perf_counter()))
import ragpipe.pipeline, ragpipe.graph, ragpipe.retrieve.retriever, ragpipe.ingest.indexer, ragpipe.config
mark("import_ask_path")
import chromadb
mark("import_chromadb")
import ragpipe.retrieve.bm25 as bm25
(bm25.bm25s_module() if hasattr(bm25, "bm25s_module") else __import__("bm25s"))
mark("import_bm25s")
from ragpipe.config import load_settings
from ragpipe.ingest.indexer import resolve_index_dir
from ragpipe.ingest.embed import embedder_name
from ragpipe.ingest.store import ChunkStore
from ragpipe.ingest.embed import get_query_embedder
settings = load_settings()
index_dir = resolve_index_dir(sys.argv[1], settings)
store = ChunkStore.open(index_dir, settings.store, embedding_model=embedder_name(settings.embedding))
mark("client_start_and_index_open")
embedder = get_query_embedder(settings.embedding)
store.check_embedder(embedder.name, embedder.dim)
mark("query_encoder_load")
from ragpipe.retrieve import Retriever
retriever = Retriever(store, embedder, settings.retrieval)
hits = retriever.retrieve(sys.argv[2], k=10)
mark("first_query")
retriever.retrieve(sys.argv[2] + " again", k=10)
mark("second_query")
steps = {name: t - marks[i][1] for i, (name, t) in enumerate(marks[1:])}
print(json.dumps({"steps": steps, "hits": len(hits), "frameworks": sorted(
    {m.split(".")[0] for m in sys.modules} & {"langchain_core", "langsmith", "llama_index", "numba", "torch"})}))
'''

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}


def import_self_ms(root: Path, docs: Path, question: str) -> dict[str, float]:
    """``-X importtime`` self time (ms) summed per top-level module over the whole cold start."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", STEPS, str(docs), question],
                          capture_output=True, text=True, cwd=root, env=_env(root), check=True)
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            top = match.group(4).split(".")[0]
            totals[top] = totals.get(top, 0.0) + int(match.group(1)) / 1000
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def cold_start_steps(root: Path, docs: Path, question: str, repeats: int) -> dict:
    """Median seconds per step, the process wall time, and import cost per top-level module."""
    runs, walls = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", STEPS, str(docs), question],
                              capture_output=True, text=True, cwd=root, env=_env(root))
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"cold start steps failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    steps = {name: statistics.median(r["steps"][name] for r in runs) for name in runs[0]["steps"]}
    imports = import_self_ms(root, docs, question)
    return {
        "repeats": repeats,
        "process_wall_s": statistics.median(walls),
        "steps_s": steps,
        "steps_samples_s": [r["steps"] for r in runs],
        "to_first_hit_s": sum(v for k, v in steps.items() if k != "second_query"),
        "frameworks_loaded": runs[0]["frameworks"],
        "import_self_ms_total": sum(imports.values()),
        "import_self_ms": {k: round(v, 1) for k, v in list(imports.items())[:15]},
    }


def print_steps(result: dict) -> None:
    print(f"{'cold start step':<30}{'p50 s':>8}")
    for name, seconds in result["steps_s"].items():
        print(f"{name:<30}{seconds:>8.3f}")
    print(f"{'process wall (incl. interpreter)':<30}{result['process_wall_s']:>8.3f}")
    print("import self time by top-level module (ms, -X importtime): "
          + ", ".join(f"{k} {v:.0f}" for k, v in list(result["import_self_ms"].items())[:10])
          + f"; total {result['import_self_ms_total']:.0f}")
    print(f"frameworks loaded: {result['frameworks_loaded'] or 'none'}")


def time_command(cmd: list[str], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=_env(ROOT))
        samples.append(time.perf_counter() - start)
    return samples


def own_docs() -> Path:
    """The project's Markdown files, copied and indexed once (the cold start runs on them)."""
    if not (OWN_DOCS.parent / "indexed").is_file():
        OWN_DOCS.mkdir(parents=True, exist_ok=True)
        for path in [ROOT / "README.md", *sorted((ROOT / "eval").glob("*.md"))]:
            shutil.copy(path, OWN_DOCS / path.name)
        subprocess.run([sys.executable, "-m", "ragpipe", "index", str(OWN_DOCS)], check=True, cwd=ROOT,
                       env=_env(ROOT), capture_output=True)
        (OWN_DOCS.parent / "indexed").write_text("yes\n")
    return OWN_DOCS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps-repeats", type=int, default=5)
    parser.add_argument("--docs", type=Path, default=None, help="an indexed folder for the cold-start steps")
    parser.add_argument("--no-steps", action="store_true", help="only the import and --version timings")
    args = parser.parse_args()
    load = os.getloadavg()
    rows = {
        "python_bare_s": [sys.executable, "-c", "pass"],
        "import_ragpipe_s": [sys.executable, "-c", "import ragpipe"],
        "cli_version_s": [sys.executable, "-m", "ragpipe", "--version"],
    }
    results: dict = {}
    for name, cmd in rows.items():
        samples = time_command(cmd, args.repeats)
        results[name] = {"p50": statistics.median(samples), "min": min(samples), "max": max(samples)}
    results["import_ragpipe_net_s"] = results["import_ragpipe_s"]["p50"] - results["python_bare_s"]["p50"]
    print(f"{'measure':<22}{'p50 s':>10}{'min s':>10}{'max s':>10}")
    for name in rows:
        r = results[name]
        print(f"{name:<22}{r['p50']:>10.3f}{r['min']:>10.3f}{r['max']:>10.3f}")
    print(f"import ragpipe (net of interpreter start): {results['import_ragpipe_net_s']:.3f} s (goal < 0.5 s)")
    extra: dict = {"load_average": load, "checkout": str(ROOT)}
    if not args.no_steps:
        docs = args.docs or own_docs()
        extra["cold_start"] = {"docs": str(docs), "question": QUESTION,
                               **cold_start_steps(ROOT, docs, QUESTION, args.steps_repeats)}
        print_steps(extra["cold_start"])
    extra["load_average_at_end"] = os.getloadavg()
    print(f"load average at start {load[0]:.2f}, at end {extra['load_average_at_end'][0]:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"repeats": args.repeats, **results, **extra}, indent=2) + "\n")


if __name__ == "__main__":
    main()
