"""Repairs for what small models do to answers: repetition loops and missing citation markers.

Both are recorded in the trace by the generator; neither invents content. Attribution only adds
a ``[n]`` to a sentence that restates most of its words from one evidence chunk.
"""

from __future__ import annotations

import re

from ragpipe.schema import ScoredChunk

# A sentence ends at . ! ? followed by a space or the end: "server.js" and "3.14" stay whole.
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?=[^\s.!?]))+[.!?]?")
_WORD = re.compile(r"[a-z0-9]{4,}")
MIN_SHARED_WORDS = 3
MIN_SHARED_SHARE = 0.4


def drop_repeated_lines(text: str) -> tuple[str, int]:
    """Remove lines that repeat an earlier line word for word; return the text and how many went."""
    seen: set[str] = set()
    kept: list[str] = []
    dropped = 0
    for line in text.splitlines():
        key = " ".join(line.split()).lower()
        if key and key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(line)
    return "\n".join(kept).strip(), dropped


_MARKER = re.compile(r"\[\d+\]")
_SENTENCE_SPAN = re.compile(r"[^.!?]+(?:[.!?]+|$)\s*")
MIN_REPEAT_WORDS = 3  # shorter sentences ("Yes.") may legitimately recur


def _sentence_key(sentence: str) -> str:
    return " ".join(_MARKER.sub(" ", sentence).lower().split()).rstrip(".!? ")


def drop_repeated_sentences(text: str) -> tuple[str, int]:
    """Remove sentences (of 3+ words) that repeat an earlier one, citation markers aside.

    Small models fall into loops that repeat a sentence within one line, which a line-level
    check cannot see. Returns the text and how many sentences went.
    """
    seen: set[str] = set()
    lines: list[str] = []
    dropped = 0
    for line in text.splitlines():
        kept = []
        for sentence in _SENTENCE_SPAN.findall(line):
            key = _sentence_key(sentence)
            if key and len(key.split()) >= MIN_REPEAT_WORDS and key in seen:
                dropped += 1
                continue
            seen.add(key)
            kept.append(sentence)
        rebuilt = "".join(kept).rstrip()
        if rebuilt or not line.strip():
            lines.append(rebuilt)
    return "\n".join(lines).strip(), dropped


_ANSWER_LABEL = re.compile(r"^\s*(?:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*:\s*)", re.IGNORECASE)


def strip_answer_label(text: str) -> tuple[str, bool]:
    """Drop a leading "Answer:" / "The answer is:" that models copy from an answer-first prompt."""
    stripped = _ANSWER_LABEL.sub("", text, count=1)
    return stripped, stripped != text


def trim_unfinished_sentence(text: str) -> tuple[str, bool]:
    """Cut the half sentence a length-truncated answer ends with, when a whole one precedes it."""
    stripped = text.rstrip()
    if not stripped or stripped[-1] in ".!?)]\"'":
        return text, False
    end = max(stripped.rfind(mark) for mark in ".!?")
    if end <= 0:
        return text, False
    return stripped[: end + 1], True


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def attribute_citations(text: str, evidence: list[ScoredChunk]) -> tuple[str, dict[int, int]]:
    """Add ``[n]`` after sentences that share most of their words with evidence ``n``.

    Returns the new text and {sentence index: evidence number} for what was attributed.
    """
    chunk_words = [_words(e.chunk.text) for e in evidence]
    attributed: dict[int, int] = {}
    index = iter(range(1_000_000))

    def cite(match: re.Match[str]) -> str:
        i, sentence = next(index), match.group(0)
        words = _words(sentence)
        best, best_shared = 0, 0
        for n, cw in enumerate(chunk_words, start=1):
            shared = len(words & cw)
            if shared > best_shared:
                best, best_shared = n, shared
        if not best or best_shared < MIN_SHARED_WORDS or best_shared < MIN_SHARED_SHARE * len(words):
            return sentence
        attributed[i] = best
        stripped = sentence.rstrip()
        end = stripped[-1] if stripped[-1] in ".!?" else ""
        body = stripped[:-1] if end else stripped
        return f"{body} [{best}]{end}" + sentence[len(stripped):]

    rebuilt = _SENTENCE.sub(cite, text)
    return rebuilt, attributed
