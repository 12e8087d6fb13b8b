"""Does the evidence back what an answer adds to the question?

A small model's wrong answers are fluent and reuse the evidence's vocabulary, so "most of its
words occur in the evidence" lets them through. Three things give them away:

- the names and literals it states (a flag such as ``-f``, a version such as ``2.1``, a date,
  ``npm_config_foo``, ``file.json``, "the Thames") are nowhere in the evidence, though a real
  answer copies them;
- the words its first sentence (the answer, in an answer-first reply) adds to the question are
  mostly absent from the evidence, even though the question's own words are there;
- it rests on evidence that does not address the question: each of its sentences, and the
  evidence sentence that best backs it, hold under half as many of the question's words as the evidence
  sentence that best matches the question ("See package.json for more on package configs" to
  "Which environment variable gives the path to package.json?").

Words the question already holds are never held against an answer: restating the question in
a yes/no answer is fine.
"""

from __future__ import annotations

import re

from ragpipe.generate.citations import MARKER
from ragpipe.generate.extractive import candidates
from ragpipe.generate.sentences import (
    content_words,
    question_coverage,
    split_sentences,
    words,
)
from ragpipe.schema import ScoredChunk

MIN_SUPPORTED_SHARE = 0.3  # of a sentence's content words; one sentence reaching it is enough
MIN_ADDED_SHARE = 0.5  # of the words the answer adds to the question
MIN_ADDED_WORDS = 2  # fewer added words than this cannot be judged by overlap ("Yes.", "1889.")
MIN_RELEVANCE_RATIO = 0.5  # of the question coverage of the evidence's best sentence
# A literal: a token with a digit or a code character inside (``-f``, ``--save-dev``, ``v7``,
# ``2015-04-19``, ``node_modules``, ``server.js``, ``npm@2``), or inline code in backticks.
_CODE = re.compile(r"`([^`\n]{1,60})`")
_TOKEN = re.compile(r"(?<![\w@./-])(?:\d{1,3}(?:,\d{3})+(?![\d,])|-{1,2}[A-Za-z][\w=.-]*|[\w@./:=-]*(?:\d|[_@=]|[A-Za-z]{2}[./][A-Za-z]{2})[\w@./:=-]*)")
_NAME = re.compile(r"\b[A-Z][a-z][\w'’-]*")  # a capitalised word inside a sentence: a name
_SENTENCE_START = tuple(".!?:;\"“”([")
_EDGE = ".,;:!?'\")(["


def _names(text: str) -> list[str]:
    """Capitalised words that do not open a sentence ("the Thames", not "Then …")."""
    found = []
    for match in _NAME.finditer(text):
        before = text[: match.start()].rstrip()
        if before and not before.endswith(_SENTENCE_START):
            found.append(match.group(0).rstrip("'’"))
    return found


def _literals(text: str) -> list[str]:
    found = [m.group(1).strip() for m in _CODE.finditer(text)]
    rest = _CODE.sub(" ", text)
    found += [m.group(0).strip(_EDGE) for m in _TOKEN.finditer(rest)]
    found += _names(rest)
    return [f for f in found if len(f) >= 2 and any(c.isalnum() for c in f)]


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _held(literal: str, held: str, known: set[str]) -> bool:
    """``literal`` occurs in ``held`` as a whole token ("787" is not in "1787"); a plain name may
    also differ by a plural ending ("Court" for "courts")."""
    if re.search(rf"(?<![\w@.-]){re.escape(_normal(literal))}(?![\w@-])", held):
        return True
    return literal.isalpha() and words(literal)[0] in known


def missing_literal(answer: str, question: str, evidence: list[ScoredChunk]) -> str | None:
    """The first literal of ``answer`` that neither the question nor the evidence holds."""
    text = question + "\n" + "\n".join(e.chunk.text for e in evidence)
    held, known = _normal(text), set(words(text))
    for literal in _literals(MARKER.sub(" ", answer)):
        if not _held(literal, held, known):
            return literal
    return None


def added_words(answer: str, question: str) -> set[str]:
    """The content words of ``answer`` that ``question`` does not hold: where the answer's claim is."""
    return content_words(MARKER.sub(" ", answer)) - content_words(question)


def _off_topic(answer: str, known: set[str]) -> bool:
    """No sentence of the answer is made mostly of words the evidence holds."""
    for sentence in split_sentences(MARKER.sub(" ", answer)):
        said = content_words(sentence.text)
        if len(said) < 2 or len(said & known) / len(said) >= MIN_SUPPORTED_SHARE:
            return False
    return True


def off_question(sentence: str, question: str, evidence: list[ScoredChunk]) -> bool:
    """``sentence`` and the evidence sentence backing it address the question far less than the
    evidence's best sentence does: the answer is about something else the evidence says."""
    asked = content_words(question)
    said = content_words(sentence)
    pool = [c.sentence.text for c in candidates(evidence)]
    if len(said) < MIN_ADDED_WORDS or not asked or not pool:
        return False
    best = max(question_coverage(question, text) for text in pool)
    backing = max(pool, key=lambda text: len(said & content_words(text)))
    return max(question_coverage(question, sentence), question_coverage(question, backing)) < MIN_RELEVANCE_RATIO * best


def unsupported_reason(answer: str, question: str, evidence: list[ScoredChunk]) -> str | None:
    """Why the evidence does not back ``answer``; None when it does (or cannot be judged by words)."""
    known = set().union(*(content_words(e.chunk.text) for e in evidence)) if evidence else set()
    if _off_topic(answer, known):
        return "shares almost no words with the evidence"
    literal = missing_literal(answer, question, evidence)
    if literal is not None:
        return f"states '{literal}', which the evidence does not hold"
    sentences = split_sentences(MARKER.sub(" ", answer))
    added = added_words(sentences[0].text, question) if sentences else set()
    if len(added) >= MIN_ADDED_WORDS and len(added & known) / len(added) < MIN_ADDED_SHARE:
        return "what it adds to the question is not in the evidence"
    if sentences and all(off_question(s.text, question, evidence) for s in sentences):
        return "rests on evidence about something other than the question"
    return None
