"""Pointwise relevance: one independent call per candidate, all sent at once.

``pointwise_yesno`` scores the normalised probability mass of "yes" over "yes" + "no" at the
answer token (rank_llm's recipe); ``pointwise_scale`` asks for a 0-10 integer and takes the
expected value over the score tokens' distribution, reading "10" across two positions on
tokenizers that split digits ("1" then "0": Qwen, Llama 3, Mistral, SmolLM2). Both read the text
instead when the backend returns no logprobs, and give a floor score (traced) when neither works.
``pointwise_ensemble`` asks both; the harm bound weighs each reading's order as a vote of its own.
Ties are broken by the input order, so an unhelpful model degrades to it, not to noise.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ragpipe.errors import ConfigError, LLMError, OutputParseError
from ragpipe.llm.base import Completion
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import (
    LLMSelectorConfig,
    Selector,
    SelectorRun,
    order_of,
    register_selector,
    retrieval_prior,
)
from ragpipe.select.budget import fit_prompt
from ragpipe.select.parsing import answer_mass, bare_token, parse_int_score, parse_yes_no

TIE_BREAK = 1e-6  # weight of the input order (0-1): orders equal LLM scores only


class PointwiseConfig(LLMSelectorConfig):
    max_passage_words: int = 300
    use_logprobs: bool = True
    floor: float = 0.0
    prompt: str = ""


@dataclass(frozen=True)
class Reading:
    """One way to score a candidate: its prompt, and how a relevance is read from the reply."""

    prompt: str
    from_logprobs: Callable[[Completion], float | None]
    from_text: Callable[[str], float]
    high: float = 1.0  # the best score it gives: readings are averaged as shares of it
    label: str = ""


class PointwiseSelector(Selector[PointwiseConfig]):
    """Shared flow: render, call, read a score from logprobs or text, floor on failure."""

    Config = PointwiseConfig
    readings: ClassVar[tuple[Reading, ...]] = ()

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.asked = self._asked_readings()

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        readings, n = self.asked, len(candidates)
        values = await asyncio.gather(*(self._one(question, c, run, k, reading)
                                        for reading in readings for k, c in enumerate(candidates)))
        per_reading = [values[r * n:(r + 1) * n] for r in range(len(readings))]
        results = [_combined(each, readings) for each in zip(*per_reading)]
        for result in results:
            run.reliability.answer(result is not None)
        if all(r is None for r in results):
            raise LLMError("every pointwise call failed")
        floor = self.config.floor  # type: ignore[attr-defined]
        tie = retrieval_prior(candidates)

        def scored(read: Sequence[float | None]) -> list[float]:
            return [(floor if v is None else v) + TIE_BREAK * t for v, t in zip(read, tie)]

        if len(readings) > 1:  # the harm bound weighs each reading's order on its own
            run.readings.extend(order_of(scored(read)) for read in per_reading)
        return scored(results)

    def _asked_readings(self) -> tuple[Reading, ...]:
        """The readings to ask; a 'prompt' setting replaces the one prompt of a single-reading method."""
        prompt = self.config.prompt  # type: ignore[attr-defined]
        if not prompt:
            return self.readings
        if len(self.readings) > 1:
            raise ConfigError(f"selector '{self.name}' asks {len(self.readings)} prompts "
                              f"({', '.join(r.prompt for r in self.readings)}), so 'prompt' cannot choose one; "
                              f"override them by name in a prompts_dir instead")
        return (replace(self.readings[0], prompt=prompt),)

    async def _one(self, question: str, candidate: ScoredChunk, run: SelectorRun, k: int,
                   reading: Reading) -> float | None:
        config = self.config
        label = f"candidate {k + 1} ({candidate.id}){reading.label}"
        prompt = run.ctx.prompts.get(reading.prompt)
        max_tokens = prompt.max_tokens
        fitted = fit_prompt(lambda p: prompt.render(question=question, passage=p[0]), [candidate.chunk.text],
                            run.llm, max_words=config.max_passage_words, output_tokens=max_tokens)
        if fitted.truncated:
            run.note("truncation", f"{label}: passage cut to {fitted.words} words", words=fitted.words)
        if not fitted.fits:
            run.note("fallback", f"{label}: prompt of {fitted.prompt_tokens} tokens exceeds the budget "
                     f"{fitted.budget} even at {fitted.words} words; floor score {config.floor:g}")
            return None
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
                value = reading.from_logprobs(completion)
                if value is not None:
                    return value
                run.note("repair", f"{label}: no score token among the top logprobs; reading the text")
            else:
                run.note("repair", f"{label}: logprobs requested but none returned; reading the text")
        try:
            return reading.from_text(completion.text)
        except OutputParseError as err:
            run.note("fallback", f"{label}: {err}; floor score {config.floor:g}", raw=completion.text[:200])
            return None


def _combined(values: Sequence[float | None], readings: Sequence[Reading]) -> float | None:
    """One reading's score as it is; several as the mean share of their best score (those that were read)."""
    if len(readings) == 1:
        return values[0]
    shares = [v / r.high for v, r in zip(values, readings) if v is not None]
    return sum(shares) / len(shares) if shares else None


