"""Vectors for chunks and texts at query time, without re-embedding what the index already holds.

Selectors and the verifier compare chunks by embedding. The store keeps every chunk's vector,
so reading them back is cheaper than encoding the texts again; embedding (of rationales, or of
chunks a store cannot give back) runs in a worker thread so a busy event loop keeps serving
other queries meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragpipe.concurrency import run_blocking
from ragpipe.schema import ScoredChunk


@dataclass
class ChunkVectors:
    """Vectors in the order asked, where they came from, and how long that took."""

    vectors: np.ndarray
    source: str  # "stored" or "embedded"
    seconds: float
    note: str | None = None  # why stored vectors could not be used


async def embed_texts(embedder: Any, texts: Sequence[str]) -> np.ndarray:
    """``embedder.embed(texts)`` off the event loop, as float32."""
    vectors = await run_blocking(embedder.embed, list(texts))
    return np.asarray(vectors, dtype=np.float32)


async def chunk_vectors(chunks: Sequence[ScoredChunk], embedder: Any, store: Any | None) -> ChunkVectors:
    """Stored vectors of ``chunks`` when ``store`` has them all, else their texts embedded."""
    start = time.perf_counter()
    note = None
    fetch = getattr(store, "embeddings", None) if store is not None else None
    if callable(fetch):
        try:
            vectors = np.asarray(await run_blocking(fetch, [c.id for c in chunks]), dtype=np.float32)
            if vectors.shape[0] == len(chunks):
                return ChunkVectors(vectors, "stored", time.perf_counter() - start)
            note = f"the store returned {vectors.shape[0]} of {len(chunks)} vectors"
        except Exception as err:  # a chunk the store lacks (or a store error): embed the texts instead
            note = f"stored embeddings unavailable: {err}"
    vectors = await embed_texts(embedder, [c.chunk.text for c in chunks])
    return ChunkVectors(vectors, "embedded", time.perf_counter() - start, note)
