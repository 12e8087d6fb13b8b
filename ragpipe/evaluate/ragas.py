"""RAGAS-style judged metrics: faithfulness, answer relevancy, context precision, context recall.

Pure functions over ``(question, answer, contexts, reference)`` plus an injected ``Judge`` and,
for answer relevancy, an embedder. The formulas follow the ragas library; the difference is
failure handling: no statements, a judge that returns prose, or a verdict list of the wrong
length give a ``MetricResult`` with a status (``undefined``, ``parse_error`` ...), not a NaN
that an average would swallow. The verdict lists are kept in ``details`` for auditing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragpipe.evaluate.judge import Judge, JudgeReply, ask_judge, field_list, verdict_of
from ragpipe.evaluate.metric import MetricResult

AP_EPSILON = 1e-10  # as in ragas: an all-zero verdict list scores 0, not NaN


def average_precision(verdicts: Sequence[int]) -> float:
    """Context precision: sum_k precision@k * v_k / (sum_k v_k + eps); ranking order matters."""
    hits, total = 0, 0.0
    for k, verdict in enumerate(verdicts, start=1):
        if verdict:
            hits += 1
            total += hits / k
    return total / (hits + AP_EPSILON)


def with_list_length(judge: Judge, prompt_name: str, key: str, length: int) -> dict[str, Any] | None:
    """The prompt's schema with list ``key`` held to ``length`` items: a small judge under constrained
    decoding then gives one verdict per statement instead of copying the one-item example."""
    schema = judge.prompts.get(prompt_name).spec.output.json_schema
    if not schema or key not in schema.get("properties", {}):
        return schema
    fixed = copy.deepcopy(schema)
    fixed["properties"][key].update(minItems=length, maxItems=length)
    return fixed


def _failed(reply: JudgeReply, step: str, **details: Any) -> MetricResult:
    return MetricResult.failed(reply.status, f"{step}: {reply.reason}", raw=[reply.raw], **details)  # type: ignore[arg-type]


def _strings(items: list[Any] | None, key: str) -> list[str] | None:
    """The non-empty strings of a judged list; None when it had items but none was usable."""
    if items is None:
        return None
    out = []
    for item in items:
        text = item.get(key) if isinstance(item, dict) else item
        if isinstance(text, str) and text.strip():
            out.append(text.strip())
    return out if out or not items else None


async def statements_of(judge: Judge, question: str, answer: str) -> tuple[list[str] | None, JudgeReply]:
    """Split an answer into self-contained statements (ragas' statement generator)."""
    reply = await ask_judge(judge, "eval.statements", question=question, answer=answer)
    if not reply.ok:
        return None, reply
    return _strings(field_list(reply.value, "statements"), "statement"), reply


async def faithfulness(judge: Judge, question: str, answer: str, contexts: Sequence[str]) -> MetricResult:
    """Share of the answer's statements that can be inferred from the contexts."""
    if not answer.strip():
        return MetricResult.undefined("empty answer")
    statements, reply = await statements_of(judge, question, answer)
    if not reply.ok:
        return _failed(reply, "statement extraction")
    if statements is None:
        return MetricResult.failed("parse_error", "statement extraction: no statement list", raw=[reply.raw])
    if not statements:
        return MetricResult.undefined("the answer holds no statements", raw=[reply.raw])
    nli = await ask_judge(judge, "eval.faithfulness", contexts=list(contexts), statements=statements,
                          schema=with_list_length(judge, "eval.faithfulness", "verdicts", len(statements)))
    raws = [reply.raw, nli.raw]
    if not nli.ok:
        return _failed(nli, "NLI verdicts", statements=statements)
    verdicts = [verdict_of(v, "verdict", "supported") for v in field_list(nli.value, "verdicts") or []]
    if len(verdicts) < len(statements) or any(v is None for v in verdicts[: len(statements)]):
        return MetricResult.failed(
            "parse_error", f"NLI verdicts: {len(verdicts)} usable verdicts for {len(statements)} statements",
            raw=raws, statements=statements,
        )
    verdicts = verdicts[: len(statements)]
    return MetricResult.ok(sum(verdicts) / len(statements), raw=raws, statements=statements, verdicts=verdicts)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denom) if denom else 0.0


