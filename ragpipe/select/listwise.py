"""Listwise reranking (RankGPT / RankZephyr prompt) with a sliding window, plus FIRST decoding.

Windows move from the back of the list to the front so strong passages bubble up by ``stride``
per window; windows of one query run one after another because each depends on the last.
Generation mode validates the ``[a] > [b]`` format before trusting it (a model answering
``Received passage [20].`` has not ranked anything) and repairs partial permutations. FIRST mode
reads the ranking from the logprobs at the first identifier position (after an opening ``[``),
one call and ~2 output tokens per window, and falls back to generation when the backend gives no
logprobs or the letters are not single tokens for the model.

The scores handed on are the input's slot scores (rank_llm keeps each slot's original score):
the passage ranked first gets the best incoming score, and so on, so an elbow cutoff after
listwise sees the retriever's score shape rather than a straight line. ``check_reversed`` asks
every window a second time in reversed order: the two answers are averaged (which cancels
position bias), and each passage pair the two answers order alike counts as self-agreement for
the harm bound. It is on by default in FIRST mode, where the second answer costs one prompt and
a few output tokens: small models put much of a letter's probability on its position (``A`` for
whatever comes first), and only a reversed window tells that apart from relevance. FIRST answers
are reconciled by their letter distributions: mean log-probability per passage, and each pair
weighted by the probability the two answers put on it, so pairs of letters the model never
considered do not count as agreement or disagreement.

FIRST letter logprobs can be calibrated before use (``calibrate``, off by default): two extra
calls per window size ask the same prompt with every passage replaced by a content-free
placeholder, and the letter distribution they give, the model's preference for a letter whatever
it labels, is divided out of every window's answer (calibrate-before-use, Zhao et al. 2021). It
is off by default because, measured with a 0.5B model on TREC DL 2019, the content-free prior
did not match the bias of real windows: the calibrated order was worse than the uncalibrated one
and the calls doubled. Try it on a model whose letter prior is stable across windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import model_validator

from ragpipe.errors import LLMError, OutputParseError
from ragpipe.llm.base import Completion
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import LLMSelectorConfig, Selector, SelectorRun, input_slot_scores, register_selector
from ragpipe.select.harm_bound import kendall_tau
from ragpipe.select.budget import fit_prompt
from ragpipe.select.parsing import (
    answer_mass,
    complete_permutation,
    ideal_permutation,
    letter_ids,
    neutralise_identifiers,
    parse_permutation,
)

OUTPUT_SLACK_TOKENS = 16  # plus a quarter of the ideal answer: models space and prefix their rankings
FIRST_TOP_LOGPROBS = 20
FIRST_MAX_TOKENS = 3  # no assistant prefill: "[" or "Passage" may come first, the letter after it
CONTENT_FREE = ("N/A", "[MASK]")  # what every passage says in the calibration calls


def window_spans(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """The [start, end) windows, back to front: 1 + ceil((n - window) / stride) of them."""
    if n <= 0:
        return []
    if n <= window:
        return [(0, n)]
    spans = []
    end, start = n, n - window
    while True:
        spans.append((max(start, 0), end))
        if start <= 0:
            return spans
        end, start = end - stride, start - stride


class ListwiseConfig(LLMSelectorConfig):
    window: int = 20
    stride: int = 10
    passes: int = 1
    mode: Literal["generate", "first"] = "generate"
    check_reversed: bool | None = None  # ask each window again reversed; None: on in FIRST mode only
    calibrate: bool = False  # FIRST: divide out the letter prior of a content-free window
    max_passage_words: int = 300
    prompt: str = "listwise.default"
    first_prompt: str = "listwise.first"

    @model_validator(mode="after")
    def _check(self) -> ListwiseConfig:
        if self.window < 2:
            raise ValueError("window must be at least 2")
        if not 1 <= self.stride <= self.window:
            raise ValueError("stride must be between 1 and window")
        if self.passes < 1:
            raise ValueError("passes must be at least 1")
        if self.mode == "first" and self.window > 26:
            raise ValueError("FIRST mode uses letter identifiers: window must be at most 26")
        return self

    @property
    def reversed_check(self) -> bool:
        """Whether each window is asked twice: by default only in FIRST mode, where it is cheap."""
        return self.mode == "first" if self.check_reversed is None else self.check_reversed


@dataclass
class WindowAnswer:
    """One window's ranking (window indices, best first); FIRST adds the log-probability per passage."""

    order: list[int]
    logprobs: dict[int, float] | None = None