def yes_mass(completion: Completion) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the spellings of yes/no at the answer position."""
    found = answer_mass(completion, lambda word: word.lower() if word.lower() in ("yes", "no") else None)
    if found is None:
        return None
    mass = found[1]
    return mass.get("yes", 0.0) / (mass.get("yes", 0.0) + mass.get("no", 0.0))


def _score_token(word: str, high: int) -> int | None:
    return int(word) if word.isdigit() and int(word) <= high else None


def expected_score(completion: Completion, high: int = 10) -> float | None:
    """Sum of k * p(k) over the scores 0..high at the answer position, renormalised over those found.

    Where the tokenizer splits "10" into "1" + "0", the mass of "1" is divided between 1 and 10
    by the next position: P(10) = P("1") * P("0" | "1"). That conditional is known only when the
    model actually chose "1"; otherwise the "1" mass is read as 1 (its usual meaning).
    """
    positions = completion.logprobs or []
    found = answer_mass(completion, lambda word: _score_token(word, high))
    if found is None:
        return None
    position, mass = found
    if high >= 10 and bare_token(position.token) == "1" and 1 in mass:
        at = next(i for i, p in enumerate(positions) if p is position)
        following = positions[at + 1] if at + 1 < len(positions) else None
        if following is not None:
            zero = sum(math.exp(lp) for t, lp in following.top_dict().items() if bare_token(t) == "0"
                       and not t.startswith(" "))
            mass[10] = mass.get(10, 0.0) + mass[1] * zero
            mass[1] *= 1.0 - zero
    total = sum(mass.values())
    return sum(k * p for k, p in mass.items()) / total if total > 0 else None


YES_NO = Reading("pointwise.yesno", yes_mass, lambda text: 1.0 if parse_yes_no(text) else 0.0)
SCALE = Reading("pointwise.scale", expected_score, lambda text: float(parse_int_score(text)), high=10.0)


@register_selector("pointwise_yesno")
class YesNoSelector(PointwiseSelector):
    """Relevance = normalised yes-probability (text: yes 1, no 0)."""

    readings = (YES_NO,)


@register_selector("pointwise_scale")
class ScaleSelector(PointwiseSelector):
    """Relevance = expected 0-10 score over the score tokens (text: the parsed integer)."""

    readings = (SCALE,)


@register_selector("pointwise_ensemble")
class EnsembleSelector(PointwiseSelector):
    """Relevance = both readings: two calls per candidate, two prompts whose mistakes differ.

    A yes/no question and a graded one fail on different passages with a small model. The harm
    bound gives each reading its own vote beside the input order's, so a passage moves only where
    two of the three agree; without the bound, the mean of the two is the order. It costs twice
    the calls of one reading.
    """

    readings = (replace(YES_NO, label=" yes/no"), replace(SCALE, label=" 0-10"))


__all__ = ["YesNoSelector", "ScaleSelector", "EnsembleSelector", "Reading", "yes_mass", "expected_score"]
