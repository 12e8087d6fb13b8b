"""Selector benchmark: nDCG@10 and LLM cost of every selector against the order it was given.

    python eval/bench_selectors.py [--data DIR] [--model PATH.gguf] [--limit 16] [--top 20] [--words 40]
        [--datasets trec_dl2019_bm25,...] [--methods listwise,...] [--backends embedded,server] [--merge]
        [--cache DIR]

Data: ``trec_dl2019_bm25``, ``trec_dl2020_bm25`` and ``trec_dl2021_bm25`` (``queries.jsonl``, ``qrels.tsv``,
``run_bm25_top100.tsv``, ``corpus.jsonl``) and ``noveleval`` (the same with ``run_candidates.tsv``);
layout in ``eval/datasets.md``.

For each dataset (TREC DL19/DL20/DL21 BM25 top-100, NovelEval candidates; graded qrels) and each of
the first ``--limit`` queries, the top ``--top`` candidates (passages cut to ``--words`` words)
are reranked by each selector with the LLM (``--model``, a GGUF file; the packaged SmolLM2 by
default) served (a) in-process by llama.cpp and/or (b) by llama.cpp's OpenAI-compatible server.
The input order each method starts from is named in the output (``input_order``) and is the
baseline row. Per method: nDCG@10 (ranx), per-query wins/ties/losses against the input order,
LLM calls, prompt and completion tokens and wall seconds per query, and how many queries traced
a fallback or had the harm bound keep the input order. Every selector runs with its harm bound
(on by default); the LLM's own order before the bound comes with each selection, so a
``<method> (no harm bound)`` row shows what the bound changed, from the same LLM calls.
The elbow cutoff's kept-count distribution is reported over every ranked list, per model,
dataset and method (``elbow_kept_summary_runs``) and pooled per method (``elbow_kept_summary``).
In the same run, on the same server, the peer rank_llm (RankGPT listwise, same window and
stride) reranks the same candidates from its own venv (``eval/peer_rankllm.py`` says how to
build it; ``--peer-python``), with ragpipe listwise / peer ratios of cost and nDCG@10.
Prints a table and writes ``eval/results/selectors.json`` (``--out``): one row per model, dataset,
backend and method with nDCG@10 and per-query cost, the elbow's kept counts, the peer's figures;
``data``: the data folder and the record counts it ran on. ``--merge`` keeps the rows of other
models, datasets and methods already there, so one benchmark can run in several invocations.
``--cache DIR`` answers repeated temperature-0 requests from a disk cache, so methods that ask
the same prompts (``listwise_first`` and ``listwise_first_calibrated``) share their calls; a
row's ``cached_calls`` says how many of its calls came from the cache (their wall time is not spent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datapaths import add_data_arguments, open_data  # noqa: E402

from ragpipe.context import RunContext  # noqa: E402
from ragpipe.llm.wrappers import Limited  # noqa: E402
from ragpipe.schema import Chunk, ScoredChunk  # noqa: E402
from ragpipe.select import get_selector  # noqa: E402
from ragpipe.select.cutoff import apply_cutoff  # noqa: E402

DATASETS = {"trec_dl2019_bm25": "run_bm25_top100.tsv", "trec_dl2020_bm25": "run_bm25_top100.tsv",
            "noveleval": "run_candidates.tsv", "trec_dl2021_bm25": "run_bm25_top100.tsv"}
INPUT_ORDER = {"trec_dl2019_bm25": "BM25 (run_bm25_top100.tsv rank order)",
               "trec_dl2020_bm25": "BM25 (run_bm25_top100.tsv rank order)",
               "trec_dl2021_bm25": "BM25 (run_bm25_top100.tsv rank order)",
               "noveleval": "NovelEval candidate order (run_candidates.tsv rank order; no retriever scores)"}
METHODS: dict[str, tuple[str, dict[str, Any]]] = {  # each selector's defaults unless named
    "listwise": ("listwise", {"window": 20, "stride": 10}),
    "listwise_first": ("listwise", {"window": 20, "stride": 10, "mode": "first"}),
    "listwise_first_calibrated": ("listwise", {"window": 20, "stride": 10, "mode": "first", "calibrate": True}),
    "listwise_checked": ("listwise", {"window": 20, "stride": 10, "check_reversed": True}),
    "groupwise": ("groupwise", {"group_size": 20}),
    "pointwise_yesno": ("pointwise_yesno", {}),
    "pointwise_scale": ("pointwise_scale", {}),
    "pointwise_ensemble": ("pointwise_ensemble", {}),
    "pairwise": ("pairwise", {}),
    "pairwise_allpairs": ("pairwise", {"method": "allpairs"}),
}
DEFAULT_METHODS = "listwise,pointwise_scale,pointwise_yesno,listwise_first,groupwise,pairwise"
RESULTS = Path(__file__).resolve().parent / "results" / "selectors.json"


def read_tsv(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t") for line in lines if line.strip()]


def load(folder: Path, limit: int, top: int, words: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Queries with their top candidates as ScoredChunks, and the graded qrels."""
    queries = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for qid, did, grade in read_tsv(folder / "qrels.tsv"):
        qrels[qid][did] = int(float(grade))
    runs: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for qid, did, rank, score in read_tsv(folder / DATASETS[folder.name]):
        runs[qid].append((did, float(score), int(rank)))  # type: ignore[arg-type]
    chosen = [qid for qid in runs if qid in queries and any(g > 0 for g in qrels.get(qid, {}).values())][:limit]
    needed = {did for qid in chosen for did, *_ in sorted(runs[qid], key=lambda r: r[2])[:top]}
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        if str(doc["_id"]) in needed:
            text = " ".join(doc["text"].split()[:words])
            corpus[str(doc["_id"])] = f"{doc['title']}: {text}" if doc.get("title") else text
    items = []
    for qid in chosen:
        ranked = sorted(runs[qid], key=lambda r: r[2])[:top]
        candidates = [
            ScoredChunk(chunk=Chunk(id=did, doc_id=did, position=0, text=corpus[did]), score=score, rank=rank,
                        stage_scores={"bm25": score}, stage_ranks={"bm25": rank})
            for did, score, rank in ranked if did in corpus
        ]
        items.append({"qid": qid, "question": queries[qid], "candidates": candidates})
    return items, {q: qrels[q] for q in chosen}


