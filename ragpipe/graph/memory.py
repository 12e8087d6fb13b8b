"""A retriever over an in-memory list of chunks: for examples, notebooks and offline tests.

It scores by word overlap with the question, so it needs no embedder or store, yet it speaks
the same interface as ``ragpipe.retrieve.Retriever`` (``aretrieve``/``retrieve``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ragpipe.schema import Chunk, ScoredChunk

_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


class InMemoryRetriever:
    """Ranks ``chunks`` by the share of question words they contain (ties keep list order)."""

    def __init__(self, chunks: Sequence[Chunk], top_k: int = 10) -> None:
        self.chunks = list(chunks)
        self.top_k = top_k
        self._words = [_words(c.text) for c in self.chunks]

    async def aretrieve(self, question: str, k: int | None = None, filters: Any = None, mode: str | None = None) -> list[ScoredChunk]:
        return self.retrieve(question, k=k, filters=filters, mode=mode)

    def retrieve(self, question: str, k: int | None = None, filters: Any = None, mode: str | None = None) -> list[ScoredChunk]:
        asked = _words(question)
        flt = None
        if filters:
            from ragpipe.retrieve.filters import parse_filter

            flt = parse_filter(filters)
        scored = []
        for chunk, words in zip(self.chunks, self._words):
            if flt is not None:
                from ragpipe.retrieve.filters import matches

                if not matches(flt, chunk):
                    continue
            scored.append((len(asked & words) / max(1, len(asked)), chunk))
        scored.sort(key=lambda sc: -sc[0])
        top = scored[: k or self.top_k]
        return [
            ScoredChunk(chunk=chunk, score=score, rank=rank, stage_scores={"keyword": score}, stage_ranks={"keyword": rank})
            for rank, (score, chunk) in enumerate(top, start=1)
        ]
