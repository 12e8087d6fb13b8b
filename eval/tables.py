"""Markdown tables of the recorded benchmark results (``eval/results/*.json``) for the README.

    python eval/tables.py            # print the tables
    python eval/tables.py --readme   # replace the block between the results markers in README.md

Every table names the command that produced its JSON, so a figure can be traced and re-made.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"
README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: Iterable[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_num(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _commands(doc: dict[str, Any]) -> str:
    command = doc.get("command") or doc.get("commands")
    commands = command if isinstance(command, list) else [command] if command else []
    return "; ".join(f"`{c}`" for c in commands)


def retrieval(doc: dict[str, Any]) -> str:
    rows = []
    for name, entry in doc["datasets"].items():
        m = entry["metrics"]
        lat = entry.get("latency", {}).get("hybrid", {})
        rows.append([name, m["dense"]["ndcg@10"], m["bm25"]["ndcg@10"], m["hybrid"]["ndcg@10"],
                     entry["hybrid_minus_best_single_ndcg@10"], m["hybrid"]["recall@20"], lat.get("p50_ms")])
    header = ["dataset", "dense nDCG@10", "BM25", "hybrid (default)", "hybrid − best single", "hybrid R@20",
              "hybrid p50 ms"]
    return f"**Retrieval** ({_commands(doc)}; latency: `{doc.get('latency_command', '')}`)\n\n" + _table(header, rows)


def ingest(doc: dict[str, Any]) -> str:
    rows = [
        ["chunks (files)", f"{doc['chunks']} ({doc['documents']})"],
        ["`ragpipe index` chunks/s", doc["ragpipe_chunks_per_s"]],
        ["raw `SentenceTransformer.encode` chunks/s (same texts)", doc["encode_chunks_per_s"]],
        ["ratio ragpipe / raw encode (goal ≥ 0.85)", doc["ratio_ragpipe_vs_encode"]],
        *_llamaindex_rows(doc),
        ["first index s", doc["first_index_s"]],
        ["re-index unchanged s (fraction of first; goal < 5 %)",
         f"{doc['reindex_unchanged_s']} ({100 * doc['reindex_fraction_of_first']:.1f} %)"],
        ["peak RSS MB", doc["peak_rss_mb"]],
    ]
    return f"**Ingestion** (`{doc['command']}`)\n\n" + _table(["measure", "value"], rows)


def _llamaindex_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """The LlamaIndex rows; from a subset run they also compare whole-folder time, since the two
    split documents into different numbers of chunks (LlamaIndex's default nodes are larger)."""
    subset = doc.get("llamaindex_comparison_subset")
    if not subset:
        return [["LlamaIndex `VectorStoreIndex` → Chroma chunks/s", doc.get("llamaindex_chunks_per_s")],
                ["ratio ragpipe / LlamaIndex (goal > 1)", doc.get("ratio_ragpipe_vs_llamaindex")]]
    ours_s = subset["ragpipe_chunks"] / subset["ragpipe_chunks_per_s"]
    theirs_s = subset["llamaindex_nodes"] / subset["llamaindex_chunks_per_s"]
    where = f"same run, {subset['documents']} files (`{subset['command']}`)"
    return [
        [f"LlamaIndex `VectorStoreIndex` → Chroma chunks/s, {where}",
         f"{subset['llamaindex_chunks_per_s']} ({subset['llamaindex_nodes']} nodes) vs ragpipe "
         f"{subset['ragpipe_chunks_per_s']} ({subset['ragpipe_chunks']} chunks)"],
        ["ratio ragpipe / LlamaIndex chunks/s (goal > 1)", subset["ratio_ragpipe_vs_llamaindex"]],
        ["ratio ragpipe / LlamaIndex files/s (whole folder)", f"{theirs_s / ours_s:.3f} ({ours_s:.0f} s vs {theirs_s:.0f} s)"],
    ]


def latency(doc: dict[str, Any], startup: dict[str, Any] | None, llm: dict[str, Any] | None,
            ask: dict[str, Any] | None = None) -> str:
    goals = doc.get("goals", {})
    by_method = goals.get("warm_overhead_ms_p50_by_method", {})
    rows = [[f"cold start: `ragpipe ask` process → first retrieved chunk, s (goal ≤ {_num(goals.get('cold_start_s'))})",
             f"{doc['cold_start_s']:.2f} on {doc['indexed_chunks']} chunks"]]
    steps = (doc.get("cold_start_steps") or {}).get("steps_s")
    if steps:
        rows.append(["cold start steps, s (p50, fresh interpreter)",
                     ", ".join(f"{name.replace('_', ' ')} {seconds:.2f}" for name, seconds in steps.items())])
    for method, w in doc["warm"].items():
        goal = by_method.get(method, goals.get("warm_overhead_ms_p50"))
        value = f"{w['p50']:.1f} / {w['p95']:.1f}"
        if "cpu_ms_p50" in w:
            value += f" (CPU {w['cpu_ms_p50']:.1f} / {w['cpu_ms_p95']:.1f})"
        rows.append([f"warm overhead per query without LLM time, `{method}`, ms p50 / p95 (goal ≤ {_num(goal)} p50)",
                     value])
    later = goals.get("peak_rss_mb_later_ask")
    rows.append([f"peak RSS of a real `ragpipe ask` on the indexed folder (embedded defaults), MB"
                 f"{f' (goal ≤ {later})' if later else ''}",
                 "not measured" if doc["peak_rss_mb"] is None else f"{doc['peak_rss_mb']:.0f}"])
    first = (ask or {}).get("first_ask")
    if first:
        rows.append([f"peak RSS of the first `ragpipe ask` (it indexes the npm docs), MB (goal ≤ "
                     f"{ask['goals'].get('peak_rss_mb_first_ask')})", f"{first['peak_rss_mb']:.0f} (wall {first['wall_s']:.0f} s)"])
        later_ask = ask["summary"].get("after", {}).get("peak_rss_mb_max")
        if later_ask is not None:
            rows.append([f"peak RSS of later `ragpipe ask`s (npm docs, default method), MB, max (goal ≤ "
                         f"{ask['goals'].get('peak_rss_mb_later_ask')})", f"{later_ask:.0f}"])
    if startup:
        rows.append(["`import ragpipe`, s (net of interpreter start; goal < 0.5)", f"{startup['import_ragpipe_net_s']:.3f}"])
        small = startup.get("cold_start")
        if small:
            rows.append(["cold start on the project's own docs (`bench_startup.py`), s: process wall / steps to the "
                         f"first hit (load average {startup['load_average'][0]:.1f})",
                         f"{small['process_wall_s']:.2f} / {small['to_first_hit_s']:.2f}"])
    if llm:
        run = llm["runs"].get("threads=2") or next(iter(llm["runs"].values()))
        for backend, b in run["backends"].items():
            sizes = sorted(b["first_token_s"], key=int)
            ttft = ", ".join(f"{b['prompt_tokens'][s]} tok {b['first_token_s'][s]['p50']:.2f} s" for s in sizes)
            rows.append([f"first token, {backend} (p50)", f"{ttft}; decode {b['decode_tokens_per_s']['p50']:.0f} tok/s"])
    if ask:
        rows += ask_rows(ask)
    commands = f"`{doc['command']}`" + (", `python eval/bench_startup.py`, `python eval/bench_llm.py`" if llm else "")
    if ask:
        commands += ", `python eval/bench_ask.py`"
    return f"**Latency and memory** ({commands}; load average at start {doc['load_average_at_start'][0]:.1f})\n\n" + \
        _table(["measure", "value"], rows)


def ask_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """``ragpipe ask`` wall and first answer text per variant (``after`` is this checkout)."""
    rows = []
    labels = {"after": "", "before": f" (before: {doc.get('baseline_ref')})", "after_no_verify": " (with --no-verify)"}
    for name, s in doc["summary"].items():
        where = f"npm docs, embedded defaults, median of {s['questions'] - s['failed']} questions"
        label = labels.get(name, f" ({name})")
        rows.append([f"`ragpipe ask` wall, s{label} ({where}; goal ≤ 10)", s.get("wall_s_median")])
        rows.append([f"`ragpipe ask` first answer text on stdout, s{label} (goal ≤ 4); without streaming",
                     f"{s.get('first_answer_s_median')}; {s.get('first_answer_s_unstreamed_median')}"])
    if cost := doc.get("verifier_cost"):
        rows.append(["what the verifier adds to an ask (wall with it minus without, median), s; share of the wall "
                     "(goal ≤ 25 %); its node's own share, which includes the first reading of the documents",
                     f"{cost['seconds_median']}; {cost['share_of_wall_median']:.0%}; "
                     f"{cost['node_share_of_wall_median']:.0%}"])
    return rows


SELECTOR_SETS = ("trec_dl2019_bm25", "trec_dl2020_bm25", "noveleval", "trec_dl2021_bm25")


def _selector_order(row: dict[str, Any]) -> tuple:
    """Model, dataset, the input order first, then method (its unbounded row right after it)."""
    name = row["dataset"]
    return (row.get("model", ""), SELECTOR_SETS.index(name) if name in SELECTOR_SETS else len(SELECTOR_SETS), name,
            row["backend"] != "-", row["method"].removesuffix(" (no harm bound)"), row["backend"],
            row["method"].endswith("(no harm bound)"))


def selector_summary(doc: dict[str, Any]) -> str:
    """Per model and method (harm bound on): nDCG@10 minus the input order's, and W/T/L, per dataset."""
    inputs = {(r["dataset"], r.get("model")): r["ndcg@10"] for r in doc["rows"] if r["backend"] == "-"}
    cells: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in doc["rows"]:
        base = inputs.get((r["dataset"], r.get("model")))
        if r["backend"] == "-" or base is None or r["method"].endswith("(no harm bound)"):
            continue
        wtl = "/".join(str(r["vs_input"][k]) for k in ("win", "tie", "loss")) if "vs_input" in r else "–"
        key = (r.get("model", "–"), r["method"], r["backend"])
        cells.setdefault(key, {})[r["dataset"]] = f"{r['ndcg@10'] - base:+.3f} ({wtl}, top {r.get('candidates', '–')})"
    header = ["model", "method", "backend", *(f"{name} Δ (W/T/L, candidates)" for name in SELECTOR_SETS)]
    rows = [[*key, *(cells[key].get(name, "not run") for name in SELECTOR_SETS)] for key in sorted(cells)]
    return _table(header, rows)


def selectors(doc: dict[str, Any]) -> str:
    inputs = {(r["dataset"], r.get("model")): r["ndcg@10"] for r in doc["rows"] if r["backend"] == "-"}
    rows = []
    for r in sorted(doc["rows"], key=_selector_order):
        q = r["per_query"]
        base = inputs.get((r["dataset"], r.get("model")))
        delta = "" if r["backend"] == "-" or base is None else f"{r['ndcg@10'] - base:+.3f}"
        wtl = "/".join(str(r["vs_input"][k]) for k in ("win", "tie", "loss")) if "vs_input" in r else ""
        ratio = r.get("ragpipe_listwise_over_peer")
        shared = q.get("same_calls_as")
        cost = ([f"as {shared}"] + [""] * 4) if shared else [q["llm_calls"], round(q["prompt_tokens"]),
                                                             q["completion_tokens"], q["wall_s"]]
        if shared:
            cost = cost[:4]
        rows.append([r.get("model", "–"), r["dataset"], r["backend"], r["method"], r["queries"],
                     r.get("candidates", "–"), r["ndcg@10"], delta,
                     wtl, *cost, q.get("queries_with_fallback", "") if not shared else "",
                     q.get("queries_input_order_kept", "") if not shared else "",
                     ", ".join(f"{k} {v}" for k, v in ratio.items()) if ratio else ""])
    header = ["model", "dataset", "backend", "method", "queries", "candidates", "nDCG@10", "Δ vs input",
              "W/T/L vs input",
              "calls/q", "prompt tok/q", "compl tok/q", "wall s/q", "fallback q", "input kept q",
              "ragpipe listwise / peer"]
    peers = doc.get("peer_rank_llm") or {}
    if "ran" in peers:  # one run, one model
        peers = {doc.get("model", ""): peers}
    notes = [f"Peer rank_llm did not run with {m}: {p.get('why', 'not attempted')}"
             for m, p in peers.items() if not p.get("ran", False)]
    kept = ", ".join(f"{m} median {s['median']} (max {s['max']})" for m, s in doc.get("elbow_kept_summary", {}).items())
    runs = doc.get("runs") or [doc.get("config", {})]
    commands = "; ".join(
        f"`python eval/bench_selectors.py{' --model ' + Path(c['model']).name if c.get('model') else ''} "
        f"--limit {c.get('limit')} --top {c.get('top')} --words {c.get('words')} --datasets {c.get('datasets')} "
        f"--methods {c.get('methods')} --backends {c.get('backends')}`" for c in runs)
    orders = sorted({f"{r['dataset']}: {r['input_order']}" for r in doc["rows"] if r.get("input_order")})
    head = (f"**LLM selectors** against the order they were given ({commands}; llama.cpp, 2 threads, temperature 0). "
            "Input orders: " + "; ".join(orders) + ". Every method runs with its harm bound on; "
            "the `(no harm bound)` row is the same LLM calls' own order.") if orders else \
        f"**LLM selectors** on BM25 candidates ({commands}; {doc.get('model', '')})"
    notes += list(doc.get("notes") or [])
    tail = "".join(f"\n\n{n}" for n in notes) + (f"\n\nElbow kept counts: {kept}." if kept else "")
    summary = ("Δ nDCG@10 against the input order with the harm bound on (per-query wins/ties/losses, "
               "candidates reranked):\n\n" + selector_summary(doc))
    return f"{head}\n\n{summary}\n\nEvery row:\n\n" + _table(header, rows) + tail


def poisoning(doc: dict[str, Any]) -> str:
    llm = (doc.get("setup") or {}).get("llm") or "no LLM"
    parts = [f"**Poisoning defences**, LLM {llm} ({_commands(doc)})"]
    if doc.get("commands_old_prompts"):  # rows kept from a run on earlier prompts
        old = _commands({"command": doc["commands_old_prompts"]})
        parts.append(f"{(doc.get('setup') or {}).get('prompts_note', '')}; rows on the old prompts from: {old}")
    for name, entry in doc["datasets"].items():
        answers = entry.get("answers") or {}
        rows = []
        for defence, d in entry["detection"].items():
            a = answers.get(defence) or {}
            rows.append([defence, d["precision"], d["recall"], d["f1"], d.get("clean_dropped_rate"),
                         d["flagged_share"], a.get("asr"), a.get("accuracy")])
        note = entry.get("detection_llm_subset_note", "")
        parts.append(f"`{name}` ({entry['questions']} questions; {note})\n\n" + _table(
            ["defence", "precision", "recall", "F1", "clean dropped", "flagged", "ASR", "accuracy"], rows))
        cost = entry.get("cost_per_question") or {}
        if cost:
            parts.append(_table(["defence", "LLM calls / question", "tokens / question", "verify s / question"],
                                [[d, c["llm_calls"], c["tokens"], c["verify_seconds"]] for d, c in cost.items()]))
    return "\n\n".join(parts)


def selection(doc: dict[str, Any]) -> str:
    """One row per dataset and method; METEORA rows compared with top-5 / top-10 on the same queries."""
    rows = []
    for name, entry in doc["datasets"].items():
        for method, m in entry["methods"].items():
            top5, top10 = m.get("top5_recall"), m.get("top10_recall")
            goals = ""
            if method.startswith("meteora") and top5 is not None:
                five = "✓" if m["recall"] >= top5 and m["chunks_kept"] <= 5 else "✗"
                ten = "✓" if m["recall"] >= top10 and m["chunks_kept"] <= 7 else "✗"
                goals = f"{five} / {ten}"
            wtl = m.get("vs_same_size_topk")
            rows.append([name, method, m.get("model") or "–", m["queries"], m["recall"], f"{m['chunks_kept']:.2f}",
                         m.get("max_chunks_kept"), top5, top10, m.get("same_size_topk_recall"),
                         f"{wtl['wins']}/{wtl['ties']}/{wtl['losses']}" if wtl else "–", goals])
    header = ["dataset", "method", "rationale model", "queries", "recall", "chunks kept", "max kept",
              "top-5 recall (same q)", "top-10 recall (same q)", "top-k same size", "W/T/L vs top-k same size",
              "≥ top-5 at ≤ 5 / ≥ top-10 at ≤ 7"]
    return (f"**Evidence selection**: recall of gold chunks and chunks kept per query ({_commands(doc)})\n\n"
            + _table(header, rows))


def answers(doc: dict[str, Any]) -> str:
    rows = []
    for key, run in sorted(doc["runs"].items()):
        wtl = run["wins_ties_losses"]
        for mode in ("baseline", "generate", "extractive", "auto"):
            m = run["modes"][mode]
            vs = ""
            if mode == "auto":
                vs = "; ".join(f"vs {o} {wtl[f'auto_vs_{o}']['wins']}/{wtl[f'auto_vs_{o}']['ties']}/"
                               f"{wtl[f'auto_vs_{o}']['losses']}" for o in ("generate", "extractive"))
                vs += f"; goal met: {'yes' if run['goal_auto_ge_best_single'] else 'no'}"
            rows.append([key if mode == "baseline" else "", mode, run["questions"] if mode == "baseline" else "",
                         _num(m["contains_gold"]), _num(m["token_f1"]), _num(m["degenerate_share"]),
                         _num(m["abstained_share"]), _num(m["cites_answer_chunk"]), _num(m["seconds_per_question"], 2),
                         vs])
    header = ["set/model", "mode", "q", "contains gold", "token F1", "degenerate", "abstained", "cites answer chunk",
              "s/question", "auto W/T/L, goal auto ≥ best single"]
    return ("**Answer modes** (`python eval/bench_answers.py --models smollm2,qwen --qwen GGUF`; baseline = the "
            "first generated answer before degenerate-answer handling)\n\n" + _table(header, rows))


def ragas_parity(doc: dict[str, Any]) -> str:
    rows = []
    for metric, a in doc["agreement"].items():
        ours = a["ours"]
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(ours["statuses"].items()))
        diff = "–" if a["mean_abs_diff"] is None else f"{a['mean_abs_diff']:.3f}"
        rows.append([metric, f"{ours['n_valid']}/{ours['n']} ({statuses})", f"{a['ragas_valid']}/{a['n']}",
                     a["n_both_valid"], diff])
    judge = f"judge {doc['judge']}, ragas {doc.get('ragas_version', '?')}, {doc.get('ragas_seconds', 0):.0f} s for ragas"
    timing = doc.get("timing") or {}
    if timing.get("questions_timed"):
        judge += (f"; seconds per question on the {timing['questions_timed']} both scored: ours "
                  f"{timing['ours_seconds_per_question']:.1f}, ragas {timing['ragas_seconds_per_question']:.1f}")
    return (f"**RAGAS parity** (`python eval/ragas_parity.py --limit {doc['limit']}`; {judge})\n\n"
            + _table(["metric", "ours valid (statuses)", "ragas valid", "both valid", "mean abs diff"], rows))


