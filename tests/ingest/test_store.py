"""The Chroma chunk store: cosine similarity, ordering, neighbours, batching, revision."""

from __future__ import annotations

import numpy as np
import pytest

from ragpipe.config import StoreSettings
from ragpipe.errors import EmbeddingMismatch, StoreError
from ragpipe.ingest.store import ChunkStore
from ragpipe.schema import Chunk


def make_chunks(doc: str, n: int) -> list[Chunk]:
    chunks = [
        Chunk(id=Chunk.make_id(doc, i, f"t{i}"), doc_id=doc, position=i, text=f"{doc} text {i}", source=f"{doc}.txt",
              start_char=i * 10, end_char=i * 10 + 9, headings=["H", f"h{i}"], metadata={"page": i + 1})
        for i in range(n)
    ]
    for a, b in zip(chunks, chunks[1:]):
        a.next_id, b.prev_id = b.id, a.id
    return chunks


def unit(rows: list[list[float]]) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path) -> ChunkStore:
    return ChunkStore.open(tmp_path / "idx", StoreSettings(), embedding_model="m", dim=3, create=True)


def test_round_trip_and_cosine_similarity(store):
    chunks = make_chunks("a", 3)
    store.upsert(chunks, unit([[1, 0, 0], [0, 1, 0], [1, 1, 0]]), embedding_model="m")
    hits = store.query(np.array([1.0, 0.0, 0.0]), k=5)
    assert [c.position for c, _ in hits] == [0, 2, 1]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert hits[1][1] == pytest.approx(np.sqrt(0.5), abs=1e-4)
    assert hits[2][1] == pytest.approx(0.0, abs=1e-5)
    back = hits[0][0]
    assert back.model_dump() == chunks[0].model_dump()  # every field survives the store
    assert store.collection.metadata["hnsw:space"] == "cosine"


def test_get_keeps_order_neighbours_and_filters(store):
    a, b = make_chunks("a", 6), make_chunks("b", 2)
    store.upsert(a + b, unit([[1, i, 0] for i in range(8)]), embedding_model="m")
    assert [c.id for c in store.get([a[3].id, "missing", a[1].id])] == [a[3].id, a[1].id]
    assert [c.position for c in store.neighbours("a", 2, 1)] == [1, 2, 3]
    assert [c.position for c in store.neighbours("a", 0, 2)] == [0, 1, 2]
    hits = store.query([1, 0, 0], k=10, where={"doc_id": "b"})
    assert {c.doc_id for c, _ in hits} == {"b"}
    assert store.count() == 8 and len(list(store.iter_chunks(batch=3))) == 8


def test_writes_are_batched_to_the_client_limit(store, monkeypatch):
    calls = []
    real = store.collection.upsert
    monkeypatch.setattr(type(store), "max_batch", property(lambda self: 4))
    monkeypatch.setattr(store.collection, "upsert", lambda **kw: (calls.append(len(kw["ids"])), real(**kw)))
    chunks = make_chunks("a", 10)
    store.upsert(chunks, unit([[1, i, 1] for i in range(10)]), embedding_model="m")
    assert calls == [4, 4, 2] and store.count() == 10


def test_upsert_is_idempotent_and_revision_tracks_changes(store):
    chunks = make_chunks("a", 3)
    assert store.revision == "empty"
    store.upsert(chunks, unit([[1, 0, 0]] * 3), embedding_model="m")
    r1 = store.revision
    store.upsert(chunks, unit([[1, 0, 0]] * 3), embedding_model="m")
    assert store.count() == 3 and store.revision != r1
    r2 = store.revision
    store.delete([chunks[0].id])
    assert store.count() == 2 and store.revision != r2
    r3 = store.revision
    store.delete([])
    assert store.revision == r3


