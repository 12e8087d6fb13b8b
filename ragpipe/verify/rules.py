"""Which rationale flag instructions are real rules for the verifier.

Small models filling the rationale prompt often copy the question or the prompt's own
placeholder ("when to reject") into ``flag_instructions``. Passed on, such text reaches the
verifier as a "rule" that means nothing, or that tells it to reject passages about the question.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragpipe.schema import Rationale
from ragpipe.verify.signals import rouge_tokens

PLACEHOLDERS = ("when to reject", "what to look for", "short name", "flag instruction", "flag_instructions")


def _echoes(rule: str, question: str) -> bool:
    words, asked = rouge_tokens(rule), set(rouge_tokens(question))
    if not words:
        return True
    lowered = " ".join(words)
    if any(" ".join(rouge_tokens(p)) == lowered or lowered in " ".join(rouge_tokens(p)) for p in PLACEHOLDERS):
        return True
    return bool(asked) and sum(w in asked for w in words) / len(words) >= 0.8


def usable_rules(rationales: Sequence[Rationale], question: str) -> tuple[list[str], list[str]]:
    """(rules to use, rules ignored because they echo the question or a placeholder), order kept."""
    used, ignored = [], []
    for rationale in rationales:
        rule = (rationale.flag_instructions or "").strip()
        if not rule:
            continue
        (ignored if _echoes(rule, question) else used).append(rule)
    return list(dict.fromkeys(used)), ignored
