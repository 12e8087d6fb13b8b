"""Score one (variant, query) result: every configured metric, as one JSON-ready row.

A row holds per-metric ``MetricResult``s, poisoning counts, evidence size, cost and the score
curve (for the elbow plots). Judged metrics use their own metered judge, so judge cost is
reported apart from pipeline cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragpipe.evaluate import ragas
from ragpipe.evaluate.answers import exact_match, token_f1
from ragpipe.evaluate.config import MetricsConfig
from ragpipe.evaluate.cost import query_cost
from ragpipe.evaluate.datasets import EvalQuery
from ragpipe.evaluate.ir import doc_ranking, ir_metrics
from ragpipe.evaluate.judge import Judge
from ragpipe.evaluate.metric import MetricResult
from ragpipe.evaluate.poisoning import poisoning_row
from ragpipe.llm.base import LLM
from ragpipe.llm.wrappers import CallLog, Recorded
from ragpipe.prompts import PromptRegistry, default_registry
from ragpipe.schema import Answer, Chunk, ScoredChunk

CURVE_POINTS = 50  # enough of each score curve to see the elbow, small enough for the report


@dataclass
class QueryRun:
    """What a variant produced for one query."""

    answer: Answer
    candidates: list[ScoredChunk] = field(default_factory=list)
    wall_s: float = 0.0
    generated: bool = True


def source_doc_id(stems: dict[str, str]) -> Callable[[Chunk], str]:
    """Map a chunk to its dataset document through the file it was indexed from."""

    def doc_of(chunk: Chunk) -> str:
        stem = Path(chunk.source).stem if chunk.source else chunk.doc_id
        return stems.get(stem, stem)

    return doc_of


def final_ranking(run: QueryRun) -> list[ScoredChunk]:
    """Kept evidence in its final order, then the remaining candidates in retrieval order."""
    kept = {c.id for c in run.answer.evidence}
    return [*run.answer.evidence, *(c for c in run.candidates if c.id not in kept)]


def score_curve(run: QueryRun) -> dict[str, Any]:
    """The candidates' scores and the elbow the cutoff chose, from the trace (for plots)."""
    elbow = None
    for event in run.answer.trace:
        if event.kind == "cutoff" and event.data.get("elbow_index") is not None:
            elbow = event.data["elbow_index"]
    return {"scores": [round(float(c.score), 5) for c in run.candidates[:CURVE_POINTS]], "elbow_index": elbow,
            "kept": len(run.answer.evidence)}


