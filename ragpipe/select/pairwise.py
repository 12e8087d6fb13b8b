"""Pairwise ranking prompting (PRP): "which of two passages is more relevant?", in both orders.

Asking (a, b) and (b, a) cancels position bias: a wins only if it wins in both positions,
otherwise the pair is a tie. Methods and their cost (each comparison is 2 calls):

- ``heapsort`` (default): places only the top ``top_k`` with a max-heap and leaves the rest in
  input order; at most about ``2N + 2k·log2(N)`` comparisons, fewer in practice (20 candidates,
  top 10: 50-110 comparisons, 100-220 calls), one after another.
- ``sliding``: ``top_k`` bubble passes from the bottom up (PRP-Sliding-K), at most
  ``k·(N-1) - k(k-1)/2`` comparisons (20 candidates, top 10: 145, 290 calls), one after another.
- ``allpairs``: every pair, N(N-1) calls (380 at 20 candidates, 870 at 30), all sent at once,
  ranked by wins (a tie gives each side half a point).

``scoring="logprob"`` compares P(A) with the two orders' probabilities instead of parsing text.
An unreadable answer counts as a tie and is traced. How often the two orders agree is the
self-agreement the harm bound checks.
"""

from __future__ import annotations

import asyncio
from itertools import permutations
from typing import Literal

from ragpipe.errors import LLMError, OutputParseError
from ragpipe.llm.base import Completion
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import LLMSelectorConfig, Selector, SelectorRun, register_selector
from ragpipe.select.budget import fit_prompt
from ragpipe.select.parsing import answer_mass, parse_ab


class PairwiseConfig(LLMSelectorConfig):
    method: Literal["heapsort", "sliding", "allpairs"] = "heapsort"
    top_k: int = 10
    scoring: Literal["generate", "logprob"] = "generate"
    max_passage_words: int = 150
    prompt: str = "pairwise.default"


def _ab(word: str) -> str | None:
    word = word.upper()
    return word[-1] if word in ("A", "B", "PASSAGE A", "PASSAGE B") else None


def prob_a(completion: Completion) -> float | None:
    """P("A") / (P("A") + P("B")) at the answer position (after any ``Passage`` or ``[``)."""
    found = answer_mass(completion, _ab)
    if found is None:
        return None
    mass = found[1]
    return mass.get("A", 0.0) / (mass.get("A", 0.0) + mass.get("B", 0.0))


class Comparisons:
    """Asks and caches the verdict for ordered pairs; counts the unreadable ones."""

    def __init__(self, selector: PairwiseSelector, question: str, texts: list[str], run: SelectorRun) -> None:
        self.selector = selector
        self.question = question
        self.texts = texts
        self.run = run
        self.cache: dict[tuple[int, int], float | None] = {}
        self.checked: set[tuple[int, int]] = set()
        self.failures = 0

    async def prefer_first(self, i: int, j: int) -> float | None:
        """How strongly the model prefers slot A when i is in A and j in B (1 = A, 0 = B)."""
        if (i, j) not in self.cache:
            self.cache[(i, j)] = await self._ask(i, j)
        return self.cache[(i, j)]

    async def _ask(self, i: int, j: int) -> float | None:
        verdict = await self._verdict(i, j)
        self.run.reliability.answer(verdict is not None)
        if verdict is None:
            self.failures += 1
        return verdict

    async def _verdict(self, i: int, j: int) -> float | None:
        config = self.selector.config
        prompt = self.run.ctx.prompts.get(config.prompt)
        label = f"pair ({i + 1}, {j + 1})"
        fitted = fit_prompt(lambda p: prompt.render(question=self.question, passage_a=p[0], passage_b=p[1]),
                            [self.texts[i], self.texts[j]], self.run.llm, max_words=config.max_passage_words,
                            output_tokens=prompt.max_tokens)
        if fitted.truncated:
            self.run.note("truncation", f"{label}: passages cut to {fitted.words} words", words=fitted.words)
        if not fitted.fits:
            self.run.note("fallback", f"{label}: prompt of {fitted.prompt_tokens} tokens exceeds the budget "
                          f"{fitted.budget}; counted as a tie")
            return None
        caps = self.run.llm.capabilities
        logprob = config.scoring == "logprob" and caps.logprobs and caps.max_top_logprobs > 0
        options = {"top_logprobs": min(20, caps.max_top_logprobs)} if logprob else {}
        try:
            completion = await self.run.chat(fitted.messages, purpose=label, max_tokens=prompt.max_tokens,
                                             temperature=0.0, **options)
        except Exception as err:
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
            self.run.note("fallback", f"{label}: {err}; counted as a tie", raw=completion.text[:200])
            return None

    async def outcome(self, i: int, j: int) -> float:
        """1 if i beats j in both orders, 0 if j does, 0.5 otherwise (inconsistent or unreadable)."""
        key = (min(i, j), max(i, j))
        first, second = await asyncio.gather(self.prefer_first(i, j), self.prefer_first(j, i))
        if first is None or second is None:
            return 0.5
        if key not in self.checked:  # self-agreement: the verdict survives swapping the slots
            self.checked.add(key)
            self.run.reliability.check((first - 0.5) * (second - 0.5) < 0)
        if first > second:  # with text answers: ("A", "B"), i won in both positions
            return 1.0
        return 0.0 if second > first else 0.5


@register_selector("pairwise")
class PairwiseSelector(Selector[PairwiseConfig]):
    """PRP with both orders per pair: all pairs (parallel) or heapsort top-k (sequential)."""

    Config = PairwiseConfig

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        config = self.config
        compare = Comparisons(self, question, [c.chunk.text for c in candidates], run)
        n = len(candidates)
        if config.method == "allpairs":
            scores = await self._allpairs(n, compare)
        elif config.method == "sliding":
            scores = await self._sliding(n, config.top_k, compare)
        else:
            scores = await self._heapsort(n, config.top_k, compare)
        run.note("info", f"{config.method}: {len(compare.checked)} comparisons, {len(compare.cache)} calls")
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
    async def _sliding(n: int, k: int, compare: Comparisons) -> list[float]:
        """``k`` bubble passes from the bottom up; pass p fixes position p (PRP-Sliding-K)."""
        order = list(range(n))
        for p in range(min(k, n - 1)):
            for position in range(n - 1, p, -1):
                lower, upper = order[position], order[position - 1]
                if await compare.outcome(lower, upper) == 1.0:
                    order[position - 1], order[position] = lower, upper
        return _order_scores(order)

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
        return _order_scores(top + rest)


def _order_scores(order: list[int]) -> list[float]:
    """Scores n, n-1, ... that reproduce ``order`` (indices, best first)."""
    scores = [0.0] * len(order)
    for position, index in enumerate(order):
        scores[index] = float(len(order) - position)
    return scores


__all__ = ["PairwiseSelector", "PairwiseConfig", "prob_a"]
