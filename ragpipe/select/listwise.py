"""Listwise reranking (RankGPT / RankZephyr prompt) with a sliding window, plus FIRST decoding.

Windows move from the back of the list to the front so strong passages bubble up by ``stride``
per window; windows of one query run one after another because each depends on the last.
Generation mode validates the ``[a] > [b]`` format before trusting it (a model answering
``Received passage [20].`` has not ranked anything) and repairs partial permutations. FIRST mode
reads the ranking from the logprobs of the first identifier token, one call and ~1 output token
per window, and falls back to generation when the backend gives no logprobs or the letters are
not single tokens for the model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ragpipe.errors import LLMError, OutputParseError
from ragpipe.llm.base import Completion
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import Selector, SelectorConfig, SelectorRun, register_selector
from ragpipe.select.budget import fit_prompt
from ragpipe.select.parsing import (
    bare_token,
    complete_permutation,
    ideal_permutation,
    letter_ids,
    neutralise_identifiers,
    parse_permutation,
)

OUTPUT_SLACK_TOKENS = 8
FIRST_MAX_TOKENS = 2  # no assistant prefill: the first token may be "[", the letter comes next


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


class ListwiseConfig(SelectorConfig):
    window: int = 20
    stride: int = 10
    passes: int = 1
    mode: Literal["generate", "first"] = "generate"
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


@register_selector("listwise")
class ListwiseSelector(Selector):
    """RankGPT-style sliding-window permutation ranking (``mode="first"`` for FIRST)."""

    name = "listwise"
    Config = ListwiseConfig

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        config: ListwiseConfig = self.config  # type: ignore[assignment]
        order = list(range(len(candidates)))
        texts = [neutralise_identifiers(c.chunk.text) for c in candidates]
        query = neutralise_identifiers(question)
        use_first = config.mode == "first" and self._first_usable(run, min(config.window, len(candidates)))
        windows = window_spans(len(candidates), config.window, config.stride)
        run.note("info", f"{config.passes} pass(es) of {len(windows)} window(s) over {len(candidates)} candidates",
                 window=config.window, stride=config.stride, mode="first" if use_first else "generate")
        answered = 0
        for p in range(config.passes):
            for start, end in windows:
                slot = order[start:end]
                label = f"pass {p + 1} window [{start}, {end})"
                permutation, generate = None, True
                if use_first:
                    permutation, use_first, generate = await self._first_window(
                        query, [texts[i] for i in slot], run, label)
                if permutation is None and generate:
                    permutation = await self._generate_window(query, [texts[i] for i in slot], run, label)
                if permutation is not None:
                    answered += 1
                    order[start:end] = [slot[i] for i in permutation]
        if answered == 0:
            raise LLMError("no window produced a usable ranking")
        scores = [0.0] * len(candidates)
        for position, index in enumerate(order):
            scores[index] = float(len(candidates) - position)
        return scores

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
        config: ListwiseConfig = self.config  # type: ignore[assignment]
        n = len(passages)
        max_tokens = run.llm.count_tokens(ideal_permutation(n)) + OUTPUT_SLACK_TOKENS
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

    async def _first_window(self, query: str, passages: list[str], run: SelectorRun, label: str
                            ) -> tuple[list[int] | None, bool, bool]:
        """(permutation or None, keep using FIRST for later windows, retry this window by generation)."""
        config: ListwiseConfig = self.config  # type: ignore[assignment]
        top = min(20, run.llm.capabilities.max_top_logprobs)
        try:
            messages = self._fit(run, self._render(config.first_prompt, run, query, True), passages,
                                 FIRST_MAX_TOKENS, label)
            completion = await run.chat(messages, purpose=f"{label}: FIRST", max_tokens=FIRST_MAX_TOKENS,
                                        temperature=0.0, top_logprobs=top)
        except Exception as err:
            run.note("fallback", f"{label}: {type(err).__name__}: {err}; window kept its order",
                     error=type(err).__name__)
            return None, True, False
        if not completion.logprobs:
            run.note("fallback", f"{label}: the backend returned no logprobs; switched to generation (B18)")
            return None, False, True
        letter_logprobs = first_letter_logprobs(completion, len(passages))
        if not letter_logprobs:
            run.note("fallback", f"{label}: no identifier letter among the top logprobs; used generation",
                     raw=completion.text[:100])
            return None, True, True
        ranked = sorted(letter_logprobs, key=lambda i: -letter_logprobs[i])
        order, _ = complete_permutation(ranked, len(passages))
        if len(ranked) < len(passages):
            run.note("repair", f"{label}: {len(passages) - len(ranked)} letter(s) missing from the top "
                     f"{top} logprobs kept input order after the ranked ones")
        return order, True, False


def first_letter_logprobs(completion: Completion, n: int) -> dict[int, float]:
    """Best logprob per identifier letter at the first generated position that offers letters."""
    letters = {x: i for i, x in enumerate(letter_ids(n))}
    for position in completion.logprobs or []:
        found: dict[int, float] = {}
        for token, logprob in position.top_dict().items():
            index = letters.get(bare_token(token))
            if index is not None and logprob > found.get(index, float("-inf")):
                found[index] = logprob
        if found:
            return found
    return {}


__all__ = ["ListwiseSelector", "ListwiseConfig", "window_spans", "first_letter_logprobs"]
