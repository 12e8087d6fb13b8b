"""An in-memory ``ChunkStore``: exact cosine search in numpy, Chroma-style ``where`` filters.

Useful where a persistent Chroma collection is overkill: unit tests, benchmarks over
pre-computed embeddings, small throw-away corpora. Implements the same interface as the Chroma
store (``query``, ``get``, ``neighbours``, ``iter_chunks``, ``count``, ``revision``, ``index_dir``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragpipe.retrieve.filters import chunk_fields, evaluate, from_dict
from ragpipe.schema import Chunk


class MemoryStore:
    """Chunks and their (L2-normalised) vectors held in memory; ``index_dir`` holds sidecars."""

    def __init__(self, index_dir: str | Path) -> None:
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._chunks: dict[str, Chunk] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._matrix: np.ndarray | None = None
        self._order: list[str] = []
        self.revision = self._revision()

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Insert or replace chunks (by id) with their embeddings."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        for chunk, vector in zip(chunks, np.asarray(vectors, dtype=np.float32)):
            norm = float(np.linalg.norm(vector)) or 1.0
            self._chunks[chunk.id] = chunk
            self._vectors[chunk.id] = vector / norm
        self._changed()

    def delete(self, ids: Sequence[str]) -> None:
        for chunk_id in ids:
            self._chunks.pop(chunk_id, None)
            self._vectors.pop(chunk_id, None)
        self._changed()

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[Chunk, float]]:
        """Top ``k`` chunks by cosine similarity among those matching ``where``."""
        if not self._order or k <= 0:
            return []
        assert self._matrix is not None
        scores = self._matrix @ np.asarray(vector, dtype=np.float32)
        candidates = np.arange(len(self._order))
        if where:
            flt = from_dict(where)
            candidates = np.array(
                [i for i in candidates if evaluate(flt, chunk_fields(self._chunks[self._order[i]]))], dtype=int
            )
            if candidates.size == 0:
                return []
        top = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
        return [(self._chunks[self._order[i]], float(scores[i])) for i in top]

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        return [self._chunks[i] for i in ids if i in self._chunks]

    def neighbours(self, doc_id: str, position: int, window: int) -> list[Chunk]:
        found = [
            c for c in self._chunks.values() if c.doc_id == doc_id and abs(c.position - position) <= window
        ]
        return sorted(found, key=lambda c: c.position)

    def iter_chunks(self) -> Iterator[Chunk]:
        return iter(list(self._chunks.values()))

    def count(self) -> int:
        return len(self._chunks)

    def _changed(self) -> None:
        self._order = list(self._chunks)
        self._matrix = np.stack([self._vectors[i] for i in self._order]) if self._order else None
        self.revision = self._revision()

    def _revision(self) -> str:
        digest = hashlib.sha256("\n".join(sorted(self._chunks)).encode()).hexdigest()
        return digest[:16]
