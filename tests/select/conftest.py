"""Helpers for selector tests: candidate lists with realistic retriever scores."""

from __future__ import annotations

import pytest

from ragpipe.schema import Chunk, ScoredChunk


def make_candidates(n: int, *, texts: list[str] | None = None, start_score: float = 12.0) -> list[ScoredChunk]:
    """``n`` candidates in retriever order (BM25-like decreasing scores), ids c0..c{n-1}."""
    out = []
    for i in range(n):
        text = texts[i] if texts else f"Passage {i} discusses topic number {i} with some detail."
        chunk = Chunk(id=f"c{i}", doc_id=f"d{i}", position=0, text=text)
        score = start_score - 0.5 * i
        out.append(ScoredChunk(chunk=chunk, score=score, rank=i + 1, stage_scores={"bm25": score},
                               stage_ranks={"bm25": i + 1}))
    return out


@pytest.fixture
def candidates():
    return make_candidates


# Tests of a method's own mechanics switch the harm bound off; its tests live in test_harm_bound.py.
RAW = {"harm_bound": {"enabled": False}}
