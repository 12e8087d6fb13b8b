"""Is a generated answer an answer? Small models often return something that only looks like one.

Seen from SmolLM2-135M and Qwen2.5-0.5B on real questions: the whole answer is ``[1]``; the
answer echoes the prompt's evidence markup (``[1] page.html <data id="3"> …``); the answer is the
question again; a refusal; raw JSON instead of prose; text with almost no words; fluent text the
evidence does not back (see :mod:`ragpipe.generate.support`). Each is named by :func:`degenerate_reason` so the generator can retry, extract, and
say in the trace why.
"""

from __future__ import annotations

import re

from ragpipe.generate.citations import MARKER
from ragpipe.generate.sentences import content_words, split_sentences, words
from ragpipe.generate.support import unsupported_reason
from ragpipe.schema import ScoredChunk

_MARKUP = re.compile(r"</?\s*data\b|&lt;/?data\b|^\s*(question|documents?|evidence|context)\s*:", re.IGNORECASE | re.MULTILINE)
_SOURCE_LINE = re.compile(r"^\s*\[\d+\]\s+\S+\.(?:html?|md|markdown|txt|rst|pdf|docx?)\b", re.IGNORECASE | re.MULTILINE)
_REFUSAL = re.compile(
    r"\b(i'?\s?a?m sorry|i apologi[sz]e|i can(?:no|')t (?:help|answer|assist|provide)|i am (?:not able|unable)"
    r"|i'm (?:not able|unable)|as an ai\b|as a language model)",
    re.IGNORECASE,
)
_YES_NO_START = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|shall)\b", re.IGNORECASE
)
# Raw structured output ('{"answer": …', '[{"id": …') instead of prose: the model answered a format.
_STRUCTURED = re.compile(r"^\s*(?:```\w*\s*)?[\[{]\s*[\"'{\[]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
MIN_LETTER_SHARE = 0.5  # of the non-space characters, once citation markers are removed


def strip_markers(text: str) -> str:
    """The answer text without ``[n]`` citation markers."""
    return MARKER.sub(" ", text)


COPIED_PREFIX_CHARS = 40


def _copies_a_block(text: str, evidence: list[ScoredChunk]) -> bool:
    """Opens with a marker and then the start of an evidence block, verbatim: the prompt echoed."""
    match = re.match(r"\s*\[\d+\]\s*(.+)", text, re.DOTALL)
    if not match:
        return False
    head = " ".join(match.group(1).split())[:COPIED_PREFIX_CHARS]
    return len(head) >= COPIED_PREFIX_CHARS // 2 and any(
        " ".join(e.chunk.text.split()).startswith(head) for e in evidence
    )


def _only_markers(bare: str) -> bool:
    return not _LETTER.search(bare) and not re.search(r"\d", bare)


def _broken(bare: str) -> bool:
    visible = [c for c in bare if not c.isspace()]
    letters = sum(1 for c in visible if _LETTER.match(c) or c.isdigit())
    return bool(visible) and letters / len(visible) < MIN_LETTER_SHARE


def _repeats_question(bare: str, question: str) -> bool:
    """The question again, or (for a wh-question) an opening sentence of nothing but its words."""
    said, asked = words(bare), words(question)
    if not said:
        return False
    if said == asked or (bare.rstrip().endswith("?") and set(said) <= set(asked)):
        return True
    if _YES_NO_START.match(question):
        return False  # "X and Y are both directors" answers "Are X and Y both directors?"
    # Small models open with the question turned into a statement, then ramble: judge the opening.
    sentences = split_sentences(bare)
    opening = content_words(sentences[0].text) if sentences else set()
    return bool(opening) and not opening - content_words(question)


def degenerate_reason(text: str, question: str, evidence: list[ScoredChunk]) -> str | None:
    """Why ``text`` is not a usable answer to ``question`` from ``evidence``; None when it is one."""
    bare = strip_markers(text).strip()
    if _only_markers(bare):
        return "only citation markers" if MARKER.search(text) else "no answer text"
    if _MARKUP.search(text) or _SOURCE_LINE.search(text) or _copies_a_block(text, evidence):
        return "echoes the prompt's evidence markup"
    if _REFUSAL.search(bare):
        return "a refusal"
    if _STRUCTURED.match(bare):
        return "raw structured output, not prose"
    if _broken(bare):
        return "mostly symbols, not words"
    if _repeats_question(bare, question):
        return "repeats the question"
    return unsupported_reason(bare, question, evidence)
