"""Selection benchmark: METEORA selection vs fixed top-k and vs the elbow on retrieval scores.

    python eval/bench_selection.py [--data DIR] [--limit 50] [--pool 20] [--llm-limit 2]

Data: BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels.tsv``) named by ``--datasets``,
by default ``hotpotqa_hipporag_train100``, ``musique_hipporag_train100``, ``scifact_goldpool``,
``fiqa_goldpool``; layout in ``eval/datasets.md``.

For each dataset the whole corpus is embedded once with the packaged MiniLM (vectors cached
under ``--cache``); each query's candidate pool is its dense top ``--pool`` (one corpus entry is
one chunk, so there is no neighbour expansion). Methods, all scored by ``recall`` of the qrels'
gold documents and ``chunks_kept`` per query:

- ``top5`` / ``top10``: the first k of the pool;
- ``elbow_retrieval``: ``apply_cutoff`` (z-score gap) on the dense scores;
- ``meteora_question``: METEORA with the question as its only rationale (no LLM);
- ``meteora_heuristic``: METEORA with oracle-free rationales built from the question text
  (each quoted or capitalised phrase and the question without its wh-word; the selector
  anchors the question itself),
  delivered through a scripted LLM so the selector's normal parsing path runs;
- ``meteora_llm:<model>``: METEORA with rationales from an LLM (embedded SmolLM2-135M by default,
  any GGUF with ``--model PATH``) on the first ``--llm-limit`` queries only (tens of seconds per
  call on 2 cores). Replies are kept in a response cache (``--llm-cache``), so a re-run with another
  cutoff setting replays them instead of calling the model again.

Every METEORA method runs with the selector's defaults (recall guard on) unless ``--set`` changes
them. Each row also carries, on the same queries: top-5 and top-10 recall, the recall of the
retriever's top-k with k = the method's own count per query (the guard's reference), and
per-query wins/ties/losses against each. Goals: recall >= top-5's with <= 5 chunks on average,
and >= top-10's with <= 7.
Results: a table on stdout and ``eval/results/selection.json`` (``--out``): per dataset and method
the mean recall, chunks kept and query count, the LLM usage; ``data``: the data folder and counts.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

from datapaths import add_data_arguments, merge_descriptions, open_data  # noqa: E402
from ragpipe.config import EmbeddingSettings, load_settings  # noqa: E402
from ragpipe.context import RunContext  # noqa: E402
from ragpipe.llm.scripted import ScriptedLLM  # noqa: E402
from ragpipe.schema import Chunk, ScoredChunk  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("hotpotqa_hipporag_train100", "musique_hipporag_train100", "scifact_goldpool", "fiqa_goldpool")


class VectorTable:
    """Stored chunk embeddings by id: the selector reads them instead of re-embedding the text."""

    def __init__(self, ids: list[str], vectors: np.ndarray) -> None:
        self.row = {i: n for n, i in enumerate(ids)}
        self.vectors = vectors

    def embeddings(self, ids: list[str]) -> np.ndarray:
        return self.vectors[[self.row[i] for i in ids]]


def load_dataset(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, set[str]]]:
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").open(encoding="utf-8")]
    qrels: dict[str, set[str]] = {}
    with (folder / "qrels.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if float(row["score"]) > 0:
                qrels.setdefault(row["query-id"], set()).add(row["corpus-id"])
    return corpus, [q for q in queries if q["_id"] in qrels], qrels


def corpus_vectors(name: str, texts: list[str], embedder: Any, cache: Path) -> np.ndarray:
    path = cache / f"{name}.{embedder.name.replace('/', '_')}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


_WH = re.compile(r"^\s*(what|which|who|whom|whose|when|where|why|how( many| much| long| old)?|is|are|was|were|did|does|do)\b\s*",
                 re.IGNORECASE)


def heuristic_rationales(question: str) -> list[str]:
    """Oracle-free facets from the question text alone (the selector adds the question itself)."""
    facets: list[str] = []
    facets += re.findall(r"[\"“']([^\"”']{3,80})[\"”']", question)
    for match in re.findall(r"[A-Z][\w'.-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w'.-]*)*", question):
        entity = _WH.sub("", match + " ").strip()
        if len(entity) > 3:
            facets.append(entity)
    stripped = _WH.sub("", question).rstrip("?").strip()
    if stripped and stripped != question.strip():
        facets.append(stripped)
    unique = list(dict.fromkeys(f for f in facets if f.split() and f != question.strip())) or [question.strip()]
    # Pad one-word facets into phrases so the rationale parser keeps them (it drops fragments).
    return [f if len(f.split()) >= 3 else f"passages about {f}" for f in unique]


def heuristic_llm() -> ScriptedLLM:
    def reply(request: Any) -> str:
        question = re.search(r"Question: (.*)", request.messages[-1].content).group(1)
        return json.dumps({"rationales": [{"text": t} for t in heuristic_rationales(question)]})

    return ScriptedLLM(fn=reply)


def recall(kept: list[ScoredChunk], gold: set[str]) -> float:
    return len({c.id for c in kept} & gold) / len(gold)


def wins_ties_losses(ours: list[float], theirs: list[float]) -> dict[str, int]:
    """Per-query comparison of two recall lists (same queries, same order)."""
    pairs = list(zip(ours, theirs))
    return {"wins": sum(a > b + 1e-9 for a, b in pairs), "ties": sum(abs(a - b) <= 1e-9 for a, b in pairs),
            "losses": sum(a < b - 1e-9 for a, b in pairs)}


async def run_dataset(
    name: str, args: argparse.Namespace, embedder: Any, llm: Any, model: str | None, folder: Path
) -> dict[str, Any]:
    from ragpipe.select import get_selector
    from ragpipe.select.cutoff import apply_cutoff

    corpus, queries, qrels = load_dataset(folder)
    queries = queries[: args.limit]
    ids = [d["_id"] for d in corpus]
    texts = [(f"{d.get('title')}\n{d['text']}" if d.get("title") else d["text"]) for d in corpus]
    vectors = corpus_vectors(name, texts, embedder, Path(args.cache))
    table = VectorTable(ids, vectors)
    methods: dict[str, dict[str, list[float]]] = {}
    llm_method = f"meteora_llm:{model}"
    usage = {llm_method: {"calls": 0, "cached_calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                          "llm_seconds": 0.0}} if llm is not None else {}
    fallbacks = {llm_method: 0} if llm is not None else {}

    def record(method: str, kept: list[ScoredChunk], gold: set[str]) -> None:
        entry = methods.setdefault(method, {"recall": [], "chunks_kept": [], "same_size_topk": [], "top5": [],
                                            "top10": []})
        entry["recall"].append(recall(kept, gold))
        entry["chunks_kept"].append(len(kept))
        entry["same_size_topk"].append(recall(pool[: len(kept)], gold))  # the harm bound's reference
        entry["top5"].append(recall(pool[:5], gold))
        entry["top10"].append(recall(pool[:10], gold))

    for n, query in enumerate(queries):
        gold = qrels[query["_id"]]
        scores = vectors @ embedder.embed_query(query["text"])
        order = [int(i) for i in np.argsort(-scores)[: args.pool]]
        pool = [
            ScoredChunk(chunk=Chunk(id=ids[i], doc_id=ids[i], position=0, text=texts[i]), score=float(scores[i]),
                        rank=r + 1, stage_scores={"dense": float(scores[i])}, stage_ranks={"dense": r + 1})
            for r, i in enumerate(order)
        ]
        record("top5", pool[:5], gold)
        record("top10", pool[:10], gold)
        cut = apply_cutoff([c.score for c in pool], method="zscore_gap")
        record("elbow_retrieval", pool[: cut.keep], gold)
        question_ctx = RunContext(llm=None, embedder=embedder, store=table)
        selection = await get_selector("meteora", rationales="question", **args.set).select(query["text"], pool,
                                                                                          question_ctx)
        record("meteora_question", selection.kept, gold)
        heuristic_ctx = RunContext(llm=heuristic_llm(), embedder=embedder, store=table)
        selection = await get_selector("meteora", **args.set).select(query["text"], pool, heuristic_ctx)
        record("meteora_heuristic", selection.kept, gold)
        if llm is not None and n < args.llm_limit:
            llm_ctx = RunContext(llm=llm, embedder=embedder, store=table)
            start = time.perf_counter()
            selector = get_selector("meteora", prompt=args.rationale_prompt, num_rationales=args.num_rationales,
                                    **args.set)
            selection = await selector.select(query["text"], pool, llm_ctx)
            fallbacks[llm_method] += any(e.kind == "fallback" for e in selection.trace)
            record(llm_method, selection.kept, gold)
            for u in llm_ctx.meter.by_node().values():
                for key in ("calls", "cached_calls", "prompt_tokens", "completion_tokens"):
                    usage[llm_method][key] += getattr(u, key)
                usage[llm_method]["llm_seconds"] = round(usage[llm_method]["llm_seconds"] + u.llm_seconds, 1)
            print(f"  {name} {query['_id']}: LLM rationales in {time.perf_counter() - start:.0f}s", file=sys.stderr,
                  flush=True)
    summary = {
        method: {
            "recall": round(float(np.mean(v["recall"])), 3),
            "chunks_kept": round(float(np.mean(v["chunks_kept"])), 2),
            "queries": len(v["recall"]),
            "model": model if method == llm_method else None,
            # Same queries, plain retriever order: top-k with k = this method's own count per query,
            # and top-5 / top-10 (these differ from the table's rows when a method ran on fewer queries).
            "same_size_topk_recall": round(float(np.mean(v["same_size_topk"])), 3),
            "top5_recall": round(float(np.mean(v["top5"])), 3),
            "top10_recall": round(float(np.mean(v["top10"])), 3),
            "vs_same_size_topk": wins_ties_losses(v["recall"], v["same_size_topk"]),
            "vs_top5": wins_ties_losses(v["recall"], v["top5"]),
            "vs_top10": wins_ties_losses(v["recall"], v["top10"]),
            "max_chunks_kept": int(max(v["chunks_kept"])),
        }
        for method, v in methods.items()
    }
    return {"queries": len(queries), "pool": args.pool, "methods": summary, "llm_usage": usage,
            "llm_rationale_fallbacks": fallbacks}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=50, help="queries per dataset")
    parser.add_argument("--pool", type=int, default=20, help="dense candidates per query")
    parser.add_argument("--llm-limit", type=int, default=20, help="queries per dataset with LLM rationales (0: none)")
    parser.add_argument("--model", default=None, metavar="PATH",
                        help="GGUF file for the rationale LLM (default: the packaged SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--llm-cache", default="/tmp/ragpipe-bench-llm-cache",
                        help="response cache for LLM rationales ('' to turn it off)")
    parser.add_argument("--rationale-prompt", default="rationale.short",
                        help="prompt for LLM rationales (rationale.short: 256-token replies, CPU-friendly)")
    parser.add_argument("--num-rationales", type=int, default=4, help="LLM rationales asked for per question")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", type=_setting,
                        help="METEORA settings for every meteora_* method, e.g. budget=6 knee_prominence=0.6")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--cache", default="/tmp/ragpipe-bench-vectors")
    parser.add_argument("--out", default=str(RESULTS / "selection.json"))
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="combine runs over different datasets into --out")
    add_data_arguments(parser)
    args = parser.parse_args()
    args.set = dict(args.set)
    if args.merge:
        runs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.merge]
        merged = merge_runs(runs)
        Path(args.out).write_text(json.dumps(merged, indent=2), encoding="utf-8")
        print_table(merged)
        return
    data = open_data(args, {name: ("queries.jsonl", "qrels.tsv", "corpus.jsonl") for name in args.datasets})

    from ragpipe.ingest.embed import get_embedder

    embedder = get_embedder(EmbeddingSettings())
    llm, model = None, None
    if args.llm_limit > 0:
        from ragpipe.llm.factory import build_llm

        model = Path(args.model).stem if args.model else "smollm2-135m-instruct"
        llm = build_llm(load_settings(llm__max_concurrency=1, llm__model=model, llm__model_path=args.model,
                                      llm__n_threads=args.threads, cache__enabled=bool(args.llm_cache),
                                      cache__path=args.llm_cache or None))
    results: dict[str, Any] = {
        "command": "python eval/bench_selection.py " + " ".join(sys.argv[1:]),
        "setup": {"embedder": embedder.name, "llm": f"{llm.backend}:{llm.model}" if llm else None,
                  "pool": f"dense top-{args.pool} over each dataset's corpus", "expansion": "none (one chunk per document)",
                  "meteora": "selector defaults (recall guard on) plus " + (json.dumps(args.set) if args.set else "nothing"),
                  "llm_rationales": f"prompt {args.rationale_prompt}, {args.num_rationales} per question, "
                                    "temperature 0"},
        "datasets": {},
        "data": data.describe(),
    }
    for name in args.datasets:
        start = time.perf_counter()
        results["datasets"][name] = await run_dataset(name, args, embedder, llm, model, data / name)
        results["datasets"][name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"{name}: done in {results['datasets'][name]['seconds']}s", file=sys.stderr, flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")  # after each dataset
    print_table(results)


def _setting(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it parses (numbers, true/false), else a string."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs over different datasets or models as one document; a later run's method row wins."""
    merged: dict[str, Any] = {"command": [], "setup": dict(runs[0]["setup"]), "datasets": {}}
    models = []
    for run in runs:
        commands = run["command"] if isinstance(run["command"], list) else [run["command"]]
        merged["command"] += [c for c in commands if c not in merged["command"]]
        models += [m for m in (run["setup"].get("llm"), *run["setup"].get("llms", [])) if m and m not in models]
        for name, entry in run["datasets"].items():
            into = merged["datasets"].setdefault(name, {**entry, "methods": {}, "llm_usage": {},
                                                        "llm_rationale_fallbacks": {}})
            for key in ("methods", "llm_usage", "llm_rationale_fallbacks"):
                into[key].update(entry.get(key, {}))
    merged["setup"]["llms"] = models
    merged["data"] = merge_descriptions(r.get("data") for r in runs)
    return merged


def print_table(results: dict[str, Any]) -> None:
    print(f"{'dataset':28} {'method':46} {'recall':>7} {'kept':>6} {'n':>4}")
    for name, res in results["datasets"].items():
        for method, m in res["methods"].items():
            print(f"{name:28} {method:46} {m['recall']:7.3f} {m['chunks_kept']:6.2f} {m['queries']:4}")


if __name__ == "__main__":
    asyncio.run(main())
