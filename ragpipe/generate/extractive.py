"""The extractive answer: the evidence sentences that best answer the question, quoted and cited.

No LLM: sentences of the kept chunks are scored by the question words they contain (weighted by
how rare each word is among the candidates) and, when the pipeline has an embedder, by embedding
similarity to the question (one batch call for the question and all candidates). Each quoted
sentence carries its citation, pinned to the sentence's characters in the source document.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragpipe.generate.quotes import quote_citation
from ragpipe.generate.sentences import Sentence, content_words, split_sentences
from ragpipe.retrieve.dense import embed_question
from ragpipe.schema import Citation, ScoredChunk

MAX_CHUNKS = 8  # the head of the evidence ranking; later chunks rarely hold the answer
MIN_WORDS, MAX_CHARS = 3, 400
SECOND_SENTENCE_SHARE = 0.85  # a second quote (from another chunk) must score this close to the best
LEXICAL_WEIGHT, DENSE_WEIGHT, RANK_WEIGHT = 0.5, 0.5, 0.1
_PRONOUN_START = re.compile(r"^(it|its|this|that|these|those|they|their|he|his|she|her)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Candidate:
    """An evidence sentence: which chunk (0-based evidence index) and where in its text."""

    evidence_index: int
    sentence: Sentence
    score: float = 0.0


@dataclass
class Extraction:
    """The quoted answer text, its citations, and the scored sentences behind them."""

    text: str
    citations: list[Citation]
    quoted: list[Candidate]


def _with_antecedent(text: str, sentences: list[Sentence], k: int) -> Sentence:
    """Sentence ``k``, joined to the one before when it opens with a pronoun ("It is executed…") or is a
    fragment too short to stand alone (``Default: "notice"`` under the heading ``loglevel``)."""
    sentence = sentences[k]
    if k == 0 or not (_PRONOUN_START.match(sentence.text) or len(sentence.text.split()) < MIN_WORDS):
        return sentence
    start = sentences[k - 1].start
    return Sentence(text=text[start : sentence.end], start=start, end=sentence.end)


def candidates(evidence: list[ScoredChunk]) -> list[Candidate]:
    """The sentences worth quoting: of real length, from the head of the evidence."""
    found = []
    for i, item in enumerate(evidence[:MAX_CHUNKS]):
        text = item.chunk.text
        sentences = split_sentences(text)
        for k in range(len(sentences)):
            sentence = _with_antecedent(text, sentences, k)
            if len(sentence.text) <= MAX_CHARS and len(sentence.text.split()) >= MIN_WORDS:
                found.append(Candidate(i, sentence))
    return found


def _lexical(question: str, pool: list[Candidate]) -> list[float]:
    """Share of the question's word weight (idf over the candidates) each sentence contains."""
    asked = content_words(question)
    bags = [content_words(c.sentence.text) for c in pool]
    idf = {w: math.log(1 + len(pool) / (1 + sum(w in bag for bag in bags))) for w in asked}
    total = sum(idf.values()) or 1.0
    return [sum(idf[w] for w in asked & bag) / total for bag in bags]


def _dense(question: str, pool: list[Candidate], embedder: Any) -> list[float]:
    """Cosine of each sentence to the question, embedded as a query (the vector retrieval already made)."""
    asked = np.asarray(embed_question(embedder, question), dtype=np.float32)
    vectors = np.asarray(embedder.embed([c.sentence.text for c in pool]), dtype=np.float32)
    vectors = np.vstack([asked, vectors])
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    return [float(s) for s in vectors[1:] @ vectors[0]]


def _novelty(question: str, sentence: str) -> float:
    """1 when the sentence adds words the question lacks; low when it only restates the question."""
    said = content_words(sentence)
    return 1.0 if said - content_words(question) else 0.5


def rank_sentences(question: str, evidence: list[ScoredChunk], embedder: Any = None) -> list[Candidate]:
    """Candidate sentences, best answer first."""
    pool = candidates(evidence)
    if not pool:
        return []
    lexical = _lexical(question, pool)
    dense = _dense(question, pool, embedder) if embedder is not None else None
    scored = []
    for k, cand in enumerate(pool):
        score = LEXICAL_WEIGHT * lexical[k] + (DENSE_WEIGHT * dense[k] if dense is not None else 0.0)
        score += RANK_WEIGHT / (1 + cand.evidence_index)
        scored.append(Candidate(cand.evidence_index, cand.sentence, score * _novelty(question, cand.sentence.text)))
    return sorted(scored, key=lambda c: -c.score)


def extract_answer(question: str, evidence: list[ScoredChunk], embedder: Any = None) -> Extraction | None:
    """The best sentence, quoted with its citation; a second one when it is close and adds more.

    The second quote (for two-part questions) must come from another chunk, score within
    ``SECOND_SENTENCE_SHARE`` of the best, and hold question words the best one lacks.
    """
    ranked = rank_sentences(question, evidence, embedder)
    if not ranked:
        return None
    best = ranked[0]
    asked = content_words(question)
    missing = asked - content_words(best.sentence.text)
    quoted = [best]
    for cand in ranked[1:]:
        if cand.score < SECOND_SENTENCE_SHARE * best.score:
            break
        if cand.evidence_index != best.evidence_index and missing & content_words(cand.sentence.text):
            quoted.append(cand)
            break
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    parts = []
    for cand in quoted:
        n = numbers.setdefault(cand.evidence_index, len(numbers) + 1)
        if len(citations) < len(numbers):
            citations.append(quote_citation(n, evidence[cand.evidence_index].chunk, cand.sentence))
        parts.append(f"\u201c{cand.sentence.text}\u201d [{n}]")
    return Extraction(text=" ".join(parts), citations=citations, quoted=quoted)