@register_selector("listwise")
class ListwiseSelector(Selector[ListwiseConfig]):
    """RankGPT-style sliding-window permutation ranking (``mode="first"`` for FIRST)."""

    Config = ListwiseConfig

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        config = self.config
        order = list(range(len(candidates)))
        texts = [neutralise_identifiers(c.chunk.text) for c in candidates]
        query = neutralise_identifiers(question)
        use_first = config.mode == "first" and self._first_usable(run, min(config.window, len(candidates)))
        windows = window_spans(len(candidates), config.window, config.stride)
        run.note("info", f"{config.passes} pass(es) of {len(windows)} window(s) over {len(candidates)} candidates",
                 window=config.window, stride=config.stride, mode="first" if use_first else "generate")
        priors: dict[int, list[float] | None] = {}
        if use_first and config.calibrate:
            for size in sorted({end - start for start, end in windows if end - start >= 2}, reverse=True):
                priors[size], use_first = await self._letter_prior(query, size, run)
                if not use_first:
                    break
        answered = 0
        for p in range(config.passes):
            for start, end in windows:
                slot = order[start:end]
                if len(slot) < 2:
                    continue  # a one-passage window has nothing to rank
                label = f"pass {p + 1} window [{start}, {end})"
                prior = priors.get(len(slot))
                answer, use_first = await self._rank_window(query, [texts[i] for i in slot], run, label, use_first,
                                                            prior)
                permutation = None if answer is None else answer.order
                if config.reversed_check and answer is not None:
                    backwards, use_first = await self._rank_window(query, [texts[i] for i in reversed(slot)], run,
                                                                   f"{label} reversed", use_first, prior)
                    permutation = self._reconcile(answer, backwards, run, label)
                run.reliability.answer(permutation is not None)
                if permutation is not None:
                    answered += 1
                    order[start:end] = [slot[i] for i in permutation]
        if answered == 0:
            raise LLMError("no window produced a usable ranking")
        slots = input_slot_scores(candidates)
        scores = [0.0] * len(candidates)
        for position, index in enumerate(order):
            scores[index] = float(slots[position]) - 1e-9 * position  # strictly decreasing: ties keep this order
        return scores

    async def _rank_window(self, query: str, passages: list[str], run: SelectorRun, label: str, use_first: bool,
                           prior: list[float] | None = None) -> tuple[WindowAnswer | None, bool]:
        """One window's answer (or ``None``), and whether later windows still use FIRST."""
        answer, generate = None, True
        if use_first:
            answer, use_first, generate = await self._first_window(query, passages, run, label, prior)
        if answer is None and generate:
            permutation = await self._generate_window(query, passages, run, label)
            answer = None if permutation is None else WindowAnswer(permutation)
        return answer, use_first

    @staticmethod
    def _reconcile(forwards: WindowAnswer, backwards: WindowAnswer | None, run: SelectorRun, label: str
                   ) -> list[int]:
        """Combine an answer with the reversed window's; record how far they agreed."""
        n = len(forwards.order)
        if backwards is None:  # counts as a whole window's worth of disagreement
            run.reliability.check(False, 2.0 * (n - 1) if forwards.logprobs is not None else n * (n - 1) / 2)
            run.note("repair", f"{label}: the reversed window gave no ranking; used the forward answer")
            return forwards.order
        if forwards.logprobs is not None and backwards.logprobs is not None:
            unreversed = {n - 1 - i: lp for i, lp in backwards.logprobs.items()}
            consensus = first_consensus(forwards.logprobs, unreversed, n)
            run.reliability.check(consensus.agreement, consensus.weight)
            run.note("info", f"{label}: forward and reversed letter distributions agree on "
                     f"{consensus.agreement:.0%} of the probability-weighted passage pairs",
                     agreement=round(consensus.agreement, 3), top=consensus.order[:3])
            return consensus.order
        unreversed = [n - 1 - i for i in backwards.order]  # back to the forward window's indices
        position = {i: [0, 0] for i in range(n)}
        for p, i in enumerate(forwards.order):
            position[i][0] = p
        for p, i in enumerate(unreversed):
            position[i][1] = p
        in_forward = [position[i][0] for i in unreversed]
        for x in range(n):  # every passage pair is one check: same order in both answers?
            for y in range(x + 1, n):
                run.reliability.check(in_forward[x] < in_forward[y])
        tau = kendall_tau(in_forward)
        run.note("info", f"{label}: forward and reversed answers agree with Kendall tau {tau:.2f}", tau=round(tau, 3))
        return sorted(range(n), key=lambda i: (sum(position[i]), position[i][0]))

    def _render(self, prompt_name: str, run: SelectorRun, query: str, letters: bool):
        prompt = run.ctx.prompts.get(prompt_name)

        def render(passages: list[str]):
            idents = letter_ids(len(passages)) if letters else [str(i) for i in range(1, len(passages) + 1)]
            return prompt.render(question=query, passages=[{"ident": i, "text": t} for i, t in zip(idents, passages)])

        return render

    def _fit(self, run: SelectorRun, render, passages: list[str], output_tokens: int, label: str):
        fitted = fit_prompt(render, passages, run.llm, max_words=self.config.max_passage_words,  # type: ignore[attr-defined]
                            output_tokens=output_tokens)
        if fitted.truncated:
            run.note("truncation", f"{label}: {fitted.truncated} passage(s) cut to {fitted.words} words "
                     f"(prompt {fitted.prompt_tokens} tokens, budget {fitted.budget})",
                     words=fitted.words, prompt_tokens=fitted.prompt_tokens, budget=fitted.budget)
        if not fitted.fits:
            raise OutputParseError(f"{label}: prompt of {fitted.prompt_tokens} tokens exceeds the budget "
                                   f"{fitted.budget} even at {fitted.words} words per passage")
        return fitted.messages

    async def _generate_window(self, query: str, passages: list[str], run: SelectorRun, label: str) -> list[int] | None:
        """Ask for ``[a] > [b] > …``; ``None`` (window keeps its order) when the answer is unusable."""
        config = self.config
        n = len(passages)
        ideal = run.llm.count_tokens(ideal_permutation(n))
        # sized to the answer, never past the prompt file's own ceiling
        max_tokens = min(ideal + ideal // 4 + OUTPUT_SLACK_TOKENS, run.ctx.prompts.get(config.prompt).max_tokens)
        try:
            messages = self._fit(run, self._render(config.prompt, run, query, False), passages, max_tokens, label)
            completion = await run.chat(messages, purpose=f"{label}: generate", max_tokens=max_tokens, temperature=0.0)
        except Exception as err:
            run.note("fallback", f"{label}: {type(err).__name__}: {err}; window kept its order",
                     error=type(err).__name__)
            return None
        try:
            parsed = parse_permutation(completion.text, n)
        except OutputParseError as err:
            run.note("fallback", f"{label}: wrong_format, window kept its order ({err})",
                     status="wrong_format", raw=completion.text[:300])
            return None
        if completion.truncated:
            run.note("repair", f"{label}: output stopped at max_tokens; used the partial ranking", status=parsed.status)
        for repair in parsed.repairs:
            run.note("repair", f"{label}: {repair}", status=parsed.status)
        return parsed.order

    def _first_usable(self, run: SelectorRun, window: int) -> bool:
        caps = run.llm.capabilities
        if not caps.logprobs or caps.max_top_logprobs < 2:
            run.note("fallback", "FIRST needs top logprobs, which this backend does not offer; using generation")
            return False
        multi = [x for x in letter_ids(window) if run.llm.count_tokens(x) != 1]
        if multi:
            run.note("fallback", f"FIRST: identifier(s) {multi} are not single tokens for this model; using generation")
            return False
        return True

    async def _first_call(self, query: str, passages: list[str], run: SelectorRun, label: str) -> Completion:
        config = self.config
        max_tokens = min(FIRST_MAX_TOKENS, run.ctx.prompts.get(config.first_prompt).max_tokens)
        messages = self._fit(run, self._render(config.first_prompt, run, query, True), passages, max_tokens, label)
        return await run.chat(messages, purpose=f"{label}: FIRST", max_tokens=max_tokens, temperature=0.0,
                              top_logprobs=_top_logprobs(run))

    async def _letter_prior(self, query: str, n: int, run: SelectorRun) -> tuple[list[float] | None, bool]:
        """The letter distribution of an ``n``-passage window whose passages say nothing (``None`` if
        unread), and whether FIRST stays usable: a backend that ignores the logprob request is not.

        Averaged over a few placeholders, as calibrate-before-use does, so that how the model reacts
        to one placeholder's wording is not taken for its letter prior.
        """
        label = f"calibration ({n} passages)"
        read: list[list[float]] = []
        for placeholder in CONTENT_FREE:
            try:
                completion = await self._first_call(query, [placeholder] * n, run, label)
            except Exception as err:
                run.note("fallback", f"{label}: {type(err).__name__}: {err}", error=type(err).__name__)
                continue
            if not completion.logprobs:
                run.note("fallback", f"{label}: the backend returned no logprobs; switched to generation")
                return None, False
            prior = letter_prior(first_letter_logprobs(completion, n), n)
            if prior is None:
                run.note("repair", f"{label}: no identifier letter among the top logprobs for {placeholder!r}",
                         raw=completion.text[:100])
            else:
                read.append(prior)
        if not read:
            run.note("fallback", f"{label}: no content-free answer was readable; FIRST letters used uncalibrated")
            return None, True
        prior = [math.log(sum(math.exp(p[i]) for p in read) / len(read)) for i in range(n)]
        shown = sorted(range(n), key=lambda i: -prior[i])[:3]
        run.note("info", f"{label}: letter prior " + ", ".join(f"{chr(65 + i)} {math.exp(prior[i]):.0%}"
                                                             for i in shown),
                 prior={chr(65 + i): round(math.exp(prior[i]), 4) for i in shown}, placeholders=len(read))
        return prior, True

    async def _first_window(self, query: str, passages: list[str], run: SelectorRun, label: str,
                            prior: list[float] | None = None) -> tuple[WindowAnswer | None, bool, bool]:
        """(answer or None, keep using FIRST for later windows, retry this window by generation)."""
        top = _top_logprobs(run)
        try:
            completion = await self._first_call(query, passages, run, label)
        except Exception as err:
            run.note("fallback", f"{label}: {type(err).__name__}: {err}; window kept its order",
                     error=type(err).__name__)
            return None, True, False
        if not completion.logprobs:
            run.note("fallback", f"{label}: the backend returned no logprobs; switched to generation")
            return None, False, True
        letter_logprobs = first_letter_logprobs(completion, len(passages))
        if not letter_logprobs:
            run.note("fallback", f"{label}: no identifier letter among the top logprobs; used generation",
                     raw=completion.text[:100])
            return None, True, True
        if prior is not None:
            letter_logprobs = calibrated(letter_logprobs, prior)
        ranked = sorted(letter_logprobs, key=lambda i: (-letter_logprobs[i], i))
        order, _ = complete_permutation(ranked, len(passages))
        if len(ranked) < len(passages):
            run.note("repair", f"{label}: {len(passages) - len(ranked)} letter(s) missing from the top "
                     f"{top} logprobs kept input order after the ranked ones")
        return WindowAnswer(order, letter_logprobs), True, False


def _top_logprobs(run: SelectorRun) -> int:
    """Alternatives asked for per position: enough for every letter of a 20-passage window."""
    return min(FIRST_TOP_LOGPROBS, run.llm.capabilities.max_top_logprobs)


def first_letter_logprobs(completion: Completion, n: int) -> dict[int, float]:
    """Log-probability per identifier letter at the identifier position (after any ``[`` or ``Passage``).

    The spellings of one letter (``"A"``, ``" A"``) add up, as they do for the pointwise answers.
    """
    letters = {x: i for i, x in enumerate(letter_ids(n))}
    found = answer_mass(completion, letters.get)
    return {} if found is None else {index: math.log(p) for index, p in found[1].items()}


def letter_prior(logprobs: dict[int, float], n: int) -> list[float] | None:
    """Log-probability per letter position, normalised over the ``n`` letters; ``None`` without letters.

    A letter the content-free answer did not show gets half the least likely shown one's share.
    """
    return _log_normalised(_filled(logprobs, n)) if logprobs else None


def calibrated(logprobs: dict[int, float], prior: list[float]) -> dict[int, float]:
    """A window's letter log-probabilities with the letter prior divided out, renormalised.

    Only the letters the answer showed are rated; a missing one stays missing (least likely).
    Rounded so that letters the answer rates exactly as the prior does tie instead of being
    ordered by float noise.
    """
    keys = sorted(logprobs)
    values = _log_normalised([logprobs[i] - prior[i] for i in keys])
    return {i: round(v, 9) for i, v in zip(keys, values)}


def _log_normalised(values: list[float]) -> list[float]:
    top = max(values)
    total = top + math.log(sum(math.exp(v - top) for v in values))
    return [v - total for v in values]


@dataclass
class Consensus:
    order: list[int]  # by mean log-probability, ties in window order
    agreed: float  # weight of the passage pairs both answers order alike
    weight: float  # weight of all pairs

    @property
    def agreement(self) -> float:
        return self.agreed / self.weight if self.weight > 0 else 0.0


def first_consensus(forwards: dict[int, float], backwards: dict[int, float], n: int) -> Consensus:
    """Reconcile two FIRST letter distributions over the same ``n`` passages (window indices).

    A letter missing from an answer's top logprobs counts as less likely than the least likely
    one shown. A pair's weight is the probability both answers put on its two passages, so the
    one or two letters a model actually considers decide the agreement, not the long tail of
    near-zero alternatives whose order is noise.
    """
    filled = [_filled(forwards, n), _filled(backwards, n)]
    shares = [_shares(answer, n) for answer in (forwards, backwards)]
    order = sorted(range(n), key=lambda i: (-(filled[0][i] + filled[1][i]), i))
    agreed = weight = 0.0
    for x in range(n):
        for y in range(x + 1, n):
            signs = _sign(filled[0][x] - filled[0][y]), _sign(filled[1][x] - filled[1][y])
            if signs == (0, 0):
                continue  # neither answer tells the two apart: no evidence either way
            w = shares[0][x] + shares[0][y] + shares[1][x] + shares[1][y]
            weight += w
            if signs[0] == signs[1]:
                agreed += w
    return Consensus(order, agreed, weight)


def _filled(logprobs: dict[int, float], n: int) -> list[float]:
    """One log-probability per position; a missing one gets half the least likely shown one's share."""
    floor = min(logprobs.values(), default=0.0) - math.log(2)
    return [logprobs.get(i, floor) for i in range(n)]


def _shares(logprobs: dict[int, float], n: int) -> list[float]:
    total = sum(math.exp(v) for v in logprobs.values())
    return [math.exp(logprobs[i]) / total if i in logprobs and total > 0 else 0.0 for i in range(n)]


def _sign(x: float) -> int:
    return (x > 1e-12) - (x < -1e-12)


__all__ = ["ListwiseSelector", "ListwiseConfig", "WindowAnswer", "window_spans", "first_letter_logprobs",
           "first_consensus", "letter_prior", "calibrated"]
