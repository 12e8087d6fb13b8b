"""Reports of a run: ``report.json`` (config, versions, seed, aggregates, per-query rows),
``summary.md`` (the tables) and PNG plots (quality against tokens, chunks kept, score curves).

Every number in the markdown comes from the aggregates in the JSON, formatted the same way, so
the two cannot disagree; each cell shows ``mean (n_valid/n)``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ragpipe.evaluate.cost import mean_cost
from ragpipe.evaluate.metric import Aggregate, aggregate
from ragpipe.evaluate.poisoning import micro_detection

PACKAGES: tuple[str, ...] = ("ragpipe", "ranx", "llama_cpp_python", "sentence-transformers", "chromadb", "bm25s",
                             "torch", "numpy", "matplotlib", "kneed")
# Column order of the metrics table; metrics not listed come after, alphabetically.
METRIC_ORDER: tuple[str, ...] = (
    "ndcg@10", "recall@10", "recall@20", "mrr", "evidence_recall", "evidence_precision", "exact_match", "token_f1",
    "correctness", "faithfulness", "answer_relevancy", "context_precision", "context_recall", "attack_success",
    "poison_in_evidence", "detection_precision", "detection_recall", "detection_f1", "clean_dropped",
    "chunks_kept", "tokens_kept",
)
QUALITY_PREFERENCE: tuple[str, ...] = ("correctness", "token_f1", "ndcg@10", "context_precision", "evidence_recall")
PLOTS: tuple[str, ...] = ("quality_vs_tokens.png", "chunks_kept.png", "score_curves.png")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def metric_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    found = {name for row in rows for name in row.get("metrics", {})}
    ordered = [m for m in METRIC_ORDER if m in found]
    return ordered + sorted(found - set(ordered))


def aggregate_variant(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    names = metric_names(rows)
    metrics = {name: aggregate(r["metrics"][name] for r in rows if name in r.get("metrics", {})) for name in names}
    counts = [r["poison_counts"] for r in rows if r.get("poison_counts")]
    return {
        "n_queries": len(rows),
        "n_failed_runs": sum(1 for r in rows if r.get("status") != "ok"),
        "metrics": {name: agg.model_dump() for name, agg in metrics.items()},
        "detection_micro": {k: v.model_dump() for k, v in micro_detection(counts).items()} if counts else None,
        "cost": mean_cost(r.get("cost", {}) for r in rows if r.get("status") == "ok"),
    }


def aggregate_rows(rows: Sequence[dict[str, Any]], variants: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {v: aggregate_variant([r for r in rows if r["variant"] == v]) for v in variants}


def _cell(agg: dict[str, Any]) -> str:
    return Aggregate(**agg).label()


def _number(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_summary(report: dict[str, Any]) -> str:
    aggregates = report["aggregates"]
    variants = list(aggregates)
    names = metric_names([{"metrics": a["metrics"]} for a in aggregates.values()])
    lines = [
        f"# {report['name']}: {report['dataset']['name']} ({report['dataset']['kind']}), "
        f"{report['n_queries']} queries, seed {report['seed']}",
        "",
        f"Command: `{report['command']}`",
        "",
        "Each cell: mean over valid rows (valid/all). Failed judgements are counted, never averaged as zero.",
        "",
        "| variant | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for v in variants:
        metrics = aggregates[v]["metrics"]
        lines.append(f"| {v} | " + " | ".join(_cell(metrics[n]) if n in metrics else "" for n in names) + " |")
    lines += ["", "## Cost per query (pipeline; judge separately)", "",
              "| variant | LLM calls | prompt tokens | completion tokens | cached calls | wall s | judge calls "
              "| judge prompt tokens | failed runs |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v in variants:
        cost = aggregates[v]["cost"] or {}
        judge = cost.get("judge") or {}
        lines.append(
            f"| {v} | {_number(cost.get('calls'), 2)} | {_number(cost.get('prompt_tokens'))} | "
            f"{_number(cost.get('completion_tokens'))} | {_number(cost.get('cached_calls'), 2)} | "
            f"{_number(cost.get('wall_s'), 2)} | {_number(judge.get('calls'), 2)} | "
            f"{_number(judge.get('prompt_tokens'))} | {aggregates[v]['n_failed_runs']} |"
        )
    nodes = sorted({n for v in variants for n in (aggregates[v]["cost"] or {}).get("by_node", {})})
    if nodes:
        lines += ["", "## Per node (mean per query: calls / prompt tokens / seconds)", "",
                  "| variant | " + " | ".join(nodes) + " |", "| --- | " + " | ".join("---" for _ in nodes) + " |"]
        for v in variants:
            by_node = (aggregates[v]["cost"] or {}).get("by_node", {})
            cells = []
            for n in nodes:
                u = by_node.get(n)
                cells.append(f"{u['calls']:.2f} / {u['prompt_tokens']:.0f} / {u['seconds']:.2f}" if u else "")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    if any(aggregates[v].get("detection_micro") for v in variants):
        lines += ["", "## Poison detection, micro-averaged over all chunks that reached the filter", "",
                  "| variant | precision | recall | F1 | clean dropped |", "| --- | --- | --- | --- | --- |"]
        for v in variants:
            micro = aggregates[v].get("detection_micro") or {}
            cells = [_number((micro.get(k) or {}).get("value"), 3) for k in
                     ("detection_precision", "detection_recall", "detection_f1", "clean_dropped")]
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    statuses = {(v, n): a["statuses"] for v in variants for n, a in aggregates[v]["metrics"].items()
                if set(a["statuses"]) - {"ok"}}
    if statuses:
        lines += ["", "## Rows that are not ok (status counts)", ""]
        for (v, n), counts in statuses.items():
            lines.append(f"- {v} / {n}: " + ", ".join(f"{k} {c}" for k, c in sorted(counts.items())))
    return "\n".join(lines) + "\n"


def _quality_metric(aggregates: dict[str, Any]) -> str | None:
    for name in QUALITY_PREFERENCE:
        if any(a["metrics"].get(name, {}).get("mean") is not None for a in aggregates.values()):
            return name
    return None


def write_plots(report: dict[str, Any], out_dir: Path, rows: Sequence[dict[str, Any]], curves: int = 4) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aggregates = report["aggregates"]
    variants = list(aggregates)
    written = []

    quality = _quality_metric(aggregates)
    fig, ax = plt.subplots(figsize=(6, 4))
    for v in variants:
        a = aggregates[v]
        x = (a["metrics"].get("tokens_kept") or {}).get("mean")
        y = (a["metrics"].get(quality) or {}).get("mean") if quality else None
        if x is not None and y is not None:
            ax.scatter([x], [y])
            ax.annotate(v, (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("evidence tokens kept per query (mean)")
    ax.set_ylabel(quality or "no quality metric")
    ax.set_title("quality against evidence tokens")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS[0], dpi=100)
    plt.close(fig)
    written.append(PLOTS[0])

    fig, ax = plt.subplots(figsize=(6, 4))
    kept = [[float(r["metrics"]["chunks_kept"]["value"]) for r in rows
             if r["variant"] == v and (r["metrics"].get("chunks_kept") or {}).get("value") is not None]
            for v in variants]
    ax.boxplot([k or [0.0] for k in kept])
    ax.set_xticks(range(1, len(variants) + 1), variants)
    ax.set_ylabel("chunks kept per query")
    ax.set_title("distribution of chunks kept")
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS[1], dpi=100)
    plt.close(fig)
    written.append(PLOTS[1])

    query_ids = list(dict.fromkeys(r["query_id"] for r in rows if r.get("curve", {}).get("scores")))[:curves]
    fig, axes = plt.subplots(1, max(1, len(query_ids)), figsize=(4 * max(1, len(query_ids)), 3.5), squeeze=False)
    for ax, qid in zip(axes[0], query_ids):
        for v in variants:
            row = next((r for r in rows if r["variant"] == v and r["query_id"] == qid), None)
            curve = (row or {}).get("curve") or {}
            scores = curve.get("scores") or []
            if not scores:
                continue
            (line,) = ax.plot(range(1, len(scores) + 1), scores, label=v)
            elbow = curve.get("elbow_index")
            if elbow is not None and 0 <= elbow < len(scores):
                ax.axvline(elbow + 1, color=line.get_color(), linestyle="--")
                ax.scatter([elbow + 1], [scores[elbow]], color=line.get_color(), marker="x")
        ax.set_title(qid[:24], fontsize=8)
        ax.set_xlabel("rank")
    axes[0][0].set_ylabel("candidate score")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS[2], dpi=100)
    plt.close(fig)
    written.append(PLOTS[2])
    return written


def write_report(out_dir: str | Path, *, config: dict[str, Any], dataset: dict[str, Any], rows: Sequence[dict[str, Any]],
                 variants: Sequence[str], command: str = "", curves: int = 4) -> dict[str, Any]:
    """Write report.json, summary.md and the plots into ``out_dir``; return the report."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "name": config.get("name", folder.name),
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": config.get("seed", 0),
        "config": config,
        "versions": package_versions(),
        "dataset": dataset,
        "n_queries": len({r["query_id"] for r in rows}),
        "aggregates": aggregate_rows(rows, variants),
        "rows": list(rows),
    }
    report["plots"] = write_plots(report, folder, rows, curves)
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    (folder / "summary.md").write_text(markdown_summary(report), encoding="utf-8")
    return report
