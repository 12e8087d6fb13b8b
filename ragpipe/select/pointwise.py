"""Pointwise relevance: one independent call per candidate, all sent at once.

``pointwise_yesno`` scores the normalised probability mass of "yes" over "yes" + "no" at the
first answer token (rank_llm's recipe); ``pointwise_scale`` asks for a 0-10 integer and takes the
expected value over the score tokens' distribution. Both read the text instead when the backend
returns no logprobs, and give a floor score (traced) when neither works. Ties are broken by the
retriever score, so an unhelpful model degrades to the retriever's order, not to noise.
"""

from __future__ import annotations

import asyncio
import math
from typing import ClassVar

from ragpipe.errors import LLMError, OutputParseError
from ragpipe.llm.base import Completion
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import Selector, SelectorConfig, SelectorRun, minmax, register_selector
from ragpipe.select.budget import fit_prompt
from ragpipe.select.parsing import bare_token, parse_int_score, parse_yes_no

TIE_BREAK = 1e-6  # weight of the min-max retriever score: orders equal LLM scores only


class PointwiseConfig(SelectorConfig):
    max_passage_words: int = 300
    use_logprobs: bool = True
    floor: float = 0.0
    prompt: str = ""


class PointwiseSelector(Selector):
    """Shared flow: render, call, read a score from logprobs or text, floor on failure."""

    Config = PointwiseConfig
    default_prompt: ClassVar[str] = ""

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        results = await asyncio.gather(*(self._one(question, c, run, k) for k, c in enumerate(candidates)))
        if all(r is None for r in results):
            raise LLMError("every pointwise call failed")
        floor = self.config.floor  # type: ignore[attr-defined]
        tie = minmax([c.score for c in candidates])
        return [(floor if r is None else r) + TIE_BREAK * t for r, t in zip(results, tie)]

    async def _one(self, question: str, candidate: ScoredChunk, run: SelectorRun, k: int) -> float | None:
        config: PointwiseConfig = self.config  # type: ignore[assignment]
        label = f"candidate {k + 1} ({candidate.id})"
        prompt = run.ctx.prompts.get(config.prompt or self.default_prompt)
        max_tokens = prompt.max_tokens
        fitted = fit_prompt(lambda p: prompt.render(question=question, passage=p[0]), [candidate.chunk.text],
                            run.llm, max_words=config.max_passage_words, output_tokens=max_tokens)
        if fitted.truncated:
            run.note("truncation", f"{label}: passage cut to {fitted.words} words", words=fitted.words)
        caps = run.llm.capabilities
        logprobs = config.use_logprobs and caps.logprobs and caps.max_top_logprobs > 0
        options = {"top_logprobs": min(20, caps.max_top_logprobs)} if logprobs else {}
        try:
            completion = await run.chat(fitted.messages, purpose=label, max_tokens=max_tokens,
                                        temperature=0.0, **options)
        except Exception as err:
            run.note("fallback", f"{label}: {type(err).__name__}: {err}; floor score {config.floor:g}",
                     error=type(err).__name__)
            return None
        if logprobs:
            if completion.logprobs:
                value = self.from_logprobs(completion)
                if value is not None:
                    return value
                run.note("repair", f"{label}: no score token among the top logprobs; reading the text")
            else:
                run.note("repair", f"{label}: logprobs requested but none returned; reading the text (B18)")
        try:
            return self.from_text(completion.text)
        except OutputParseError as err:
            run.note("fallback", f"{label}: {err}; floor score {config.floor:g}", raw=completion.text[:200])
            return None

    def from_logprobs(self, completion: Completion) -> float | None:
        raise NotImplementedError

    def from_text(self, text: str) -> float:
        raise NotImplementedError


def yes_mass(completion: Completion) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the spellings of yes/no at the first position that has any."""
    for position in completion.logprobs or []:
        yes = no = 0.0
        for token, logprob in position.top_dict().items():
            word = bare_token(token).lower()
            if word == "yes":
                yes += math.exp(logprob)
            elif word == "no":
                no += math.exp(logprob)
        if yes + no > 0:
            return yes / (yes + no)
    return None


def expected_score(completion: Completion, high: int = 10) -> float | None:
    """Sum of k * p(k) over the integer tokens 0..high, renormalised over those found."""
    for position in completion.logprobs or []:
        mass: dict[int, float] = {}
        for token, logprob in position.top_dict().items():
            word = bare_token(token)
            if word.isdigit() and 0 <= int(word) <= high:
                mass[int(word)] = mass.get(int(word), 0.0) + math.exp(logprob)
        total = sum(mass.values())
        if total > 0:
            return sum(k * p for k, p in mass.items()) / total
    return None


@register_selector("pointwise_yesno")
class YesNoSelector(PointwiseSelector):
    """Relevance = normalised yes-probability (text: yes 1, no 0)."""

    name = "pointwise_yesno"
    default_prompt = "pointwise.yesno"

    def from_logprobs(self, completion: Completion) -> float | None:
        return yes_mass(completion)

    def from_text(self, text: str) -> float:
        return 1.0 if parse_yes_no(text) else 0.0


@register_selector("pointwise_scale")
class ScaleSelector(PointwiseSelector):
    """Relevance = expected 0-10 score over the score tokens (text: the parsed integer)."""

    name = "pointwise_scale"
    default_prompt = "pointwise.scale"

    def from_logprobs(self, completion: Completion) -> float | None:
        return expected_score(completion)

    def from_text(self, text: str) -> float:
        return float(parse_int_score(text))


__all__ = ["YesNoSelector", "ScaleSelector", "yes_mass", "expected_score"]
