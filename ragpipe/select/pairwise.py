"""Pairwise ranking prompting (PRP): "which of two passages is more relevant?", in both orders.

Asking (a, b) and (b, a) cancels position bias: a wins only if it wins in both positions,
otherwise the pair is a tie. ``allpairs`` compares every pair (N(N-1) calls, all sent at once)
and ranks by wins (a tie gives each side half a point); ``heapsort`` places only the top ``top_k``
with a max-heap (O(N log N) comparisons, one after another) and leaves the rest in input order.
``scoring="logprob"`` compares P(A) with the two orders' probabilities instead of parsing text.
An unreadable answer counts as a tie and is traced.
"""

from __future__ import annotations

import asyncio
import math
from itertools import permutations
from typing import Literal

from ragpipe.errors import LLMError, OutputParseError
from ragpipe.llm.base import Completion
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import Selector, SelectorConfig, SelectorRun, register_selector
from ragpipe.select.budget import truncate_words
from ragpipe.select.parsing import bare_token, parse_ab


class PairwiseConfig(SelectorConfig):
    method: Literal["allpairs", "heapsort"] = "allpairs"
    top_k: int = 10
    scoring: Literal["generate", "logprob"] = "generate"
    max_passage_words: int = 150
    prompt: str = "pairwise.default"


def prob_a(completion: Completion) -> float | None:
    """P("A") / (P("A") + P("B")) at the first position offering either letter."""
    for position in completion.logprobs or []:
        a = b = 0.0
        for token, logprob in position.top_dict().items():
            word = bare_token(token).upper()
            a += math.exp(logprob) if word in ("A", "PASSAGE A") else 0.0
            b += math.exp(logprob) if word in ("B", "PASSAGE B") else 0.0
        if a + b > 0:
            return a / (a + b)
    return None


class Comparisons:
    """Asks and caches the verdict for ordered pairs; counts the unreadable ones."""

    def __init__(self, selector: PairwiseSelector, question: str, texts: list[str], run: SelectorRun) -> None:
        self.selector = selector
        self.question = question
        self.texts = texts
        self.run = run
        self.cache: dict[tuple[int, int], float | None] = {}
        self.failures = 0

    async def prefer_first(self, i: int, j: int) -> float | None:
        """How strongly the model prefers slot A when i is in A and j in B (1 = A, 0 = B)."""
        if (i, j) not in self.cache:
            self.cache[(i, j)] = await self._ask(i, j)
        return self.cache[(i, j)]

    async def _ask(self, i: int, j: int) -> float | None:
        config: PairwiseConfig = self.selector.config  # type: ignore[assignment]
        prompt = self.run.ctx.prompts.get(config.prompt)
        messages = prompt.render(question=self.question, passage_a=self.texts[i], passage_b=self.texts[j])
        caps = self.run.llm.capabilities
        logprob = config.scoring == "logprob" and caps.logprobs and caps.max_top_logprobs > 0
        options = {"top_logprobs": min(20, caps.max_top_logprobs)} if logprob else {}
        label = f"pair ({i + 1}, {j + 1})"
        try:
            completion = await self.run.chat(messages, purpose=label, max_tokens=prompt.max_tokens,
                                             temperature=0.0, **options)
        except Exception as err:
            self.failures += 1
            self.run.note("fallback", f"{label}: {type(err).__name__}: {err}; counted as a tie",
                          error=type(err).__name__)
            return None
        if logprob:
            p = prob_a(completion)
            if p is not None:
                return p
            self.run.note("repair", f"{label}: no A/B among the top logprobs; reading the text")
        try:
            return 1.0 if parse_ab(completion.text) == "A" else 0.0
        except OutputParseError as err:
            self.failures += 1
            self.run.note("fallback", f"{label}: {err}; counted as a tie", raw=completion.text[:200])
            return None

    async def outcome(self, i: int, j: int) -> float:
        """1 if i beats j in both orders, 0 if j does, 0.5 otherwise (inconsistent or unreadable)."""
        first, second = await asyncio.gather(self.prefer_first(i, j), self.prefer_first(j, i))
        if first is None or second is None:
            return 0.5
        if first > second:  # with text answers: ("A", "B"), i won in both positions
            return 1.0
        return 0.0 if second > first else 0.5


@register_selector("pairwise")
class PairwiseSelector(Selector):
    """PRP with both orders per pair: all pairs (parallel) or heapsort top-k (sequential)."""

    name = "pairwise"
    Config = PairwiseConfig

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        config: PairwiseConfig = self.config  # type: ignore[assignment]
        texts = [truncate_words(c.chunk.text, config.max_passage_words) for c in candidates]
        if any(t != c.chunk.text for t, c in zip(texts, candidates)):
            run.note("truncation", f"passages cut to {config.max_passage_words} words", words=config.max_passage_words)
        compare = Comparisons(self, question, texts, run)
        n = len(candidates)
        if n == 1:
            return [1.0]
        if config.method == "allpairs":
            scores = await self._allpairs(n, compare)
        else:
            scores = await self._heapsort(n, config.top_k, compare)
        if compare.failures and compare.failures == len(compare.cache):
            raise LLMError("every pairwise comparison failed")
        return scores

    @staticmethod
    async def _allpairs(n: int, compare: Comparisons) -> list[float]:
        await asyncio.gather(*(compare.prefer_first(i, j) for i, j in permutations(range(n), 2)))
        wins = [0.0] * n
        for i in range(n):
            for j in range(i + 1, n):
                result = await compare.outcome(i, j)  # cached: no new calls
                wins[i] += result
                wins[j] += 1.0 - result
        return wins

    @staticmethod
    async def _heapsort(n: int, k: int, compare: Comparisons) -> list[float]:
        heap = list(range(n))

        async def greater(a: int, b: int) -> bool:
            return await compare.outcome(a, b) == 1.0

        async def sift_down(root: int, size: int) -> None:
            while True:
                largest, left, right = root, 2 * root + 1, 2 * root + 2
                if left < size and await greater(heap[left], heap[largest]):
                    largest = left
                if right < size and await greater(heap[right], heap[largest]):
                    largest = right
                if largest == root:
                    return
                heap[root], heap[largest] = heap[largest], heap[root]
                root = largest

        for root in range(n // 2 - 1, -1, -1):
            await sift_down(root, n)
        top: list[int] = []
        size = n
        while size > 0 and len(top) < k:
            top.append(heap[0])
            size -= 1
            heap[0] = heap[size]
            await sift_down(0, size)
        rest = [i for i in range(n) if i not in set(top)]
        order = top + rest
        scores = [0.0] * n
        for position, index in enumerate(order):
            scores[index] = float(n - position)
        return scores


__all__ = ["PairwiseSelector", "PairwiseConfig", "prob_a"]