def ndcg10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    from ranx import Qrels, Run, evaluate  # numba: seconds to import, so not before --check-data

    return float(evaluate(Qrels(qrels), Run(run), "ndcg@10"))


def per_query_ndcg(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    return {qid: ndcg10({qid: qrels[qid]}, {qid: run[qid]}) for qid in run}


def win_tie_loss(method: dict[str, float], baseline: dict[str, float], eps: float = 1e-9) -> dict[str, int]:
    """Queries where the method's nDCG@10 is above / equal to / below the input order's."""
    diffs = [method[q] - baseline[q] for q in method]
    return {"win": sum(d > eps for d in diffs), "tie": sum(abs(d) <= eps for d in diffs),
            "loss": sum(d < -eps for d in diffs)}


def model_name(path: Path | None) -> str:
    return path.stem if path else "smollm2-135m-instruct (packaged, Q4_1)"


def run_peer(python: Path, server: Any, data: dict[str, Any], window: int, step: int, out_dir: Path) -> dict[str, Any]:
    """rank_llm's RankGPT listwise reranker (its own venv, ``eval/peer_rankllm.py``) on the same server."""
    items = [{"qid": it["qid"], "question": it["question"],
              "candidates": [{"id": c.id, "text": c.chunk.text, "score": c.score} for c in it["candidates"]]}
             for items, _ in data.values() for it in items]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "peer_items.json").write_text(json.dumps(items))
    command = [str(python), str(Path(__file__).with_name("peer_rankllm.py")), "--base-url", server.base_url,
               "--model", server.model_alias, "--input", str(out_dir / "peer_items.json"),
               "--out", str(out_dir / "peer.json"), "--window", str(window), "--step", str(step)]
    proc = subprocess.run(command, capture_output=True, text=True)
    try:
        result = json.loads((out_dir / "peer.json").read_text())
    except (OSError, ValueError):
        result = {"ran": False, "why": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    result["command"] = " ".join(command)
    return result


def peer_rows(peer: dict[str, Any], data: dict[str, Any], rows: list[dict[str, Any]], model: str,
              baselines: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per dataset for the peer, and ragpipe listwise / peer ratios on the same server."""
    added = []
    for name, (items, qrels) in data.items():
        per = [peer["per_query"][it["qid"]] for it in items if it["qid"] in peer["per_query"]]
        if not per:
            continue
        run = {}
        for it in items:
            ranking = peer["per_query"][it["qid"]]["ranking"]
            run[it["qid"]] = {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}
        cost = {k: round(statistics.mean(q[k] for q in per), 3)
                for k in ("llm_calls", "prompt_tokens", "completion_tokens", "wall_s")}
        row = {"dataset": name, "backend": "server", "method": "rank_llm_listwise (peer)", "queries": len(per),
               "model": model, "input_order": INPUT_ORDER[name], "ndcg@10": round(ndcg10(qrels, run), 4),
               "per_query": cost}
        if name in baselines:
            row["vs_input"] = win_tie_loss(per_query_ndcg(qrels, run), baselines[name])
        ours = next((r for r in rows if r["dataset"] == name and r["backend"] == "server"
                     and r["method"] == "listwise" and r.get("model") == model), None)
        if ours:
            row["ragpipe_listwise_over_peer"] = {
                k: (round(ours["per_query"][k] / cost[k], 3) if cost[k] else None)
                for k in ("llm_calls", "prompt_tokens", "completion_tokens", "wall_s")
            } | {"ndcg@10": round(ours["ndcg@10"] / row["ndcg@10"], 3) if row["ndcg@10"] else None}
        added.append(row)
    return added


def build_backends(names: list[str], stack: ExitStack, n_ctx: int, model_path: Path | None,
                   cache: Path | None = None) -> dict[str, Any]:
    from ragpipe.llm.cache import Cached
    from ragpipe.models import packaged_smollm2

    def cached(llm: Any) -> Any:
        return Cached(llm, cache) if cache else llm

    path = model_path or packaged_smollm2()
    backends: dict[str, Any] = {}
    if "embedded" in names:
        from ragpipe.llm.llamacpp import LlamaCppLLM

        backends["embedded"] = Limited(cached(LlamaCppLLM(path, model=model_name(model_path), n_ctx=n_ctx,
                                                          n_threads=2)), 1)
    if "server" in names:
        from ragpipe.llm.llamacpp_server import LlamaCppServer
        from ragpipe.llm.openai_compat import OpenAICompatLLM

        server = stack.enter_context(LlamaCppServer(model_path=path, model_alias=model_name(model_path)[:60],
                                                    n_ctx=n_ctx, n_threads=2))
        backends["server_process"] = server
        backends["server"] = Limited(cached(OpenAICompatLLM(base_url=server.base_url, model=server.model_alias,
                                                            json_mode="json_object", context_window=n_ctx,
                                                            timeout_s=300, max_retries=0)), 1)
    return backends


async def run_method(items: list[dict[str, Any]], selector: Any, llm: Any, top: int | None) -> dict[str, Any]:
    run: dict[str, dict[str, float]] = {}
    unbounded: dict[str, dict[str, float]] = {}
    cost = defaultdict(float)
    kept: list[int] = []
    decisions: dict[str, list[dict[str, Any]]] = {}  # per query: the harm bound's decision, for eval/work/
    for item in items:
        candidates = item["candidates"][:top] if top else item["candidates"]
        ctx = RunContext(llm=llm)
        start = time.perf_counter()
        selection = await selector.select(item["question"], candidates, ctx)
        cost["wall_s"] += time.perf_counter() - start
        usage = selection.usage
        cost["llm_calls"] += usage.calls
        cost["prompt_tokens"] += usage.prompt_tokens
        cost["completion_tokens"] += usage.completion_tokens
        cost["failed_calls"] += usage.failed_calls
        cost["cached_calls"] += usage.cached_calls
        cost["queries_with_fallback"] += any(e.kind == "fallback" for e in selection.trace)
        cost["repairs"] += sum(e.kind == "repair" for e in selection.trace)
        harm = [e.data.get("trusted") for e in selection.trace if e.kind == "harm_bound"]
        cost["queries_input_order_kept"] += "input" in harm
        tail = [c for c in item["candidates"] if c.id not in {r.id for r in selection.ranked}]
        ranked = selection.ranked + tail
        n = len(ranked)
        run[item["qid"]] = {c.id: float(n - i) for i, c in enumerate(ranked)}
        llm_order = selection.extras.get("llm_order")
        by_id = {c.id: c for c in selection.ranked}
        own = [by_id[i] for i in llm_order] + tail if llm_order is not None else ranked
        unbounded[item["qid"]] = {c.id: float(n - i) for i, c in enumerate(own)}
        kept.append(apply_cutoff([c.score for c in selection.ranked], "zscore_gap").keep)
        decisions[item["qid"]] = [e.model_dump() for e in selection.trace if e.kind in ("harm_bound", "info")]
    per_query = {k: round(v / max(1, len(items)), 3) for k, v in cost.items()}
    return {"run": run, "unbounded": unbounded, "per_query": per_query, "kept": kept, "decisions": decisions}


def write_decisions(out: dict[str, Any], qrels: dict[str, dict[str, int]], baseline: dict[str, float],
                    label: str) -> None:
    """Per query: nDCG@10 of the input, the bounded and the LLM's own order, and the trace behind it."""
    bounded, own = per_query_ndcg(qrels, out["run"]), per_query_ndcg(qrels, out["unbounded"])
    doc = {qid: {"input": baseline[qid], "bounded": bounded[qid], "llm": own[qid], "trace": out["decisions"][qid]}
           for qid in out["run"]}
    folder = Path(__file__).resolve().parent / "work"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"decisions_{label}.json").write_text(json.dumps(doc, indent=1, default=str))


def summary(values: list[int]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)} if values else {}


