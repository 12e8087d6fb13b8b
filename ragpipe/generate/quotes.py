"""Point each citation at the sentence of its chunk that the answer rests on.

A chunk is a few hundred tokens; a reader checking a claim wants the sentence. The citation keeps
the chunk's span and adds the quoted sentence with its characters in the source document.
"""

from __future__ import annotations

import re
from typing import Any

from ragpipe.generate.sentences import Sentence, content_words, split_sentences
from ragpipe.schema import Citation, ScoredChunk

_ANSWER_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+(?:\s*\[\d+\])*|$)")


def quote_citation(n: int, chunk: Any, sentence: Sentence | None) -> Citation:
    """A citation of ``chunk``, pinned to ``sentence`` (offsets in the document) when given."""
    base = chunk.start_char
    pinned = sentence is not None and base is not None
    return Citation(
        n=n, chunk_id=chunk.id, source=chunk.source, position=chunk.position,
        start_char=chunk.start_char, end_char=chunk.end_char,
        quote=sentence.text if sentence is not None else None,
        quote_start_char=base + sentence.start if pinned else None,
        quote_end_char=base + sentence.end if pinned else None,
    )


def best_sentence(claim: str, chunk_text: str) -> Sentence | None:
    """The chunk sentence sharing the most content words with ``claim`` (None when none shares any)."""
    said = content_words(claim)
    best, best_shared = None, 0
    for sentence in split_sentences(chunk_text):
        shared = len(said & content_words(sentence.text))
        if shared > best_shared:
            best, best_shared = sentence, shared
    return best


def pin_citations(text: str, citations: list[Citation], evidence: list[ScoredChunk]) -> list[Citation]:
    """Citations of a generated ``text`` pinned to the sentence each answer sentence restates."""
    chunks = {e.chunk.id: e.chunk for e in evidence}
    claims: dict[int, list[str]] = {}
    for sentence in _ANSWER_SENTENCE.findall(text):
        for n in re.findall(r"\[(\d+)\]", sentence):
            claims.setdefault(int(n), []).append(sentence)
    pinned = []
    for citation in citations:
        chunk = chunks.get(citation.chunk_id)
        claim = " ".join(claims.get(citation.n, []))
        sentence = best_sentence(claim, chunk.text) if chunk is not None and claim else None
        pinned.append(quote_citation(citation.n, chunk, sentence) if sentence is not None else citation)
    return pinned