def test_model_and_dimension_are_checked(tmp_path, store):
    with pytest.raises(EmbeddingMismatch):
        store.upsert(make_chunks("a", 1), unit([[1, 0, 0]]), embedding_model="other")
    with pytest.raises(EmbeddingMismatch):
        store.upsert(make_chunks("a", 1), np.ones((1, 5), dtype=np.float32), embedding_model="m")
    with pytest.raises(EmbeddingMismatch, match="built with embedding model 'm'"):
        ChunkStore.open(store.index_dir, StoreSettings(), embedding_model="other")
    with pytest.raises(StoreError, match="no index"):
        ChunkStore.open(tmp_path / "nothing", StoreSettings(), embedding_model="m")


def test_chroma_never_gets_an_embedding_function(store):
    """Queries and writes always carry our vectors; Chroma's default (downloading) embedder is never used."""
    ef = getattr(store.collection, "_embedding_function", None)
    assert ef is None


def test_neighbours_of_reads_every_window_in_two_store_reads(store, monkeypatch):
    a, b = make_chunks("a", 7), make_chunks("b", 3)
    store.upsert(a + b, unit([[1, i, 0] for i in range(10)]), embedding_model="m")
    reads = []
    real_get = store.collection.get
    monkeypatch.setattr(store.collection, "get", lambda **kw: (reads.append(kw), real_get(**kw))[1])
    result = store.neighbours_of([a[0], a[3], a[6], b[1]], 2)
    assert len(reads) == 2 and "$gte" not in str(reads[0]["where"])  # no range scan in Chroma
    positions = {cid: [(c.doc_id, c.position) for c in chunks] for cid, chunks in result.items()}
    assert positions == {
        a[0].id: [("a", 0), ("a", 1), ("a", 2)],
        a[3].id: [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)],
        a[6].id: [("a", 4), ("a", 5), ("a", 6)],
        b[1].id: [("b", 0), ("b", 1), ("b", 2)],
    }
    assert result[a[3].id][2].text == "a text 3" and result[a[3].id][2].headings == ["H", "h3"]
    assert [c.position for c in store.neighbours_of([a[3]], 0)[a[3].id]] == [3]
    assert store.neighbours_of([], 1) == {}


def test_neighbours_skip_deleted_chunks_and_work_without_links(store):
    a = make_chunks("a", 4)
    loose = Chunk(id="loose", doc_id="c", position=1, text="c text 1")  # no prev/next links
    sibling = Chunk(id="sib", doc_id="c", position=2, text="c text 2")
    store.upsert([*a, loose, sibling], unit([[1, i, 0] for i in range(6)]), embedding_model="m")
    store.delete([a[0].id])
    result = store.neighbours_of([a[1], loose], 1)
    assert [c.id for c in result[a[1].id]] == [a[1].id, a[2].id]
    assert [c.id for c in result["loose"]] == ["loose", "sib"]
    assert [c.id for c in store.neighbours("c", 2, 1)] == ["loose", "sib"]


def test_vectors_of_chunks_just_read_come_without_a_second_read(store, monkeypatch):
    chunks = make_chunks("a", 4)
    vectors = unit([[1, i, 0] for i in range(4)])
    store.upsert(chunks, vectors, embedding_model="m")
    assert [c.id for c in store.get([chunks[2].id, chunks[0].id])] == [chunks[2].id, chunks[0].id]
    reads = []
    monkeypatch.setattr(store, "_read_vectors", lambda ids: reads.append(ids) or {})
    assert np.allclose(store.embeddings([chunks[0].id, chunks[2].id]), vectors[[0, 2]], atol=1e-6)
    assert reads == []
    with pytest.raises(StoreError):  # a chunk not read before is still read (here: the read finds nothing)
        store.embeddings([chunks[1].id])
    assert reads == [[chunks[1].id]]


def test_a_write_makes_kept_vectors_stale(store):
    chunk = make_chunks("a", 1)
    store.upsert(chunk, unit([[1, 0, 0]]), embedding_model="m")
    store.get([chunk[0].id])
    store.upsert(chunk, unit([[0, 1, 0]]), embedding_model="m")
    assert np.allclose(store.embeddings([chunk[0].id]), [[0, 1, 0]], atol=1e-6)
