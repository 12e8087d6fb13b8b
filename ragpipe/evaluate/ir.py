"""Classic IR metrics (nDCG@10, recall@k, MRR) over document rankings, computed with ranx.

These measure the *ranking* a variant produced, separately from the judged RAGAS-style metrics.
Chunks are mapped to their documents first: a document is ranked by its best chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ragpipe.evaluate.metric import MetricResult

DEFAULT_IR_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "mrr")


def doc_ranking(doc_ids: Iterable[str]) -> dict[str, float]:
    """A ranx run for one query from document ids in rank order (first occurrence wins).

    Scores are derived from ranks (n, n-1, ...), so ties and score scales of different stages
    cannot reorder documents.
    """
    order: list[str] = []
    for doc_id in doc_ids:
        if doc_id not in order:
            order.append(doc_id)
    return {doc_id: float(len(order) - i) for i, doc_id in enumerate(order)}


def ir_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_IR_METRICS,
    *,
    rel_lvl: int = 1,
) -> dict[str, dict[str, MetricResult]]:
    """Per query and metric; a query without relevant documents is ``undefined`` for all metrics.

    ``rel_lvl`` is the lowest grade counted as relevant by binary metrics (TREC DL uses 2);
    nDCG uses the graded labels as they are.
    """
    from ranx import Qrels, Run, evaluate

    judged = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()
              if any(int(g) >= rel_lvl for g in docs.values())}
    out: dict[str, dict[str, MetricResult]] = {}
    for q in run:
        if q not in judged:
            out[q] = {m: MetricResult.undefined("the query has no relevant document") for m in metrics}
    scored = [q for q in run if q in judged]
    if not scored:
        return out
    ranx_metrics = [m if "ndcg" in m else f"{m}-l{rel_lvl}" if rel_lvl > 1 else m for m in metrics]
    runs = {q: (dict(run[q]) or {"__empty__": 0.0}) for q in scored}
    run_obj = Run(runs)
    values = evaluate(
        Qrels({q: judged[q] for q in scored}), run_obj, ranx_metrics, return_mean=False, make_comparable=True
    )
    if len(ranx_metrics) == 1:
        values = {ranx_metrics[0]: values}
    for i, q in enumerate(list(run_obj.keys())):  # ranx returns values in its own key order
        out[q] = {m: MetricResult.ok(float(values[rm][i])) for m, rm in zip(metrics, ranx_metrics)}
    return out
