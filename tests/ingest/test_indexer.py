"""Incremental indexing: add/update/delete, nothing re-embedded when nothing changed, clear errors."""

from __future__ import annotations

import os
import time

import pytest

from ragpipe.errors import EmbeddingMismatch, StoreError, StoreLocked
from ragpipe.ingest import index_documents, index_folder, open_index
from ragpipe.ingest.loaders.adapters import from_langchain
from ragpipe.ingest.manifest import Manifest
from ragpipe.ingest.store import ChunkStore, writer_lock
from ragpipe.ingest.testing import HashingEmbedder
from tests.ingest.fixtures import write_corpus


def open_store(report, settings, embedder) -> ChunkStore:
    return ChunkStore.open(report.index_dir, settings.store, embedding_model=embedder.name)


def snapshot(store: ChunkStore) -> dict[str, tuple[str, int, str]]:
    return {c.id: (c.source, c.position, c.text) for c in store.iter_chunks()}


def test_first_run_indexes_everything_with_metadata(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs")
    events = []
    report = index_folder(docs, settings, embedder=embedder, progress=events.append, group_chunks=5)
    assert sorted(report.added) == [f"doc{i:02d}.txt" for i in range(6)]
    assert report.chunks_added == report.embedded == report.chunks_total > 6
    store = open_store(report, settings, embedder)
    assert store.count() == report.chunks_added
    chunks = list(store.iter_chunks())
    by_doc: dict[str, list] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.source, []).append(chunk)
        text = (docs / chunk.source).read_text()
        assert text[chunk.start_char : chunk.end_char] == chunk.text
        assert chunk.metadata["file_type"] == "txt"
    for doc_chunks in by_doc.values():
        doc_chunks.sort(key=lambda c: c.position)
        assert [c.prev_id for c in doc_chunks[1:]] == [c.id for c in doc_chunks[:-1]]
    phases = [e.phase for e in events]
    assert phases[0] == "scan" and phases[-1] == "done"
    assert {"parse", "embed", "write"} <= set(phases)
    writes = [e for e in events if e.phase == "write"]
    assert writes[-1].done == writes[-1].total == 6 and len(writes) > 1


