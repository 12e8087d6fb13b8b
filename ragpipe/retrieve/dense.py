"""Dense retrieval: embed the question, ask the vector store, post-filter what it cannot."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Collection, Sequence
from typing import Any, Protocol

import numpy as np

from ragpipe.retrieve.filters import Filter, is_fully_pushed_down, matches, to_chroma_where
from ragpipe.schema import Chunk

# When part of a filter must be checked after the query, fetch this many times ``k`` (and widen
# by the same factor) so that ``k`` chunks usually survive the first round.
_OVERFETCH = 4


class _Embedder(Protocol):
    def embed_query(self, text: str) -> np.ndarray: ...


class _Store(Protocol):
    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[Chunk, float]]: ...

    def count(self) -> int: ...


def stored_keys(store: Any) -> Collection[str] | None:
    """Metadata keys the store can filter on natively, when it says (``None``: assume any)."""
    keys = getattr(store, "metadata_keys", None)
    return set(keys) if keys is not None else None


def dense_search(
    store: _Store, vector: np.ndarray, k: int, flt: Filter | None = None
) -> list[tuple[Chunk, float]]:
    """Top ``k`` chunks by cosine similarity that pass ``flt``.

    The Chroma-expressible part of the filter is pushed down; when something is left (globs,
    substrings, derived fields) the query over-fetches and widens until ``k`` chunks pass or the
    store is exhausted.
    """
    if k <= 0:
        return []
    keys = stored_keys(store)
    where = to_chroma_where(flt, keys)
    if is_fully_pushed_down(flt, keys):
        return list(store.query(vector, k, where))
    total = max(store.count(), 1)
    fetch = min(k * _OVERFETCH, total)
    while True:
        hits = store.query(vector, fetch, where)
        kept = [(chunk, score) for chunk, score in hits if matches(flt, chunk)]
        if len(kept) >= k or fetch >= total or len(hits) < fetch:
            return kept[:k]
        fetch = min(fetch * _OVERFETCH, total)


def embed_question(embedder: _Embedder, question: str) -> np.ndarray:
    """The question's vector, embedded once per embedder: retrieval and the selector share it."""
    return _QUESTION_VECTORS.get(embedder, question)


class QuestionVectors:
    """The last ``size`` questions' vectors per embedder (a question is embedded in milliseconds)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._by_embedder: weakref.WeakKeyDictionary[Any, OrderedDict[str, np.ndarray]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, embedder: _Embedder, question: str) -> np.ndarray:
        try:
            with self._lock:
                known = self._by_embedder.setdefault(embedder, OrderedDict())
                vector = known.get(question)
                if vector is not None:
                    known.move_to_end(question)
                    return vector
        except TypeError:  # an embedder that cannot be weakly referenced: embed every time
            return np.asarray(embedder.embed_query(question), dtype=np.float32)
        vector = np.asarray(embedder.embed_query(question), dtype=np.float32)
        vector.setflags(write=False)  # shared between callers
        with self._lock:
            known[question] = vector
            while len(known) > self.size:
                known.popitem(last=False)
        return vector


_QUESTION_VECTORS = QuestionVectors()


def as_ranking(hits: Sequence[tuple[Chunk, float]]) -> list[tuple[str, float]]:
    return [(chunk.id, float(score)) for chunk, score in hits]
