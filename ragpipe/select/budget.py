"""Token budgets for ranking prompts: shorten passages until the prompt fits the model's context.

Follows rank_llm's approach: render with a per-passage word cap, count the prompt with the
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


def fit_prompt(
    render: Callable[[list[str]], list[Message]],
    passages: Sequence[str],
    llm: LLM,
    *,
    max_words: int,
    output_tokens: int,
) -> FittedPrompt:
    """Render ``render(truncated_passages)`` so it fits ``context_window - output_tokens``."""
    budget = llm.capabilities.context_window - output_tokens
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