async def answer_relevancy(
    judge: Judge, embedder: Any, question: str, answer: str, *, strictness: int = 3
) -> MetricResult:
    """Mean cosine between the question and questions generated from the answer; 0 if all evasive.

    Samples after the first use temperature 0.7 with distinct seeds (ragas draws ``strictness``
    samples); a sample the judge botched is left out, and the metric fails only if all are.
    """
    if not answer.strip():
        return MetricResult.undefined("empty answer")
    generated: list[str] = []
    noncommittal: list[int] = []
    raws: list[str] = []
    failures: list[JudgeReply] = []
    for i in range(max(1, strictness)):
        reply = await ask_judge(judge, "eval.answer_relevancy", temperature=0.0 if i == 0 else 0.7,
                                seed_offset=i, answer=answer)
        raws.append(reply.raw)
        value = reply.value if isinstance(reply.value, dict) else None
        if not reply.ok or value is None or not isinstance(value.get("question", ""), str):
            failures.append(reply if not reply.ok else JudgeReply(None, "parse_error", reply.raw, "no question field"))
            continue
        generated.append(value.get("question", "").strip())
        noncommittal.append(verdict_of(value, "noncommittal") or 0)
    if not generated:
        first = failures[0]
        return MetricResult.failed(first.status, f"question generation: {first.reason}", raw=raws)  # type: ignore[arg-type]
    if not any(generated):
        return MetricResult.undefined("every generated question is empty", raw=raws)
    vectors = np.asarray(embedder.embed([question, *[g for g in generated if g]]), dtype=np.float32)
    similarities = [_cosine(vectors[0], v) for v in vectors[1:]]
    score = float(np.mean(similarities)) * (0.0 if all(noncommittal) else 1.0)
    return MetricResult.ok(score, raw=raws, generated_questions=generated, noncommittal=noncommittal,
                           similarities=similarities, failed_samples=len(failures))


async def context_precision(
    judge: Judge, question: str, contexts: Sequence[str], reference: str
) -> MetricResult:
    """Average precision of the per-context "useful for the reference answer" verdicts, in rank order."""
    if not contexts:
        return MetricResult.undefined("no contexts")
    if not reference.strip():
        return MetricResult.undefined("no reference answer")
    verdicts: list[int] = []
    raws: list[str] = []
    for i, context in enumerate(contexts):
        reply = await ask_judge(judge, "eval.context_precision", question=question, context=context,
                                context_id=i + 1, reference=reference)
        raws.append(reply.raw)
        if not reply.ok:
            return _failed(reply, f"verdict for context {i + 1}", verdicts=verdicts)
        verdict = verdict_of(reply.value, "verdict", "useful")
        if verdict is None:
            return MetricResult.failed("parse_error", f"verdict for context {i + 1}: no 0/1 verdict",
                                       raw=raws, verdicts=verdicts)
        verdicts.append(verdict)
    return MetricResult.ok(average_precision(verdicts), raw=raws, verdicts=verdicts)


async def context_recall(judge: Judge, question: str, contexts: Sequence[str], reference: str) -> MetricResult:
    """Share of the reference answer's sentences that the contexts support."""
    if not reference.strip():
        return MetricResult.undefined("no reference answer")
    if not contexts:
        return MetricResult.ok(0.0, reason="no contexts: nothing can be attributed")
    reply = await ask_judge(judge, "eval.context_recall", question=question, contexts=list(contexts),
                            reference=reference)
    if not reply.ok:
        return _failed(reply, "attribution")
    items = field_list(reply.value, "classifications")
    verdicts = [verdict_of(item, "attributed", "verdict") for item in items or []]
    if not verdicts or any(v is None for v in verdicts):
        return MetricResult.failed("parse_error", "attribution: no usable 0/1 classifications", raw=[reply.raw])
    return MetricResult.ok(sum(verdicts) / len(verdicts), raw=[reply.raw], verdicts=verdicts)  # type: ignore[arg-type]


async def answer_correctness(judge: Judge, question: str, answer: str, gold_answers: Sequence[str]) -> MetricResult:
    """LLM-judged correctness: does the answer state (one of) the gold answers? 1 or 0."""
    if not gold_answers:
        return MetricResult.undefined("no gold answer")
    if not answer.strip():
        return MetricResult.ok(0.0, reason="empty answer")
    reply = await ask_judge(judge, "eval.correctness", question=question, answer=answer,
                            gold_answers=list(gold_answers))
    if not reply.ok:
        return _failed(reply, "correctness")
    verdict = verdict_of(reply.value, "correct", "verdict")
    if verdict is None:
        return MetricResult.failed("parse_error", "correctness: no true/false verdict", raw=[reply.raw])
    reason = reply.value.get("reason", "") if isinstance(reply.value, dict) else ""
    return MetricResult.ok(float(verdict), raw=[reply.raw], reason=reason)