def test_unchanged_folder_embeds_nothing(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs")
    first = index_folder(docs, settings, embedder=embedder)
    revision = open_store(first, settings, embedder).revision
    embedder.calls.clear()
    again = index_folder(docs, settings, embedder=embedder)
    assert embedder.calls == []
    assert (again.added, again.updated, again.removed, again.unchanged) == ([], [], [], 6)
    assert open_store(again, settings, embedder).revision == revision
    # A touched file (same bytes, new mtime) is hashed, found identical and still not embedded.
    os.utime(docs / "doc01.txt", (time.time() + 5, time.time() + 5))
    touched = index_folder(docs, settings, embedder=embedder)
    assert embedder.calls == [] and touched.unchanged == 6


def test_add_update_delete(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs")
    first = index_folder(docs, settings, embedder=embedder)
    store = open_store(first, settings, embedder)
    before = snapshot(store)
    (docs / "doc00.txt").write_text("A completely new text about penguins. " * 3)
    (docs / "doc05.txt").unlink()
    (docs / "new.md").write_text("# New\n\nFresh content on lighthouses.")
    embedder.calls.clear()
    report = index_folder(docs, settings, embedder=embedder)
    assert report.added == ["new.md"] and report.updated == ["doc00.txt"] and report.removed == ["doc05.txt"]
    assert sum(embedder.calls) == report.embedded  # only the changed and new files were embedded
    after = snapshot(store)
    sources = {src for src, _, _ in after.values()}
    assert "doc05.txt" not in sources and "new.md" in sources
    assert all("penguins" in text for src, _, text in after.values() if src == "doc00.txt")
    kept = {k: v for k, v in before.items() if v[0] not in ("doc00.txt", "doc05.txt")}
    assert kept.items() <= after.items()  # untouched files keep their chunks and ids
    manifest = Manifest(first.index_dir)
    owned = {i for e in manifest.entries().values() for i in e.chunk_ids}
    manifest.close()
    assert owned == set(after)  # no orphans, nothing missing


def test_bad_files_are_listed_and_not_retried_until_changed(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs", n_files=2)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (docs / "empty.md").write_text("")
    first = index_folder(docs, settings, embedder=embedder)
    assert {s.path for s in first.skipped} == {"broken.pdf", "empty.md"}
    assert len(first.added) == 2
    embedder.calls.clear()
    again = index_folder(docs, settings, embedder=embedder)
    assert {s.path for s in again.skipped} == {"broken.pdf", "empty.md"}
    assert embedder.calls == [] and not again.changed
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 still broken but different")
    third = index_folder(docs, settings, embedder=embedder)
    assert any(s.path == "broken.pdf" and "unchanged since" not in s.reason for s in third.skipped)


def test_file_that_becomes_unreadable_loses_its_chunks(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs", n_files=2)
    first = index_folder(docs, settings, embedder=embedder)
    (docs / "doc01.txt").write_bytes(b"\xff\xfe\x00binary now")
    report = index_folder(docs, settings, embedder=embedder)
    assert [s.path for s in report.skipped] == ["doc01.txt"]
    assert {c.source for c in open_store(first, settings, embedder).iter_chunks()} == {"doc00.txt"}


def test_dry_run_writes_nothing(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs", n_files=3)
    report = index_folder(docs, settings, embedder=embedder, dry_run=True)
    assert report.dry_run and sorted(report.added) == ["doc00.txt", "doc01.txt", "doc02.txt"]
    assert embedder.calls == [] and not (docs / ".ragpipe").exists()
    index_folder(docs, settings, embedder=embedder)
    (docs / "doc02.txt").unlink()
    plan = index_folder(docs, settings, embedder=embedder, dry_run=True)
    assert plan.removed == ["doc02.txt"] and plan.unchanged == 2
    assert {c.source for c in open_store(plan, settings, embedder).iter_chunks()} >= {"doc02.txt"}


def test_other_embedding_model_is_a_clear_error(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs", n_files=2)
    report = index_folder(docs, settings, embedder=embedder)
    other = HashingEmbedder(name="test/other")
    with pytest.raises(EmbeddingMismatch, match="test/hashing"):
        index_folder(docs, settings, embedder=other)
    store = open_store(report, settings, embedder)
    with pytest.raises(EmbeddingMismatch, match="embedding.model"):
        store.check_embedder("test/other", 64)
    wrong_dim = HashingEmbedder(dim=32)
    with pytest.raises(EmbeddingMismatch):
        store.query(wrong_dim.embed_query("x"), 3)
    with pytest.raises(EmbeddingMismatch):  # the configured model (MiniLM) is not what built this index
        open_index(docs, settings)


def test_open_index_without_an_index(tmp_path, settings):
    (tmp_path / "docs").mkdir()
    with pytest.raises(StoreError, match="ragpipe index"):
        open_index(tmp_path / "docs", settings)


def test_second_writer_is_refused(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs", n_files=1)
    with writer_lock(docs / ".ragpipe"):
        with pytest.raises(StoreLocked, match="another process"):
            index_folder(docs, settings, embedder=embedder)
    assert index_folder(docs, settings, embedder=embedder).added == ["doc00.txt"]


def test_index_path_setting_and_exclude(tmp_path, embedder):
    from ragpipe.config import load_settings

    docs = write_corpus(tmp_path / "docs", n_files=3)
    settings = load_settings(store__path=str(tmp_path / "elsewhere"), chunking__exclude=["doc01*"])
    report = index_folder(docs, settings, embedder=embedder)
    assert report.index_dir == (tmp_path / "elsewhere").resolve()
    assert sorted(report.added) == ["doc00.txt", "doc02.txt"]
    assert not (docs / ".ragpipe").exists()


def test_documents_from_frameworks_index_incrementally(tmp_path, settings, embedder):
    from langchain_core.documents import Document as LCDocument

    docs = [LCDocument(page_content=f"Page {i} about {w}.", metadata={"source": f"wiki/{w}"}) for i, w in enumerate(["owls", "bees"])]
    report = index_documents(from_langchain(docs), settings, index_dir=tmp_path / "idx", embedder=embedder)
    assert sorted(report.added) == ["wiki/bees", "wiki/owls"]
    store = ChunkStore.open(tmp_path / "idx", settings.store, embedding_model=embedder.name)
    best, score = store.query(embedder.embed_query("about owls"), 1)[0]
    assert best.source == "wiki/owls" and 0 < score <= 1.0
    embedder.calls.clear()
    docs[1] = LCDocument(page_content="Page 1 about wasps.", metadata={"source": "wiki/bees"})
    again = index_documents(from_langchain(docs), settings, index_dir=tmp_path / "idx", embedder=embedder)
    assert again.updated == ["wiki/bees"] and again.unchanged == 1 and sum(embedder.calls) == 1