@dataclass
class Scorer:
    """Computes a row's metrics; ``judge_llm`` and ``embedder`` are needed only for judged ones."""

    metrics: MetricsConfig
    doc_of: Callable[[Chunk], str]
    count_tokens: Callable[[str], int]
    judge_llm: LLM | None = None
    embedder: Any = None
    prompts: PromptRegistry = field(default_factory=default_registry)
    seed: int = 0

    async def score(self, variant: str, query: EvalQuery, run: QueryRun) -> dict[str, Any]:
        answer = run.answer
        evidence_docs = [self.doc_of(c.chunk) for c in answer.evidence]
        metrics: dict[str, MetricResult] = {}
        row: dict[str, Any] = {
            "variant": variant, "query_id": query.id, "question": query.question, "status": "ok",
            "answer": answer.text if run.generated else None, "abstained": answer.abstained,
            "evidence_docs": evidence_docs,
            "dropped_docs": [self.doc_of(d.chunk.chunk) for d in answer.dropped],
        }
        metrics["chunks_kept"] = MetricResult.ok(float(len(answer.evidence)))
        metrics["tokens_kept"] = MetricResult.ok(float(sum(self.count_tokens(c.chunk.text) for c in answer.evidence)))
        if self.metrics.ir and query.relevant:
            ranking = doc_ranking(self.doc_of(c.chunk) for c in final_ranking(run))
            metrics.update(ir_metrics({query.id: query.relevant}, {query.id: ranking}, self.metrics.ir,
                                      rel_lvl=self.metrics.rel_lvl)[query.id])
            relevant = {d for d, g in query.relevant.items() if g >= self.metrics.rel_lvl}
            kept = set(evidence_docs)
            metrics["evidence_recall"] = MetricResult.ok(len(kept & relevant) / len(relevant)) if relevant \
                else MetricResult.undefined("no relevant document")
            metrics["evidence_precision"] = MetricResult.ok(len(kept & relevant) / len(kept)) if kept \
                else MetricResult.undefined("no evidence kept")
        if self.metrics.answers and run.generated and query.answers:
            metrics["exact_match"] = exact_match(answer.text, query.answers)
            metrics["token_f1"] = token_f1(answer.text, query.answers)
        if query.target_answer is not None or query.poisoned_doc_ids:
            poison = poisoning_row(answer.text if run.generated else "", evidence_docs, row["dropped_docs"],
                                   query.poisoned_doc_ids, query.target_answer, query.answers)
            if not run.generated:
                poison["metrics"]["attack_success"] = MetricResult.undefined("no answer generated")
            metrics.update(poison["metrics"])
            row["poison_counts"] = poison["counts"]
        judge_usage = None
        if self.metrics.judged and self.judge_llm is not None:
            calls = CallLog()
            judge = Judge(Recorded(self.judge_llm, calls, "judge"), self.prompts, seed=self.seed,
                          timeout_s=self.metrics.judge_timeout_s)
            metrics.update(await self._judged(judge, query, run))
            judge_usage = calls.total()
            row["judge_trace"] = [e.model_dump() for e in judge.trace]
        row["metrics"] = {name: m.model_dump() for name, m in metrics.items()}
        row["cost"] = query_cost(answer, run.wall_s, judge_usage)
        row["curve"] = score_curve(run)
        return row

    def expected_metrics(self, query: EvalQuery, generated: bool = True) -> list[str]:
        """The metric names a row of ``query`` gets (used to count a failed run in every metric)."""
        names = ["chunks_kept", "tokens_kept"]
        if self.metrics.ir and query.relevant:
            names += [*self.metrics.ir, "evidence_recall", "evidence_precision"]
        if self.metrics.answers and generated and query.answers:
            names += ["exact_match", "token_f1"]
        if query.target_answer is not None or query.poisoned_doc_ids:
            names += ["attack_success", "poison_in_evidence", "detection_precision", "detection_recall",
                      "detection_f1", "clean_dropped"]
        if self.judge_llm is not None:
            names += list(self.metrics.judged)
        return names

    async def _judged(self, judge: Judge, query: EvalQuery, run: QueryRun) -> dict[str, MetricResult]:
        out: dict[str, MetricResult] = {}
        contexts = [c.chunk.text for c in run.answer.evidence]
        text = run.answer.text if run.generated else ""
        wanted = self.metrics.judged
        needs_answer = {"faithfulness", "answer_relevancy", "correctness"}
        for name in wanted:
            if name in needs_answer and not run.generated:
                out[name] = MetricResult.undefined("no answer generated")
            elif name == "faithfulness":
                out[name] = await ragas.faithfulness(judge, query.question, text, contexts)
            elif name == "answer_relevancy":
                if self.embedder is None:
                    out[name] = MetricResult.failed("error", "no embedder for answer relevancy")
                else:
                    out[name] = await ragas.answer_relevancy(judge, self.embedder, query.question, text,
                                                             strictness=self.metrics.strictness)
            elif name == "context_precision":
                out[name] = await ragas.context_precision(judge, query.question, contexts, query.reference)
            elif name == "context_recall":
                out[name] = await ragas.context_recall(judge, query.question, contexts, query.reference)
            elif name == "correctness":
                out[name] = await ragas.answer_correctness(judge, query.question, text, query.answers,
                                                            abstained=run.answer.abstained)
        return out


def failed_row(variant: str, query: EvalQuery, error: BaseException, metric_names: list[str]) -> dict[str, Any]:
    """The row of a query whose pipeline run failed: every metric counted as an error, not dropped."""
    reason = f"{type(error).__name__}: {error}"
    return {
        "variant": variant, "query_id": query.id, "question": query.question, "status": "error",
        "error": reason, "answer": None,
        "metrics": {name: MetricResult.failed("error", reason).model_dump() for name in metric_names},
        "cost": {}, "curve": {"scores": [], "elbow_index": None, "kept": 0},
    }
