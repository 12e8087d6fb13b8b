"""Index a folder (or any documents) into the chunk store: incremental, crash-safe, one writer.

A run: walk -> classify each source against the manifest (same size+mtime: unchanged without
reading; else content hash) -> parse and chunk what changed, file after file, as a stream -> embed
in bounded groups (a large file spans several, so memory does not grow with file size) -> for each
group, upsert its chunks, and for the files that end in it delete the chunks they no longer have
and only then record them in the manifest. Embedding of the next group overlaps the store write of
the previous one.
A run killed at any point leaves a queryable index; the next run redoes unrecorded files and, as
the previous run was not clean, deletes the chunks announced before an upsert that no row owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragpipe.config import Settings
from ragpipe.errors import ConfigError, EmbeddingMismatch, IngestError, StoreError
from ragpipe.ingest.chunker import Chunker, ChunkPlan
from ragpipe.ingest.embed import Embedder, embedder_name, get_index_embedder, get_query_embedder
from ragpipe.ingest.loaders import LoadedDocument
from ragpipe.ingest.manifest import Manifest, ManifestEntry, run_state
from ragpipe.ingest.report import IndexReport, ProgressEvent, ProgressFn
from ragpipe.ingest.sources import Source, document_sources, folder_sources
from ragpipe.ingest.walk import Skipped
from ragpipe.schema import Chunk, Document, TraceEvent

if TYPE_CHECKING:  # chromadb is imported only when a run touches the store
    from ragpipe.ingest.store import ChunkStore

log = logging.getLogger(__name__)
INDEX_DIRNAME = ".ragpipe"
GROUP_CHUNKS = 512  # chunks embedded and committed together: a crash loses at most one group


# Recorded as-is (they are the normal case); anything else was found by detection and is reported.
_SELF_DESCRIBING_ENCODINGS = {"utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "ascii"}


@dataclass
class _FileDone:
    """A file whose last chunk is in a group: recorded in the manifest once that group is written."""

    source: Source
    hash: str
    chunk_ids: tuple[str, ...]
    previous: ManifestEntry | None


@dataclass
class _Group:
    """Chunks embedded and written together, and the files that end in them."""

    chunks: list[Chunk] = field(default_factory=list)
    finished: list[_FileDone] = field(default_factory=list)


@dataclass
class Index:
    """An opened index: the store to query and the embedder its vectors came from."""

    dir: Path
    store: ChunkStore
    embedder: Embedder
    partial: str | None = None  # why the index may be incomplete (a run in progress or interrupted)


def resolve_index_dir(docs_dir: str | Path, settings: Settings) -> Path:
    """``store.path`` when set, else ``<docs>/.ragpipe``."""
    if settings.store.path:
        return Path(settings.store.path).expanduser().resolve()
    return Path(docs_dir).expanduser().resolve() / INDEX_DIRNAME


def index_folder(
    docs_dir: str | Path,
    settings: Settings,
    *,
    progress: ProgressFn | None = None,
    dry_run: bool = False,
    embedder: Embedder | None = None,
    group_chunks: int | None = None,
) -> IndexReport:
    """Bring the index of ``docs_dir`` up to date with the folder; return what changed.

    ``embedder`` replaces the configured one (tests use a fast fake); ``group_chunks`` is how
    many chunks are embedded and committed together (default ``GROUP_CHUNKS``, or
    ``8 x embedding.batch_size`` when that is larger).
    """
    docs = Path(docs_dir).expanduser().resolve()
    if not docs.is_dir():
        raise ConfigError(f"{docs} is not a folder")
    index_dir = resolve_index_dir(docs, settings)
    report = IndexReport(index_dir=index_dir, dry_run=dry_run)
    started = time.perf_counter()
    sources = folder_sources(docs, settings, index_dir, report)
    for skipped in report.skipped:
        log.warning("skipped %s: %s", skipped.path, skipped.reason)
    _emit(progress, ProgressEvent("scan", len(sources), len(sources)))
    run = _Run(index_dir, settings, report, progress, embedder, group_chunks)
    run.run(sources, prune=True, dry_run=dry_run)
    if not dry_run:
        _export_query_encoder(run.embedder, settings)
    report.seconds = time.perf_counter() - started
    return report


def _export_query_encoder(embedder: Embedder | None, settings: Settings) -> None:
    """While the model is loaded anyway, leave a torch-free copy for fast queries (see onnx_encoder)."""
    from ragpipe.ingest.embed import SentenceTransformerEmbedder

    if isinstance(embedder, SentenceTransformerEmbedder):
        from ragpipe.ingest.onnx_encoder import export_onnx_encoder

        export_onnx_encoder(embedder, settings.embedding)


def index_documents(
    documents: Iterable[Document],
    settings: Settings,
    *,
    index_dir: str | Path,
    progress: ProgressFn | None = None,
    prune: bool = False,
    embedder: Embedder | None = None,
) -> IndexReport:
    """Index in-memory documents (adapters turn LangChain/LlamaIndex documents into these).

    With ``prune`` the documents are the whole collection and anything else is removed.
    """
    target = Path(index_dir).expanduser().resolve()
    report = IndexReport(index_dir=target)
    started = time.perf_counter()
    _Run(target, settings, report, progress, embedder, None).run(document_sources(documents), prune=prune)
    report.seconds = time.perf_counter() - started
    return report


def open_index(docs_dir: str | Path, settings: Settings) -> Index:
    """Open an existing index for querying; clear errors for a missing index or another model."""
    from ragpipe.ingest.store import ChunkStore

    index_dir = resolve_index_dir(docs_dir, settings)
    if settings.store.kind == "persistent" and not (index_dir / "chroma").is_dir():
        raise StoreError(f"no index at {index_dir}: run `ragpipe index {docs_dir}` first")
    wanted = embedder_name(settings.embedding)
    store = ChunkStore.open(index_dir, settings.store, embedding_model=wanted)
    embedder = get_query_embedder(settings.embedding)
    store.check_embedder(embedder.name, embedder.dim)
    partial = incomplete_reason(index_dir, docs_dir)
    if partial:
        log.warning("%s", partial)
    return Index(dir=index_dir, store=store, embedder=embedder, partial=partial)


def incomplete_reason(index_dir: Path, docs_dir: str | Path) -> str | None:
    """Why answers from this index may miss documents, or None when its last run finished."""
    state = run_state(index_dir)
    if state is None:
        return None
    how = "an indexing run is still in progress" if state == "running" else "the last indexing run was interrupted"
    return f"the index is partial: {how}; answers may miss documents (run `ragpipe index {docs_dir}` to complete it)"


def _emit(progress: ProgressFn | None, event: ProgressEvent) -> None:
    if progress is not None:
        progress(event)


@dataclass
class _Run:
    index_dir: Path
    settings: Settings
    report: IndexReport
    progress: ProgressFn | None
    embedder: Embedder | None
    group_chunks: int | None
    _store: ChunkStore | None = field(default=None, init=False)
    _manifest: Manifest | None = field(default=None, init=False)
    _produced_fraction: float = field(default=0.0, init=False)  # share of the pending bytes chunked so far
    _failed: list[tuple[Source, str, ManifestEntry | None, str]] = field(default_factory=list, init=False)

    def run(self, sources: Sequence[Source], *, prune: bool, dry_run: bool = False) -> None:
        from ragpipe.ingest.server_lock import server_writer_lock
        from ragpipe.ingest.store import writer_lock

        if dry_run:
            self._plan_only(sources, prune)
            return
        with writer_lock(self.index_dir), server_writer_lock(self.settings.store, self.index_dir):
            manifest = self._manifest = Manifest(self.index_dir)
            try:
                self._run_locked(manifest, sources, prune)
            finally:
                manifest.close()

    # -- planning ---------------------------------------------------------------------------

    def _check_model(self, manifest: Manifest) -> str:
        name = self.embedder.name if self.embedder else embedder_name(self.settings.embedding)
        recorded = manifest.get_meta("embedding_model")
        if recorded and recorded != name:
            raise EmbeddingMismatch(
                f"index {self.index_dir} was built with embedding model '{recorded}' but '{name}' is configured; "
                f"set embedding.model='{recorded}' or index into a new folder (--index PATH)"
            )
        return name

    def _classify(
        self, manifest: Manifest, sources: Sequence[Source], prune: bool
    ) -> tuple[list[tuple[Source, str, ManifestEntry | None]], list[ManifestEntry]]:
        """(sources to (re)index with their hash and old entry, manifest entries to remove)."""
        entries = manifest.entries() if manifest is not None else {}
        pending = []
        for source in sources:
            old = entries.get(source.key)
            same_stat = old is not None and old.size == source.size and old.mtime == source.mtime
            digest = ""
            if not same_stat:
                try:
                    digest = source.fingerprint()
                except OSError as err:
                    self._skip(source.key, f"unreadable ({err.strerror or err})")
                    continue
            if old and (same_stat or old.hash == digest):
                if old.error:
                    self._skip(source.key, f"{old.error} (unchanged since it failed)")
                else:
                    self.report.unchanged += 1
                if not same_stat and manifest is not None and not self.report.dry_run:
                    manifest.touch(source.key, source.size, source.mtime)
                continue
            pending.append((source, digest, old))
        keys = {s.key for s in sources}
        removed = [e for k, e in entries.items() if k not in keys] if prune else []
        return pending, removed

    def _plan_only(self, sources: Sequence[Source], prune: bool) -> None:
        manifest = Manifest(self.index_dir) if Manifest.exists(self.index_dir) else None
        try:
            if manifest is not None:
                self._check_model(manifest)
            pending, removed = self._classify(manifest, sources, prune)  # type: ignore[arg-type]
        finally:
            if manifest is not None:
                manifest.close()
        for source, _, old in pending:
            (self.report.updated if old else self.report.added).append(source.key)
        self.report.removed = [e.key for e in removed]
        self.report.chunks_removed = sum(len(e.chunk_ids) for e in removed)

    # -- the run ----------------------------------------------------------------------------

    def _run_locked(self, manifest: Manifest, sources: Sequence[Source], prune: bool) -> None:
        name = self._check_model(manifest)
        pending, removed = self._classify(manifest, sources, prune)
        was_clean = manifest.clean
        if not pending and not removed and was_clean:
            self._sync_bm25_if_stale(manifest, None)
            _emit(self.progress, ProgressEvent("done", 0, 0))
            return
        manifest.mark(clean=False)
        store = self._open_store(manifest, name)
        if removed:
            ids = [i for e in removed for i in e.chunk_ids]
            store.delete(ids)
            manifest.remove(e.key for e in removed)
            self.report.removed = [e.key for e in removed]
            self.report.chunks_removed += len(ids)
        written = self._embed_and_write(store, manifest, pending)
        self._record_failures(self._failed)
        if not was_clean:
            self._sweep_orphans(store, manifest)
        manifest.clear_pending()
        manifest.mark(clean=True)
        self.report.chunks_total = store.count()
        self._sync_bm25_if_stale(manifest, store)
        _emit(self.progress, ProgressEvent("done", written, written, self.report.embedded))

    def _open_store(self, manifest: Manifest, name: str) -> ChunkStore:
        from ragpipe.ingest.store import ChunkStore

        if self.embedder is None:
            self.embedder = get_index_embedder(self.settings.embedding)
            name = self._check_model(manifest)  # the loaded model's own name is what gets recorded
        store = ChunkStore.open(
            self.index_dir, self.settings.store, embedding_model=name, dim=self.embedder.dim, create=True
        )
        manifest.set_meta("embedding_model", name)
        manifest.set_meta("dim", str(self.embedder.dim))
        self._store = store
        return store

    def _skip(self, key: str, reason: str) -> None:
        log.warning("skipped %s: %s", key, reason)
        self.report.skipped.append(Skipped(key, reason))

    def _group_size(self) -> int:
        return self.group_chunks or max(GROUP_CHUNKS, 8 * (self.settings.embedding.batch_size or 0))

    def _load(self, source: Source) -> tuple[LoadedDocument | None, str | None]:
        """The loaded source, or why it cannot be indexed."""
        try:
            loaded = source.load()
        except IngestError as err:
            return None, err.reason
        except Exception as err:  # a loader bug or a library choking on a file: skip, never abort
            return None, f"could not be parsed ({err.__class__.__name__}: {err})"
        if not loaded.text.strip():
            return None, "no text extracted"
        return loaded, None

    def _groups(self, pending: list[tuple[Source, str, ManifestEntry | None]]) -> Iterator[_Group]:
        """Parse and chunk file after file, yielding groups of at most ``_group_size`` chunks.

        A large file spans several groups; only its chunks of the group being filled are held.
        """
        assert self.embedder is not None
        plan = ChunkPlan.for_embedder(
            self.settings.chunking.chunk_tokens, self.settings.chunking.overlap_tokens, self.embedder.max_tokens
        )
        chunker = Chunker(self.embedder, plan)  # type: ignore[arg-type]  # embedders expose token_offsets
        size = self._group_size()
        total_bytes = sum(max(1, source.size) for source, _, _ in pending) or 1
        bytes_done = 0
        group = _Group()
        failed: list[tuple[Source, str, ManifestEntry | None, str]] = []
        for done, (source, digest, old) in enumerate(pending, start=1):
            loaded, reason = self._load(source)
            if loaded is None:
                self._skip(source.key, reason or "no text extracted")
                failed.append((source, digest, old, reason or "no text extracted"))
                continue
            self._note_encoding(source.key, loaded)
            doc_id = Document.make_id(source.key)
            metadata = {**loaded.metadata, "file_type": source.file_type, "mtime": source.mtime, "hash": digest[:16]}
            notes: list[str] = []
            ids: list[str] = []
            length = max(1, len(loaded.text))
            for chunk in chunker.iter_chunks(loaded, doc_id, source.key, metadata, notes):
                group.chunks.append(chunk)
                ids.append(chunk.id)
                if len(group.chunks) >= size:
                    self._produced_fraction = (bytes_done + max(1, source.size) * (chunk.end_char or 0) / length) / total_bytes
                    yield group
                    group = _Group()
            del loaded
            for note in notes:
                self.report.trace.append(TraceEvent(node="ingest", kind="truncation", message=f"{source.key}: {note}"))
            group.finished.append(_FileDone(source, digest, tuple(ids), old))
            bytes_done += max(1, source.size)
            self._produced_fraction = bytes_done / total_bytes
            _emit(self.progress, ProgressEvent("parse", done, len(pending)))
        if group.chunks or group.finished:
            yield group
        self._failed = failed  # recorded once the writer thread is done (one manifest writer at a time)

    def _note_encoding(self, key: str, loaded: LoadedDocument) -> None:
        """Say when a text file was not UTF-8 and had to be decoded by detection."""
        encoding = str(loaded.metadata.get("encoding") or "")
        if encoding and encoding not in _SELF_DESCRIBING_ENCODINGS:
            self.report.trace.append(
                TraceEvent(node="ingest", kind="encoding", message=f"{key}: not UTF-8, decoded as {encoding} (detected)",
                           data={"source": key, "encoding": encoding})
            )

    def _record_failures(self, failed: list[tuple[Source, str, ManifestEntry | None, str]]) -> None:
        """A file that no longer loads loses its old chunks; its row remembers why until it changes."""
        if not failed:
            return
        stale = [i for _, _, old, _ in failed if old for i in old.chunk_ids]
        if stale:
            assert self._store is not None
            self._store.delete(stale)
            self.report.chunks_removed += len(stale)
        assert self._manifest is not None
        self._manifest.put(
            ManifestEntry(s.key, Document.make_id(s.key), digest, s.size, s.mtime, (), reason)
            for s, digest, _, reason in failed
        )

    def _embed_and_write(
        self, store: ChunkStore, manifest: Manifest, pending: list[tuple[Source, str, ManifestEntry | None]]
    ) -> int:
        """Embed each group while the previous one is written; return how many files were written."""
        assert self.embedder is not None
        written_files = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragpipe-write") as writer:
            previous: Future[int] | None = None
            for group in self._groups(pending):
                self._check_lengths(group.chunks)
                t0 = time.perf_counter()
                vectors = (self.embedder.embed([c.text for c in group.chunks]) if group.chunks
                           else np.zeros((0, self.embedder.dim), dtype=np.float32))
                self.report.embed_seconds += time.perf_counter() - t0
                self.report.embedded += len(group.chunks)
                estimate = round(self.report.embedded / max(self._produced_fraction, 1e-9))
                _emit(
                    self.progress,
                    ProgressEvent("embed", self.report.embedded, max(estimate, self.report.embedded),
                                  self.report.embedded, self.report.embeddings_per_s),
                )
                if previous is not None:
                    written_files += previous.result()
                    _emit(self.progress, ProgressEvent("write", written_files, len(pending), self.report.embedded))
                previous = writer.submit(self._write_group, store, manifest, group, vectors)
            if previous is not None:
                written_files += previous.result()
                _emit(self.progress, ProgressEvent("write", written_files, len(pending), self.report.embedded))
        return written_files

    def _check_lengths(self, chunks: list[Chunk]) -> None:
        """Chunks are budgeted to fit; record any that the embedder would still truncate."""
        assert self.embedder is not None
        limit = self.embedder.max_tokens
        for chunk in chunks:
            if len(chunk.text) > 2 * limit and self.embedder.count_tokens(chunk.text) > limit:
                self.report.trace.append(
                    TraceEvent(
                        node="ingest",
                        kind="truncation",
                        message=f"{chunk.source} chunk {chunk.position} exceeds the embedder's {limit} tokens",
                        data={"chunk_id": chunk.id},
                    )
                )

    def _write_group(self, store: ChunkStore, manifest: Manifest, group: _Group, vectors: np.ndarray) -> int:
        """Upsert; for each file finished in this group drop its superseded chunks, then (only then) record it."""
        assert self.embedder is not None
        if group.chunks:
            manifest.add_pending(c.id for c in group.chunks)
            store.upsert(group.chunks, vectors, embedding_model=self.embedder.name)
        stale = [i for f in group.finished if f.previous for i in set(f.previous.chunk_ids) - set(f.chunk_ids)]
        if stale:
            store.delete(stale)
        manifest.put(
            ManifestEntry(f.source.key, Document.make_id(f.source.key), f.hash, f.source.size, f.source.mtime,
                          f.chunk_ids)
            for f in group.finished
        )
        for f in group.finished:
            (self.report.updated if f.previous else self.report.added).append(f.source.key)
        self.report.chunks_added += len(group.chunks)
        self.report.chunks_removed += len(stale)
        return len(group.finished)

    def _sweep_orphans(self, store: ChunkStore, manifest: Manifest) -> None:
        """After a killed run: delete announced chunks that no manifest row owns (half-written files)."""
        owned = {i for e in manifest.entries().values() for i in e.chunk_ids}
        orphans = sorted(manifest.pending() - owned)
        if orphans:
            store.delete(orphans)
            self.report.chunks_removed += len(orphans)
            self.report.trace.append(
                TraceEvent(node="ingest", kind="repair", message=f"removed {len(orphans)} orphan chunk(s) left by an interrupted run")
            )

    def _sync_bm25_if_stale(self, manifest: Manifest, store: ChunkStore | None) -> None:
        """Keep the BM25 sidecar current; cheap no-op when it already matches the store revision."""
        try:
            from ragpipe.retrieve.bm25 import BM25Index
        except ImportError:
            return
        revision_file = self.index_dir / "revision"
        revision = revision_file.read_text().strip() if revision_file.is_file() else "empty"
        if store is None and manifest.get_meta("bm25_revision") == revision:
            return
        if store is None:
            from ragpipe.ingest.store import ChunkStore

            recorded = manifest.get_meta("embedding_model")
            if not recorded:
                return
            store = ChunkStore.open(self.index_dir, self.settings.store, embedding_model=recorded)
        try:
            BM25Index.sync(store)
        except Exception as err:  # BM25 is a sidecar: the dense index is complete without it
            self.report.trace.append(
                TraceEvent(node="ingest", kind="fallback", message=f"BM25 sync failed ({err}); dense search only until the next run")
            )
            return
        manifest.set_meta("bm25_revision", store.revision)