def serving(doc: dict[str, Any]) -> str:
    """Throughput, latency and the event loop's worst stall per path, garbage-collector mode and concurrency."""
    setup = doc["setup"]
    rows = [[r["path"], r.get("gc", "default"), r["concurrency"], r["throughput_rps"], r["ideal_rps"],
             f"{r['efficiency']:.2f}", r["latency_ms_p50"], r["latency_ms_p95"], r["worst_loop_stall_ms"],
             r["loop_stall_ms_p99"]] for r in doc["levels"]]
    header = ["path", "gc", "concurrency", "req/s", "ideal req/s", "efficiency", "p50 ms", "p95 ms",
              "worst loop stall ms", "p99 stall ms"]
    burst = ", ".join(f"{p} {_num(v['worst_loop_stall_ms'])} ms" for p, v in (doc.get("first_burst") or {}).items())
    full = "; ".join(f"{mode}: {c['full_gc_passes']}, longest {_num(c['full_gc_ms_max'])} ms"
                     for mode, c in (doc.get("full_gc") or {}).items())
    p99 = ""
    if "loop_stall_ms_p99" in doc:
        p99 = (f"; p99 stall {_num(doc['loop_stall_ms_p99'])} ms, after `gc.freeze()` "
               f"{_num(doc['loop_stall_ms_p99_gc_frozen'])} ms; the LLM alone, same run: worst "
               f"{_num(doc['baseline_worst_loop_stall_ms'])} ms, p99 {_num(doc['baseline_loop_stall_ms_p99'])} ms; "
               f"blocking work on {setup.get('worker_threads', '?')} `ragpipe-work` threads")
    return (f"**Serving** one `Pipeline`, LLM {setup['llm']}, method `{setup['method']}` ({_commands(doc)}): "
            f"`llm` is the LLM alone (baseline), `aask` coroutines, `ask` threads. Worst loop stall "
            f"{_num(doc['worst_loop_stall_ms'])} ms, after `gc.freeze()` "
            f"{_num(doc.get('worst_loop_stall_ms_gc_frozen'))} ms (goal < {_num(doc['goal']['worst_loop_stall_ms'])} ms; "
            f"idle loop {_num(doc['idle_loop']['worst_loop_stall_ms'])} ms){p99}. First burst, pools cold: {burst}. "
            f"Full garbage collections ({full}) stall the loop for as long as they take.\n\n"
            + _table(header, rows))


def render() -> str:
    blocks: list[str] = []
    sections: list[tuple[str, Callable[..., str], tuple[Any, ...]]] = [
        ("retrieval.json", retrieval, ()),
        ("ingest.json", ingest, ()),
        ("latency.json", latency, (_load("startup.json"), _load("llm.json"), _load("ask.json"))),
        ("serving.json", serving, ()),
        ("selectors.json", selectors, ()),
        ("selection.json", selection, ()),
        ("poisoning.json", poisoning, ()),
        ("poisoning_qwen.json", poisoning, ()),
        ("answers.json", answers, ()),
        ("ragas_parity.json", ragas_parity, ()),
    ]
    for name, fn, extra in sections:
        doc = _load(name)
        if doc is not None:
            blocks.append(fn(doc, *extra))
    return "\n\n".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readme", action="store_true", help=f"rewrite the block between {START} and {END}")
    args = parser.parse_args()
    tables = render()
    if not args.readme:
        print(tables)
        return
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} … {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{tables}\n{END}{tail}", encoding="utf-8")
    print(f"updated {README}")


if __name__ == "__main__":
    main()