def row_key(row: dict[str, Any]) -> tuple:
    return row["dataset"], row["backend"], row["method"], row.get("model")


def with_elbow_summaries(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with its elbow kept counts pooled per method and summarised per method and per run.

    ``elbow_kept_runs`` (model → dataset → method → counts) is the record; ``elbow_kept`` and
    ``elbow_kept_summary`` pool it per method, ``elbow_kept_summary_runs`` summarises each entry.
    Counts from files written before ``elbow_kept_runs`` existed stay pooled under their method.
    """
    runs = doc.get("elbow_kept_runs", {})
    pooled: dict[str, list[int]] = defaultdict(list)
    for datasets in runs.values():
        for methods in datasets.values():
            for method, counts in methods.items():
                pooled[method].extend(counts)
    for method, counts in doc.get("elbow_kept_legacy", {}).items():
        pooled[method].extend(counts)
    return {**doc, "elbow_kept": dict(pooled), "elbow_kept_summary": {m: summary(v) for m, v in pooled.items()},
            "elbow_kept_summary_runs": {model: {name: {m: summary(v) for m, v in methods.items()}
                                                for name, methods in datasets.items()}
                                        for model, datasets in runs.items()}}


def merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus what of ``old`` it did not re-measure (other models, datasets or methods)."""
    fresh = {row_key(r) for r in new["rows"]}
    rows = [r for r in old.get("rows", []) if r.get("model") and row_key(r) not in fresh] + new["rows"]
    earlier = old.get("runs") or ([old["config"]] if "config" in old else [])  # a file written without --merge
    runs = [c for c in earlier if c != new["config"]] + [new["config"]]
    out = {**old, **new, "rows": rows, "runs": runs}
    out["peer_rank_llm"] = {**old.get("peer_rank_llm", {}), **new.get("peer_rank_llm", {})}
    kept = {model: {name: dict(methods) for name, methods in datasets.items()}
            for model, datasets in old.get("elbow_kept_runs", {}).items()}
    for model, datasets in new.get("elbow_kept_runs", {}).items():
        for name, methods in datasets.items():
            kept.setdefault(model, {}).setdefault(name, {}).update(methods)
    out["elbow_kept_runs"] = kept
    # A file from before elbow_kept_runs: its pooled counts have no run; a method measured anew replaces them.
    legacy = old.get("elbow_kept_legacy", {} if "elbow_kept_runs" in old else old.get("elbow_kept", {}))
    remeasured = {m for datasets in new.get("elbow_kept_runs", {}).values() for methods in datasets.values()
                  for m in methods}
    out["elbow_kept_legacy"] = {m: v for m, v in legacy.items() if m not in remeasured}
    return with_elbow_summaries(out)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="GGUF model for the embedded and server backends (default: the packaged SmolLM2)")
    parser.add_argument("--limit", type=int, default=16, help="queries per dataset (NovelEval has 11)")
    parser.add_argument("--top", type=int, default=20, help="candidates per query")
    parser.add_argument("--words", type=int, default=40, help="words kept per passage")
    parser.add_argument("--pairwise-top", type=int, default=0,
                        help="candidates for pairwise (0: all --top; all pairs is N(N-1) calls)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated, of: {', '.join(METHODS)}")
    parser.add_argument("--backends", default="embedded")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--peer-python", type=Path, default=Path("/tmp/rankllm-venv/bin/python"),
                        help="python of the rank_llm venv (see eval/peer_rankllm.py); the peer runs on the "
                             "server backend when it exists")
    parser.add_argument("--merge", action="store_true", help="keep other rows already in --out")
    parser.add_argument("--cache", type=Path, default=None,
                        help="disk cache of temperature-0 LLM answers (outside the project), shared by methods "
                             "that ask the same prompts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    add_data_arguments(parser)
    args = parser.parse_args()
    data_folder = open_data(args, {name: ("queries.jsonl", "qrels.tsv", DATASETS[name], "corpus.jsonl")
                                   for name in args.datasets.split(",")})
    if args.model is not None and not args.model.is_file():
        parser.error(f"--model {args.model}: no such GGUF file")
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {', '.join(METHODS)}")

    model = model_name(args.model)
    data = {name: load(data_folder / name, args.limit, args.top, args.words) for name in args.datasets.split(",")}
    results: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "model": f"{model} (llama.cpp, 2 threads, temperature 0)",
        "rows": [], "elbow_kept_runs": {model: {}}, "data": data_folder.describe(),
    }
    kept_runs = results["elbow_kept_runs"][model]
    previous = json.loads(args.out.read_text()) if args.merge and args.out.exists() else {}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = merged(previous, results) if args.merge else with_elbow_summaries(results)
        args.out.write_text(json.dumps(doc, indent=1))

    rows = results["rows"]
    baselines: dict[str, dict[str, float]] = {}
    for name, (items, qrels) in data.items():
        # Rank order, not scores: NovelEval's candidate lists carry no scores (all 0).
        baseline = {it["qid"]: {c.id: float(len(it["candidates"]) - i) for i, c in enumerate(it["candidates"])}
                    for it in items}
        baselines[name] = per_query_ndcg(qrels, baseline)
        rows.append({"dataset": name, "backend": "-", "method": "input order", "model": model,
                     "input_order": INPUT_ORDER[name], "queries": len(items),
                     "ndcg@10": round(ndcg10(qrels, baseline), 4),
                     "per_query": {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "wall_s": 0.0}})
        kept_runs.setdefault(name, {})["input order"] = [
            apply_cutoff([c.score for c in it["candidates"]], "zscore_gap").keep for it in items]
    with ExitStack() as stack:
        backends = build_backends(args.backends.split(","), stack, args.n_ctx, args.model, args.cache)
        server = backends.pop("server_process", None)
        for backend, llm in backends.items():
            for method in args.methods.split(","):
                selector_name, config = METHODS[method]
                selector = get_selector(selector_name, **config)
                top = args.pairwise_top or None if selector_name == "pairwise" else None
                for name, (items, qrels) in data.items():
                    out = await run_method(items, selector, llm, top)
                    common = {"dataset": name, "backend": backend, "model": model, "input_order": INPUT_ORDER[name],
                              "queries": len(items), "candidates": top or args.top}
                    for label, run, per_query in ((method, out["run"], out["per_query"]),
                                                  (f"{method} (no harm bound)", out["unbounded"], None)):
                        row = {**common, "method": label, "ndcg@10": round(ndcg10(qrels, run), 4),
                               "vs_input": win_tie_loss(per_query_ndcg(qrels, run), baselines[name]),
                               "per_query": per_query or {**out["per_query"], "same_calls_as": method}}
                        rows.append(row)
                        print(f"{name:18} {backend:8} {label:30} nDCG@10 {row['ndcg@10']:.3f} "
                              f"W/T/L {row['vs_input']} {json.dumps(out['per_query'])}", flush=True)
                    kept_runs[name][f"{method} ({backend})" if len(backends) > 1 else method] = out["kept"]
                    write_decisions(out, qrels, baselines[name], f"{model}_{name}_{backend}_{method}")
                    save()
        if server is not None and args.peer_python.exists():
            window, stride = METHODS["listwise"][1]["window"], METHODS["listwise"][1]["stride"]
            peer = run_peer(args.peer_python, server, data, window, stride, Path(__file__).resolve().parent / "work")
            results["peer_rank_llm"] = {model: {k: v for k, v in peer.items() if k != "per_query"}}
            if peer.get("ran"):
                extra = peer_rows(peer, data, rows, model, baselines)
                rows.extend(extra)
                for row in extra:
                    print(f"{row['dataset']:18} server   {row['method']:30} nDCG@10 {row['ndcg@10']:.3f} "
                          f"{json.dumps(row['per_query'])}", flush=True)
        elif server is not None:
            results["peer_rank_llm"] = {model: {"ran": False, "why": f"no rank_llm venv at {args.peer_python} "
                                                "(build it as eval/peer_rankllm.py says)"}}
    print_table(rows)
    save()
    print(f"wrote {args.out}")


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'dataset':18} {'backend':8} {'method':30} {'nDCG@10':>8} {'W/T/L':>9} {'calls':>6} {'prompt':>7} "
              f"{'compl':>6} {'wall_s':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        q = r["per_query"]
        wtl = "/".join(str(r["vs_input"][k]) for k in ("win", "tie", "loss")) if "vs_input" in r else "-"
        print(f"{r['dataset']:18} {r['backend']:8} {r['method']:30} {r['ndcg@10']:8.3f} {wtl:>9} "
              f"{q['llm_calls']:6.1f} {q['prompt_tokens']:7.0f} {q['completion_tokens']:6.1f} {q['wall_s']:7.1f}")


if __name__ == "__main__":
    asyncio.run(main())
