"""Token budgets: make a prompt fit the model's context next to the answer it asks for.

Two policies share one way of counting (``prompt_tokens``) and one budget
(``context_window - output_tokens``): ranking prompts shorten every passage (``fit_prompt``),
answer prompts keep the leading evidence items whole and leave the rest out (``fit_leading``).

``fit_prompt`` follows rank_llm's approach: render with a per-passage word cap, count the prompt with the
LLM's own tokenizer (the chat-templated prompt itself where the backend can tokenize it), lower
the cap by the overflow spread over the passages, and repeat. The caller records the resulting
truncation in its trace and must not send a prompt that does not fit (``FittedPrompt.fits``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragpipe.llm.base import LLM, Message

MIN_WORDS = 8
MESSAGE_OVERHEAD_TOKENS = 8  # role markers a chat template adds around each message


def truncate_words(text: str, words: int) -> str:
    """The first ``words`` whitespace-separated words of ``text``."""
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words])


@dataclass
class FittedPrompt:
    messages: list[Message]
    words: int  # the per-passage word cap the prompt was rendered with
    prompt_tokens: int
    budget: int
    fits: bool
    truncated: int  # how many passages lost words to the cap


def prompt_tokens(llm: LLM, messages: Sequence[Message]) -> int:
    """The prompt's size for this backend: the templated token count when the backend offers it."""
    templated = getattr(llm, "prompt_tokens", None)
    if callable(templated):
        try:
            return len(templated(messages))
        except Exception:  # a backend that cannot template (yet): count the parts instead
            pass
    return sum(llm.count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def prompt_budget(llm: LLM, output_tokens: int) -> int:
    """What the prompt may use: the context window less the tokens reserved for the answer."""
    return llm.capabilities.context_window - output_tokens


def fit_prompt(
    render: Callable[[list[str]], list[Message]],
    passages: Sequence[str],
    llm: LLM,
    *,
    max_words: int,
    output_tokens: int,
) -> FittedPrompt:
    """Render ``render(truncated_passages)`` so it fits ``context_window - output_tokens``."""
    budget = prompt_budget(llm, output_tokens)
    words = max_words
    while True:
        cut = [truncate_words(p, words) for p in passages]
        messages = render(cut)
        tokens = prompt_tokens(llm, messages)
        if tokens <= budget or words <= MIN_WORDS:
            truncated = sum(1 for p, c in zip(passages, cut) if c != p)
            return FittedPrompt(messages, words, tokens, budget, tokens <= budget, truncated)
        longest = max((len(p.split()) for p in passages), default=0)
        overflow = tokens - budget
        words = max(MIN_WORDS, min(words, longest) - max(1, math.ceil(overflow / max(1, len(passages)))))


@dataclass
class FittedItems:
    kept: int  # how many leading items the prompt holds
    messages: list[Message]
    prompt_tokens: int
    budget: int


def fit_leading(render: Callable[[int], list[Message]], count: int, llm: LLM, *, output_tokens: int) -> FittedItems:
    """The prompt ``render(k)`` with the largest ``k <= count`` leading items that fits the budget.

    The rendered prompt is counted (not the items alone), so template text around each item is
    paid for; a prompt grows with ``k``, so a binary search needs about log2(count) renders.
    """
    budget = prompt_budget(llm, output_tokens)
    messages = render(count)
    tokens = prompt_tokens(llm, messages)
    if tokens <= budget:  # the usual case: everything fits, one render
        return FittedItems(count, messages, tokens, budget)
    low, high = 0, count - 1
    while low < high:  # invariant: k <= low fits or low == 0; k > high does not fit
        middle = (low + high + 1) // 2
        if prompt_tokens(llm, render(middle)) <= budget:
            low = middle
        else:
            high = middle - 1
    messages = render(low)
    return FittedItems(low, messages, prompt_tokens(llm, messages), budget)
