"""Retrieval over a real indexed folder (Chroma store, BM25 sidecar) with a model-free embedder."""

from __future__ import annotations

import numpy as np
import pytest

from ragpipe.config import load_settings
from ragpipe.ingest.indexer import index_folder
from ragpipe.ingest.store import ChunkStore
from ragpipe.ingest.testing import HashingEmbedder
from ragpipe.retrieve import Retriever

FILES = {
    "guide/install.md": "# Install\n\nRun pip install ragpipe to install the package on Linux.",
    "guide/usage.md": "# Usage\n\nAsk a question with ragpipe ask and read the cited answer.",
    "notes/zeta.txt": "The zeta protocol QX9 encrypts telemetry packets end to end.",
    "notes/birds.txt": "Kingfishers dive for fish in clear streams.",
}


@pytest.fixture
def indexed(tmp_path):
    docs = tmp_path / "docs"
    for rel, text in FILES.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    settings = load_settings(store__path=str(tmp_path / "index"), store__collection=f"t{abs(hash(tmp_path)) % 10**8}")
    embedder = HashingEmbedder()
    index_folder(docs, settings, embedder=embedder)
    store = ChunkStore.open(tmp_path / "index", settings.store, embedding_model=embedder.name)
    return docs, settings, embedder, store


def sources(results) -> set[str]:
    return {r.chunk.source.rsplit("docs/", 1)[-1] for r in results}


async def test_indexer_leaves_a_current_bm25_index_and_hybrid_finds_exact_terms(indexed):
    _docs, settings, embedder, store = indexed
    assert (store.index_dir / "bm25" / "CURRENT").is_file()
    retriever = Retriever(store, embedder, settings.retrieval)
    results = await retriever.aretrieve("QX9 telemetry", k=3)
    assert sources(results[:1]) == {"notes/zeta.txt"}
    assert results[0].stage_ranks["bm25"] == 1 and "dense" in results[0].stage_ranks


async def test_filters_against_chroma_metadata(indexed):
    _docs, settings, embedder, store = indexed
    retriever = Retriever(store, embedder, settings.retrieval)
    question = "ragpipe install ask telemetry kingfishers"
    md = await retriever.aretrieve(question, k=10, filters="file_type=md")  # pushed down to Chroma
    assert sources(md) == {"guide/install.md", "guide/usage.md"}
    globbed = await retriever.aretrieve(question, k=10, filters="source~=*notes/*")  # post-filtered
    assert sources(globbed) == {"notes/zeta.txt", "notes/birds.txt"}
    either = await retriever.aretrieve(question, k=10, filters="file_type=txt || source~=*install*")
    assert sources(either) == {"notes/zeta.txt", "notes/birds.txt", "guide/install.md"}
    for mode in ("dense", "bm25"):
        only = await retriever.aretrieve(question, k=10, filters=["file_type=md", "source~=*usage*"], mode=mode)
        assert sources(only) == {"guide/usage.md"}


async def test_reindexing_a_changed_folder_updates_bm25(indexed):
    docs, settings, embedder, store = indexed
    retriever = Retriever(store, embedder, settings.retrieval)
    assert await retriever.aretrieve("axolotl", k=2, mode="bm25") == []
    (docs / "notes" / "new.txt").write_text("An axolotl regrows its limbs.")
    (docs / "notes" / "birds.txt").unlink()
    index_folder(docs, settings, embedder=embedder)
    found = await retriever.aretrieve("axolotl kingfishers", k=5, mode="bm25")
    assert sources(found) == {"notes/new.txt"}


async def test_fusing_by_id_returns_what_fusing_whole_chunks_does(indexed, monkeypatch):
    _docs, settings, embedder, store = indexed
    retriever = Retriever(store, embedder, settings.retrieval)
    reads: list[int] = []
    get = store.get
    monkeypatch.setattr(store, "get", lambda ids: reads.append(len(ids)) or get(ids))
    question = "ragpipe install ask telemetry kingfishers"
    by_id = await retriever.aretrieve(question, k=2)
    assert reads == [2]  # only the winners' texts are read
    monkeypatch.setattr(Retriever, "_can_fuse_by_id", lambda self, flt: False)
    whole = await retriever.aretrieve(question, k=2)
    assert [(r.id, r.score, r.stage_scores, r.stage_ranks) for r in by_id] == \
        [(r.id, r.score, r.stage_scores, r.stage_ranks) for r in whole]


async def test_ids_the_store_lost_are_skipped_for_the_next_ones(indexed, monkeypatch):
    _docs, settings, embedder, store = indexed
    retriever = Retriever(store, embedder, settings.retrieval)
    full = await retriever.aretrieve("ragpipe install ask telemetry kingfishers", k=4)
    lost = full[0].id
    get = store.get
    monkeypatch.setattr(store, "get", lambda ids: [c for c in get(ids) if c.id != lost])
    fresh = Retriever(store, embedder, settings.retrieval)  # no chunks cached from the first query
    results = await fresh.aretrieve("ragpipe install ask telemetry kingfishers", k=3)
    assert [r.id for r in results] == [r.id for r in full[1:4]]
    assert [r.rank for r in results] == [1, 2, 3]


async def test_chunk_texts_are_read_once_per_store_revision(indexed, monkeypatch):
    _docs, settings, embedder, store = indexed
    retriever = Retriever(store, embedder, settings.retrieval)
    asked: list[list[str]] = []
    get = store.get
    monkeypatch.setattr(store, "get", lambda ids: asked.append(list(ids)) or get(ids))
    first = await retriever.aretrieve("ragpipe install ask telemetry kingfishers", k=3)
    again = await retriever.aretrieve("ragpipe install ask telemetry kingfishers", k=3)
    assert [r.id for r in again] == [r.id for r in first]
    assert [r.chunk.text for r in again] == [r.chunk.text for r in first]
    assert len(asked) == 1  # the second query read nothing from the store
    monkeypatch.setattr(type(store), "revision", property(lambda self: "changed"))
    await retriever.aretrieve("ragpipe install ask telemetry kingfishers", k=3)
    assert len(asked) == 2  # a new revision drops the cached chunks


def test_stored_vectors_and_the_count_are_read_once_per_store_revision(indexed, monkeypatch):
    docs, settings, embedder, store = indexed
    ids = [c.id for c in store.iter_chunks()][:3]
    uncached = store.collection.get(ids=ids, include=["embeddings"])
    reads: list[list[str]] = []
    read = store._read_vectors
    monkeypatch.setattr(store, "_read_vectors", lambda wanted: reads.append(list(wanted)) or read(wanted))
    counts: list[int] = []
    count = store.count
    monkeypatch.setattr(store, "count", lambda: counts.append(1) or count())
    vectors = store.embeddings(ids)
    assert np.allclose(vectors, np.asarray(uncached["embeddings"], dtype=np.float32)[
        [uncached["ids"].index(i) for i in ids]])
    assert np.array_equal(store.embeddings(ids[:2]), vectors[:2])  # a verifier reading the selector's chunks
    assert reads == [ids]
    vector = embedder.embed_query("telemetry")
    store.query_ids(vector, 2)
    store.query_ids(vector, 2)
    assert len(counts) == 1
    (docs / "notes" / "new.txt").write_text("An axolotl regrows its limbs.")
    index_folder(docs, settings, embedder=embedder)  # a write changes the revision
    store.embeddings(ids[:1])
    store.query_ids(vector, 2)
    assert reads[-1] == ids[:1] and len(counts) == 2
