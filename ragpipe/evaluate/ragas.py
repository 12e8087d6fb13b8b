"""RAGAS-style judged metrics: faithfulness, answer relevancy, context precision, context recall.

Pure functions over ``(question, answer, contexts, reference)`` plus an injected ``Judge`` and,
for answer relevancy, an embedder. The formulas follow the ragas library; the difference is
failure handling: no statements, a judge that returns prose, or a verdict list of the wrong
length give a ``MetricResult`` with a status (``undefined``, ``parse_error`` ...), not a NaN
that an average would swallow. The verdict lists are kept in ``details`` for auditing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragpipe.evaluate.answers import normalize_answer
from ragpipe.evaluate.judge import Judge, JudgeReply, ask_judge, field_list, verdict_of
from ragpipe.evaluate.metric import MetricResult
from ragpipe.generate.abstain import starts_with_not_found
from ragpipe.generate.sentences import split_sentences
from ragpipe.prompts import PromptRegistry

_WORD = re.compile(r"\w+")
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


def reference_sentences(reference: str) -> list[str]:
    """The reference answer's sentences, split in code so the judge gives one verdict per sentence
    instead of re-splitting (and, for a small judge, copying passages into) its own list."""
    return [s.text for s in split_sentences(reference)]


def sentence_verdicts(value: Any, count: int) -> list[int] | None:
    """Exactly one 0/1 verdict per numbered sentence from a judge reply, or None.

    Items are matched by their ``sentence`` number when every item carries one, else by position;
    a missing, conflicting, extra or unreadable verdict makes the whole reply unusable (no guess).
    """
    items = field_list(value, "classifications")
    if items is None and isinstance(value, dict):
        if any(k in value for k in ("attributed", "verdict")):
            items = [value]  # a single verdict, not wrapped in a list
        else:  # {"1": 1, "2": 0}
            items = [{"sentence": k, "attributed": v} for k, v in value.items() if str(k).strip().isdigit()] or None
    if not items:
        return None
    verdicts = [verdict_of(item, "attributed", "verdict") for item in items]
    if any(v is None for v in verdicts):
        return None
    numbers = [_sentence_number(item) for item in items]
    if all(n is not None for n in numbers):
        by_number: dict[int, int] = {}
        for number, verdict in zip(numbers, verdicts):
            if by_number.setdefault(number, verdict) != verdict:  # type: ignore[arg-type]
                return None
        return [by_number[i] for i in range(1, count + 1)] if set(by_number) == set(range(1, count + 1)) else None
    return verdicts if len(verdicts) == count else None  # type: ignore[return-value]


def _sentence_number(item: Any) -> int | None:
    number = item.get("sentence") if isinstance(item, dict) else None
    if isinstance(number, bool):
        return None
    if isinstance(number, int):
        return number
    if isinstance(number, str) and number.strip().rstrip(".").isdigit():
        return int(number.strip().rstrip("."))
    return None


def recall_reply_budget(prompts: PromptRegistry, sentences: int) -> int:
    """The context-recall prompt's ``max_tokens`` is per sentence: the reply grows with the reference."""
    return prompts.get("eval.context_recall").max_tokens * max(1, sentences)


def _recall_schema(judge: Judge, count: int) -> dict[str, Any] | None:
    """One classification per sentence, each naming a sentence number that exists."""
    schema = with_list_length(judge, "eval.context_recall", "classifications", count)
    item = (schema or {}).get("properties", {}).get("classifications", {}).get("items", {})
    if "sentence" in item.get("properties", {}):
        item["properties"]["sentence"] = {"type": "integer", "enum": list(range(1, count + 1))}
    return schema


async def context_recall(judge: Judge, question: str, contexts: Sequence[str], reference: str) -> MetricResult:
    """Share of the reference answer's sentences that the contexts support.

    The reply is bounded by the reference: one verdict per sentence (held to that count under
    constrained decoding) and a token budget of the prompt's ``max_tokens`` per sentence.
    """
    sentences = reference_sentences(reference)
    if not sentences:
        return MetricResult.undefined("no reference answer")
    if not contexts:
        return MetricResult.ok(0.0, reason="no contexts: nothing can be attributed", sentences=sentences)
    budget = recall_reply_budget(judge.prompts, len(sentences))
    reply = await ask_judge(judge, "eval.context_recall", question=question, contexts=list(contexts),
                            sentences=sentences, schema=_recall_schema(judge, len(sentences)), max_tokens=budget)
    if not reply.ok:
        return _failed(reply, "attribution", sentences=sentences)
    verdicts = sentence_verdicts(reply.value, len(sentences))
    if verdicts is None:
        return MetricResult.failed("parse_error", f"attribution: no usable 0/1 verdict for each of the "
                                   f"{len(sentences)} sentence(s)", raw=[reply.raw], sentences=sentences)
    return MetricResult.ok(sum(verdicts) / len(verdicts), raw=[reply.raw], verdicts=verdicts, sentences=sentences)


def _in_answer(match: str, answer: str) -> bool:
    """Whether the judge's quoted match occurs in the answer, word for word after normalisation
    (typographic quotes and other non-ASCII punctuation included)."""
    quoted = " ".join(_WORD.findall(normalize_answer(match)))
    return bool(quoted) and f" {quoted} " in f" {' '.join(_WORD.findall(normalize_answer(answer)))} "


async def answer_correctness(
    judge: Judge, question: str, answer: str, gold_answers: Sequence[str], *, abstained: bool = False
) -> MetricResult:
    """LLM-judged correctness: does the answer state (one of) the gold answers? 1 or 0.

    An abstention ("Not found in the documents.") gives no answer, so it scores 0 without asking
    the judge. A "correct" verdict counts only with its ``match``, the words of the answer that
    give the gold answer, found in the answer: small judges say true while quoting the gold answer
    the answer lacks, and the check keeps aliases and paraphrases the judge recognises.
    """
    if not gold_answers:
        return MetricResult.undefined("no gold answer")
    if not answer.strip():
        return MetricResult.ok(0.0, reason="empty answer")
    if abstained or starts_with_not_found(answer):
        return MetricResult.ok(0.0, reason="the answer abstains", abstained=True)
    reply = await ask_judge(judge, "eval.correctness", question=question, answer=answer,
                            gold_answers=list(gold_answers))
    if not reply.ok:
        return _failed(reply, "correctness")
    verdict = verdict_of(reply.value, "correct", "verdict")
    if verdict is None:
        return MetricResult.failed("parse_error", "correctness: no true/false verdict", raw=[reply.raw])
    value = reply.value if isinstance(reply.value, dict) else {}
    match = value.get("match") if isinstance(value.get("match"), str) else ""
    found = _in_answer(match, answer)
    reason = value.get("reason", "") if isinstance(value.get("reason"), str) else ""
    if verdict and not found:
        reason = f"the judge said correct, but its match {match!r} is not in the answer"
    return MetricResult.ok(float(verdict and found), raw=[reply.raw], reason=reason, match=match,
                           match_in_answer=found, judge_verdict=verdict)
