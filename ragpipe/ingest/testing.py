"""A deterministic, model-free embedder for tests and dry runs of the indexing logic.

Words are hashed into a fixed number of buckets (the "hashing trick"), so texts that share words
have similar vectors and retrieval tests still mean something, with no model to load.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]")


class HashingEmbedder:
    def __init__(self, dim: int = 64, max_tokens: int = 128, name: str = "test/hashing") -> None:
        self.dim = dim
        self.max_tokens = max_tokens
        self.name = name
        self.calls: list[int] = []  # how many texts each embed() call got

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORD.finditer(text)]

    def count_tokens(self, text: str) -> int:
        return len(self.token_offsets(text)) + 2

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
            out[row, 0] += 1e-3  # never an all-zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
