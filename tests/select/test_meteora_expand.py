"""Neighbour expansion against a real (embedded) Chroma index built in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragpipe.config import StoreSettings
from ragpipe.schema import Chunk, ScoredChunk
from ragpipe.select.expand import EXPANDED, expand_neighbours


def make_chunks(doc_id: str, n: int) -> list[Chunk]:
    return [Chunk(id=f"{doc_id}-{p}", doc_id=doc_id, position=p, text=f"{doc_id} part {p}", source=f"{doc_id}.txt")
            for p in range(n)]


@pytest.fixture
def store(tmp_path: Path):
    from ragpipe.ingest.store import ChunkStore

    chunks = make_chunks("alpha", 5) + make_chunks("beta", 3)
    vectors = np.random.default_rng(0).normal(size=(len(chunks), 4)).astype(np.float32)
    opened = ChunkStore.open(tmp_path / "index", StoreSettings(collection="expand_test"),
                             embedding_model="fake-4d", dim=4, create=True)
    opened.upsert(chunks, vectors, embedding_model="fake-4d")
    return opened


def scored(chunk: Chunk, score: float) -> ScoredChunk:
    return ScoredChunk(chunk=chunk, score=score, stage_scores={"meteora": score})


def test_neighbours_come_from_the_document_not_the_candidate_list(store) -> None:
    alpha, beta = make_chunks("alpha", 5), make_chunks("beta", 3)
    selected = [scored(alpha[2], 0.9), scored(beta[0], 0.8), scored(alpha[3], 0.7)]
    expanded, trace = expand_neighbours(selected, store, window=1)
    assert [c.id for c in expanded[:3]] == ["alpha-2", "beta-0", "alpha-3"]  # selected first, unchanged
    added = {c.id: c for c in expanded[3:]}
    assert set(added) == {"alpha-1", "beta-1", "alpha-4"}  # alpha-3 is not added twice
    assert added["alpha-1"].score == pytest.approx(0.9 - 1e-3)
    assert added["beta-1"].score == pytest.approx(0.8 - 1e-3)
    assert added["alpha-4"].chunk.metadata["expanded_from"] == "alpha-3"
    assert all(c.stage_scores[EXPANDED] == 1.0 for c in added.values())
    assert added["alpha-1"].chunk.text == "alpha part 1"  # real text from the store
    assert trace[0].kind == "expansion" and len(trace[0].data["added"]) == 3


def test_window_two_and_zero(store) -> None:
    beta = make_chunks("beta", 3)
    wide, _ = expand_neighbours([scored(beta[0], 0.5)], store, window=2)
    assert [c.id for c in wide] == ["beta-0", "beta-1", "beta-2"]
    assert wide[2].score == pytest.approx(0.5 - 2e-3)
    same, trace = expand_neighbours([scored(beta[0], 0.5)], store, window=0)
    assert [c.id for c in same] == ["beta-0"] and trace == []


def test_no_store_or_failing_store_keeps_the_selection() -> None:
    chunk = scored(make_chunks("gamma", 1)[0], 0.4)
    kept, trace = expand_neighbours([chunk], None)
    assert kept == [chunk] and "skipped" in trace[0].message

    class Broken:
        def neighbours(self, doc_id: str, position: int, window: int) -> list[Chunk]:
            raise RuntimeError("collection gone")

    kept, trace = expand_neighbours([chunk], Broken())
    assert kept == [chunk] and trace[-1].kind == "fallback" and "collection gone" in trace[-1].data["failures"][0]


def test_store_serves_stored_embeddings_to_the_selector(store) -> None:
    from ragpipe.errors import StoreError

    vectors = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    got = store.embeddings(["beta-1", "alpha-0"])
    assert np.allclose(got, vectors[[6, 0]], atol=1e-5)
    with pytest.raises(StoreError):
        store.embeddings(["nope"])


def test_all_parents_are_expanded_in_one_batched_lookup(tmp_path: Path, monkeypatch) -> None:
    from ragpipe.ingest.store import ChunkStore

    alpha, beta = make_chunks("alpha", 5), make_chunks("beta", 3)
    opened = ChunkStore.open(tmp_path / "index", StoreSettings(collection="batched_test"),
                             embedding_model="fake-4d", dim=4, create=True)
    opened.upsert(alpha + beta, np.eye(8, 4, dtype=np.float32) + 0.1, embedding_model="fake-4d")
    gets = []
    real_get = opened.get
    monkeypatch.setattr(opened, "get", lambda ids: (gets.append(list(ids)), real_get(ids))[1])
    monkeypatch.setattr(opened, "neighbours", lambda *a: pytest.fail("asked per chunk instead of once for all"))
    selected = [scored(alpha[2], 0.9), scored(beta[0], 0.8), scored(alpha[3], 0.7)]
    expanded, trace = expand_neighbours(selected, opened, window=1)
    assert {c.id for c in expanded[3:]} == {"alpha-1", "beta-1", "alpha-4"}
    assert len(gets) == 1 and trace[0].kind == "expansion" and len(trace) == 1


def test_a_failing_batched_lookup_falls_back_to_asking_per_chunk(store, monkeypatch) -> None:
    def broken(chunks, window):
        raise RuntimeError("id lookup failed")

    monkeypatch.setattr(store, "neighbours_of", broken)
    alpha = make_chunks("alpha", 5)
    expanded, trace = expand_neighbours([scored(alpha[2], 0.9)], store, window=1)
    assert {c.id for c in expanded[1:]} == {"alpha-1", "alpha-3"} and len(trace) == 1
