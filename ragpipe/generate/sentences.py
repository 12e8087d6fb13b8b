"""Sentences with their character offsets, and the content words used to compare texts.

Shared by the extractive answerer (which quotes evidence sentences), the degenerate-answer check
(which asks whether an answer says anything the evidence holds) and citation pinning (which
points each citation at the sentence it rests on).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# A sentence ends at . ! ? followed by space (not inside "e.g. x" or "3.5") or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9`])|\n\s*\n|\n(?=\s*[-*•#]|\s*\d+\.\s)")
_ABBREVIATION = re.compile(r"\b(e\.g|i\.e|etc|vs|Mr|Mrs|Dr|St|No|approx|cf|Fig)\.$", re.IGNORECASE)
_INITIAL = re.compile(r"(?:^|[\s.(])[A-Z]\.$")  # "Roderick A." or "J. R. R.": a name goes on
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours also use used using may
    might must shall one ones get gets got does did""".split()
)


@dataclass(frozen=True)
class Sentence:
    """A sentence of a text and where it is: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of ``text`` with offsets; blank lines and list items also end a sentence."""
    sentences: list[Sentence] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start : match.start()]
        if _ABBREVIATION.search(piece.rstrip("\"')]")) or _INITIAL.search(piece):
            continue
        _add(sentences, text, start, match.start())
        start = match.end()
    _add(sentences, text, start, len(text))
    return sentences


HEADING_WORDS = 6  # a line this short without end punctuation is a heading or label, not part of a sentence


def _add(sentences: list[Sentence], text: str, start: int, end: int) -> None:
    """Add text[start:end], first splitting off heading-like lines ("Default: notice", "loglevel")."""
    pending = start  # where the text not yet added begins
    line_start = start
    for match in re.finditer(r"\n", text[start:end]):
        line_end = start + match.start()
        line = text[line_start:line_end].strip()
        if line and len(line.split()) <= HEADING_WORDS and line[-1] not in ".!?,;:":
            _add_span(sentences, text, pending, line_start)
            _add_span(sentences, text, line_start, line_end)
            pending = line_end + 1
        line_start = line_end + 1
    _add_span(sentences, text, pending, end)


def _add_span(sentences: list[Sentence], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    trail = len(piece.rstrip())
    if trail > lead:
        sentences.append(Sentence(text=piece[lead:trail], start=start + lead, end=start + trail))


def _stem(word: str) -> str:
    """A light stem so "loops"/"loop" and "directors"/"director" meet; no dictionary needed."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _tokens(text: str) -> list[str]:
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def words(text: str) -> list[str]:
    """Lower-cased, lightly stemmed word tokens (stopwords kept)."""
    return [_stem(w) for w in _tokens(text)]


@functools.lru_cache(maxsize=2048)
def content_words(text: str) -> frozenset[str]:
    """The words that carry meaning: no stopwords, no one-letter tokens except digits.

    Stopwords are dropped before stemming: stemmed, "does" and "this" would pass as "doe" and "thi".
    Kept per text: one answer's checks ask for the same question's and sentences' words dozens of times.
    """
    return frozenset({_stem(w) for w in _tokens(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())})


def question_coverage(question: str, text: str) -> float:
    """Share of the question's content words that ``text`` holds: how far it addresses the question."""
    asked = content_words(question)
    return len(asked & content_words(text)) / len(asked) if asked else 0.0
