"""A run killed mid-way leaves a queryable index; the next run completes it with no duplicates or orphans."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ragpipe.ingest import index_folder
from ragpipe.ingest.manifest import Manifest
from ragpipe.ingest.store import ChunkStore
from tests.ingest.fixtures import write_corpus

ROOT = Path(__file__).resolve().parents[2]


def run_child_and_kill(docs: Path, kill_after_writes: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-m", "tests.ingest.crash_child", str(docs), str(kill_after_writes)],
        cwd=ROOT, env=env, capture_output=True, timeout=120,
    )
    return child.returncode


def state(index_dir: Path, settings, embedder) -> tuple[list[str], set[str]]:
    store = ChunkStore.open(index_dir, settings.store, embedding_model=embedder.name)
    ids = [c.id for c in store.iter_chunks()]
    manifest = Manifest(index_dir)
    owned = {i for e in manifest.entries().values() for i in e.chunk_ids}
    manifest.close()
    return ids, owned


def test_sigkill_mid_index_then_rerun_matches_a_clean_index(tmp_path, settings, embedder):
    docs = write_corpus(tmp_path / "docs", n_files=12)
    assert run_child_and_kill(docs, kill_after_writes=2) == -signal.SIGKILL

    # The half-built index still answers queries and is consistent with its manifest so far.
    partial_ids, partial_owned = state(docs / ".ragpipe", settings, embedder)
    assert 0 < len(partial_owned) and partial_owned <= set(partial_ids)
    store = ChunkStore.open(docs / ".ragpipe", settings.store, embedding_model=embedder.name)
    assert store.query(embedder.embed_query("topic0"), 3)

    # Meanwhile a file changes and one is deleted: the re-run must not keep their old chunks.
    (docs / "doc00.txt").write_text("Rewritten after the crash about volcanoes.")
    (docs / "doc11.txt").unlink()
    report = index_folder(docs, settings, embedder=embedder)
    assert report.added  # the unfinished files were indexed now

    clean_docs = tmp_path / "clean"
    shutil.copytree(docs, clean_docs, ignore=shutil.ignore_patterns(".ragpipe"))
    index_folder(clean_docs, settings, embedder=embedder)

    ids, owned = state(docs / ".ragpipe", settings, embedder)
    clean_ids, _ = state(clean_docs / ".ragpipe", settings, embedder)
    assert len(ids) == len(set(ids))  # no duplicates
    assert set(ids) == owned  # no orphans, nothing missing
    assert set(ids) == set(clean_ids)  # same as indexing from scratch
    assert len(partial_owned) < len(clean_ids)  # the child really died mid-way
    assert Manifest(docs / ".ragpipe").clean


def test_orphans_from_a_killed_run_are_swept(tmp_path, settings, embedder):
    """Chunks upserted before the kill but never recorded (the file then changed) are deleted."""
    docs = write_corpus(tmp_path / "docs", n_files=4)
    index_folder(docs, settings, embedder=embedder)
    store = ChunkStore.open(docs / ".ragpipe", settings.store, embedding_model=embedder.name)
    from ragpipe.schema import Chunk

    ghost = Chunk(id="ghost-chunk", doc_id="x", position=0, text="left behind", source="doc09.txt")
    store.upsert([ghost], embedder.embed(["left behind"]), embedding_model=embedder.name)
    manifest = Manifest(docs / ".ragpipe")
    manifest.add_pending(["ghost-chunk"])  # as the indexer announces before every upsert...
    manifest.mark(clean=False)  # ...and as if the run had died right after that upsert
    manifest.close()
    (docs / "doc01.txt").write_text("changed")
    report = index_folder(docs, settings, embedder=embedder)
    assert "ghost-chunk" not in {c.id for c in store.iter_chunks()}
    assert any(e.kind == "repair" and "orphan" in e.message for e in report.trace)


def test_sweep_never_touches_chunks_it_did_not_write(tmp_path, settings, embedder):
    """Another index's chunks in the same collection (a shared Chroma server) survive a sweep."""
    docs = write_corpus(tmp_path / "docs", n_files=2)
    index_folder(docs, settings, embedder=embedder)
    store = ChunkStore.open(docs / ".ragpipe", settings.store, embedding_model=embedder.name)
    from ragpipe.schema import Chunk

    foreign = Chunk(id="someone-elses", doc_id="y", position=0, text="not ours", source="other/x.txt")
    store.upsert([foreign], embedder.embed(["not ours"]), embedding_model=embedder.name)
    manifest = Manifest(docs / ".ragpipe")
    manifest.mark(clean=False)
    manifest.close()
    (docs / "doc00.txt").write_text("changed again")
    index_folder(docs, settings, embedder=embedder)
    assert "someone-elses" in {c.id for c in store.iter_chunks()}
    assert Manifest(docs / ".ragpipe").pending() == set()
