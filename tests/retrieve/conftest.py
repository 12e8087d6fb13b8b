"""Fixtures for retrieval tests: a tiny corpus, a word-hashing embedder, an in-memory store."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from ragpipe.retrieve.memory import MemoryStore
from ragpipe.schema import Chunk, stable_hash

# Words the fake embedder treats as the same concept, so "dense" can match what BM25 cannot.
SYNONYMS = {"automobile": "car", "vehicle": "car", "physician": "doctor", "medic": "doctor"}


class ConceptEmbedder:
    """Bag of (synonym-folded) words hashed into 64 dims, L2-normalised: a stand-in for MiniLM."""

    name = "concept-hash"
    dim = 64
    max_tokens = 256

    def __init__(self) -> None:
        self.queries: list[str] = []

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"[a-z]+", text.lower()):
            word = SYNONYMS.get(word, word)
            if len(word) < 3:
                continue
            vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm else vec

    def embed(self, texts, *, batch_size=None) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        return self._vector(text)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


# (source, [chunk texts in order], metadata)
CORPUS = [
    ("notes/cars.md", ["The automobile industry builds electric vehicles.", "Battery range of a car depends on weather."], {"lang": "en"}),
    ("notes/health.md", ["A physician examines patients every morning.", "Hospitals hire a doctor for night shifts."], {"lang": "en"}),
    ("papers/zyx.pdf", ["The ZX-81 transceiver uses protocol QZ7 for telemetry.", "Packet loss was measured under load."], {"lang": "en", "year": 2021}),
    ("papers/kochen.pdf", ["Das Rezept braucht Mehl, Zucker und Eier.", "Backen bei 180 Grad für 40 Minuten."], {"lang": "de", "year": 2019}),
]


def make_chunks(corpus=CORPUS) -> list[Chunk]:
    chunks: list[Chunk] = []
    for source, texts, meta in corpus:
        doc_id = stable_hash("doc", source)
        for position, text in enumerate(texts):
            chunks.append(
                Chunk(
                    id=Chunk.make_id(doc_id, position, text),
                    doc_id=doc_id,
                    position=position,
                    text=text,
                    source=source,
                    metadata={**meta, "file_type": source.rsplit(".", 1)[-1]},
                )
            )
    return chunks


@pytest.fixture
def embedder() -> ConceptEmbedder:
    return ConceptEmbedder()


@pytest.fixture
def store(tmp_path, embedder) -> MemoryStore:
    chunks = make_chunks()
    mem = MemoryStore(tmp_path / "index")
    mem.add(chunks, embedder.embed([c.text for c in chunks]))
    return mem
