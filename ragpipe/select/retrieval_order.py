"""The no-LLM baseline: keep the retriever's order (optionally cut by the adaptive cutoff).

Useful as the reference row of every benchmark and as the selector of pipelines without an LLM.
"""

from __future__ import annotations

from ragpipe.schema import ScoredChunk
from ragpipe.select.base import Selector, SelectorConfig, SelectorRun, input_order_scores, register_selector


@register_selector("retrieval_order")
class RetrievalOrderSelector(Selector[SelectorConfig]):
    """Ranks by the incoming order; with ``cutoff`` set, the elbow runs on the retriever scores."""

    needs_llm = False

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        scores = [c.score for c in candidates]
        if all(a >= b for a, b in zip(scores, scores[1:])) and len(set(scores)) > 1:
            return scores  # already sorted: keep the real scores so the cutoff sees their shape
        return input_order_scores(len(candidates))
