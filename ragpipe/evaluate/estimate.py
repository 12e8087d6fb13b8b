"""``ragpipe eval --dry-run``: estimate the LLM tokens of a run before making any call.

Prompts are rendered from the real prompt files with the dataset's real questions and passages
and counted with the LLM's tokenizer, so the estimate follows prompt edits. What cannot be known
before running (how many chunks a selector keeps, answer lengths) uses stated assumptions:
``evidence_k`` kept chunks, answers as long as the reference, and each prompt's ``max_tokens``
as the completion ceiling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ragpipe.evaluate.config import EvalConfig
from ragpipe.evaluate.datasets import EvalDataset, EvalQuery
from ragpipe.evaluate.ragas import recall_reply_budget, reference_sentences
from ragpipe.prompts import PromptRegistry, default_registry


def _passages(dataset: EvalDataset, query: EvalQuery, k: int) -> list[str]:
    ids = [*query.relevant, *query.doc_ids, *query.poisoned_doc_ids]
    texts = [dataset.documents[d].text for d in dict.fromkeys(ids) if d in dataset.documents]
    if len(texts) < k:
        texts += [d.text for d in list(dataset.documents.values())[: k - len(texts)]]
    return texts[:k]


def _tokens(prompts: PromptRegistry, name: str, count: Callable[[str], int], **variables: Any) -> tuple[int, int]:
    prompt = prompts.get(name)
    return sum(count(m.content) for m in prompt.render(**variables)), prompt.max_tokens


def estimate_run(config: EvalConfig, dataset: EvalDataset, count: Callable[[str], int], *,
                 prompts: PromptRegistry | None = None, evidence_k: int = 5, top_k: int = 20) -> dict[str, Any]:
    """Estimated calls and prompt/completion tokens per variant and for the judge, for the whole run."""
    prompts = prompts or default_registry()
    per_variant: dict[str, dict[str, float]] = {}
    judge = {"calls": 0.0, "prompt_tokens": 0.0, "max_completion_tokens": 0.0}
    for query in dataset.queries:
        evidence = _passages(dataset, query, evidence_k)
        candidates = _passages(dataset, query, top_k)
        documents = [{"n": i + 1, "source": "doc.txt", "text": t} for i, t in enumerate(evidence)]
        answer = query.reference or "unknown"
        for v in config.variants:
            totals = per_variant.setdefault(v.name, {"calls": 0.0, "prompt_tokens": 0.0, "max_completion_tokens": 0.0})
            calls: list[tuple[int, int]] = []
            if v.method == "meteora":
                calls.append(_tokens(prompts, "rationale.default", count, question=query.question, num_rationales=3))
            elif v.method != "fast":
                calls.append((sum(count(t) for t in candidates) + count(query.question) + 200, 256))
            if v.verify:  # one listwise check over all the evidence, at most one listwise short-answer call
                calls.append(_tokens(prompts, "verifier.listwise", count, question=query.question, rules=[],
                                     documents=documents))
                calls.append(_tokens(prompts, "verifier.answers", count, question=query.question, documents=documents))
            if v.generate:
                calls.append(_tokens(prompts, "answer.cited", count, question=query.question, documents=documents))
            for prompt_tokens, max_tokens in calls:
                totals["calls"] += 1
                totals["prompt_tokens"] += prompt_tokens
                totals["max_completion_tokens"] += max_tokens
            for name in config.metrics.judged:
                for prompt_tokens, max_tokens in _judge_calls(prompts, count, name, query, answer, evidence,
                                                              config.metrics.strictness):
                    judge["calls"] += 1
                    judge["prompt_tokens"] += prompt_tokens
                    judge["max_completion_tokens"] += max_tokens
    return {"queries": len(dataset.queries), "variants": per_variant, "judge": judge,
            "assumptions": {"evidence_k": evidence_k, "top_k": top_k, "answer": "the reference answer"}}


def _judge_calls(prompts: PromptRegistry, count: Callable[[str], int], name: str, query: EvalQuery, answer: str,
                 evidence: list[str], strictness: int) -> list[tuple[int, int]]:
    if name == "faithfulness":
        return [_tokens(prompts, "eval.statements", count, question=query.question, answer=answer),
                _tokens(prompts, "eval.faithfulness", count, contexts=evidence, statements=[answer])]
    if name == "answer_relevancy":
        return [_tokens(prompts, "eval.answer_relevancy", count, answer=answer)] * max(1, strictness)
    if name == "context_precision":
        return [_tokens(prompts, "eval.context_precision", count, question=query.question, context=t, context_id=1,
                        reference=answer) for t in evidence]
    if name == "context_recall":
        sentences = reference_sentences(answer) or [answer]
        prompt_tokens, _ = _tokens(prompts, "eval.context_recall", count, question=query.question,
                                   contexts=evidence, sentences=sentences)
        return [(prompt_tokens, recall_reply_budget(prompts, len(sentences)))]
    if name == "correctness":
        return [_tokens(prompts, "eval.correctness", count, question=query.question, answer=answer,
                        gold_answers=query.answers or [answer])]
    return []
