"""When the answer is "not found": no evidence, or the model says the evidence lacks the answer."""

from __future__ import annotations

import re

# What the user sees when ragpipe abstains; the answer prompt asks the model for the same words.
NOT_FOUND_TEXT = "Not found in the documents."

_NOT_FOUND = re.compile(
    r"\b(not\s+found\s+in\s+the\s+(documents?|evidence|context)"
    r"|(documents?|evidence|context)\s+(do|does)\s+not\s+(contain|mention|say)"
    r"|no\s+(relevant\s+)?information\s+(about|on|in))",
    re.IGNORECASE,
)


def says_not_found(text: str) -> bool:
    """True when the model's text declares the answer absent from the evidence."""
    return bool(_NOT_FOUND.search(text))


def starts_with_not_found(text: str) -> bool:
    """True when the model leads with the not-found phrase (so the rest is padding)."""
    match = _NOT_FOUND.search(text)
    return bool(match) and match.start() <= 3
