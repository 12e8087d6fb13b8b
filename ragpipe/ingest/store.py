"""The Chroma-backed chunk store: embedded ``PersistentClient`` or a Chroma server (``HttpClient``).

Rules learnt the hard way by Chroma users, all enforced here:
- never Chroma's own (downloading) default embedding function: we always pass vectors;
- cosine space, and similarity reported as ``1 - cosine distance``;
- writes batched to the client's maximum batch size, with ``upsert`` on content-hash ids;
- the embedding model and dimension recorded in the collection and checked on every open/add;
- one client per process per path (reopened when another process has changed the index), and
  a file lock so only one process writes an index.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragpipe.config import StoreSettings
from ragpipe.errors import EmbeddingMismatch, StoreError, StoreLocked
from ragpipe.retrieve.revision_cache import RevisionCache
from ragpipe.schema import Chunk

REVISION_FILE = "revision"
LOCK_FILE = "write.lock"
_PAGE = 1000
# Stored vectors kept in memory between reads (1.5 KB each at 384 dimensions).
VECTOR_CACHE_SIZE = 5_000
_CLIENTS: dict[str, _Opened] = {}
_CLIENTS_LOCK = threading.Lock()


def _chroma_settings() -> Any:
    import chromadb

    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    return chromadb.Settings(anonymized_telemetry=False)


@dataclass
class _Opened:
    """A client and the index revision it shows (``None`` for a server, which is always current)."""

    client: Any
    revision: str | None


def read_revision(index_dir: Path) -> str:
    """The index's revision: a token rewritten whenever chunks are written or deleted."""
    try:
        return (index_dir / REVISION_FILE).read_text().strip()
    except FileNotFoundError:
        return "empty"


def chroma_client(settings: StoreSettings, index_dir: Path) -> Any:
    """The one client this process uses for this index (Chroma clients must not be duplicated)."""
    return _current_client(settings, index_dir).client


def _current_client(settings: StoreSettings, index_dir: Path) -> _Opened:
    """The cached client for this index, replaced when another process has changed the index.

    An embedded Chroma client keeps its vector index in memory and never sees another process's
    writes, and Chroma hands a new client for the same path the same in-memory system; so a stale
    client is replaced by one on a fresh system (``clear_system_cache`` forgets the cached
    systems; clients already handed out keep working on theirs until dropped).
    """
    import chromadb

    key = f"http://{settings.host}:{settings.port}" if settings.kind == "http" else str(index_dir.resolve())
    with _CLIENTS_LOCK:
        cached = _CLIENTS.get(key)
        # Read before opening: a write in between costs one more reopen, never a stale client.
        revision = None if settings.kind == "http" else read_revision(index_dir)
        if cached is not None and cached.revision == revision:
            return cached
        if cached is not None:
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient.clear_system_cache()
        try:
            if settings.kind == "http":
                client = chromadb.HttpClient(host=settings.host, port=settings.port, settings=_chroma_settings())
            else:
                client = chromadb.PersistentClient(str(index_dir / "chroma"), settings=_chroma_settings())
        except Exception as err:  # chromadb raises plain ValueError/ConnectionError types
            where = key if settings.kind == "http" else index_dir
            raise StoreError(f"cannot open the Chroma store at {where}: {err}") from None
        _CLIENTS[key] = _Opened(client, revision)
        return _CLIENTS[key]


def _mismatch(index_dir: Path, recorded: str, recorded_dim: Any, wanted: str, dim: int | None) -> EmbeddingMismatch:
    return EmbeddingMismatch(
        f"index {index_dir} was built with embedding model '{recorded}' (dim {recorded_dim}) but "
        f"'{wanted}'{f' (dim {dim})' if dim else ''} is configured; set embedding.model='{recorded}' "
        f"or re-index into a new folder (--index PATH)"
    )


def _to_metadata(chunk: Chunk) -> dict[str, Any]:
    meta: dict[str, Any] = {
        k: v for k, v in chunk.metadata.items() if isinstance(v, str | int | float | bool) and not k.startswith("_")
    }
    meta.update(
        doc_id=chunk.doc_id,
        position=chunk.position,
        source=chunk.source,
        start_char=chunk.start_char if chunk.start_char is not None else -1,
        end_char=chunk.end_char if chunk.end_char is not None else -1,
        prev_id=chunk.prev_id or "",
        next_id=chunk.next_id or "",
        title=chunk.title or "",
        headings=json.dumps(chunk.headings, ensure_ascii=False),
    )
    return meta


_CORE_KEYS = {"doc_id", "position", "source", "start_char", "end_char", "prev_id", "next_id", "title", "headings"}


def _to_chunk(chunk_id: str, text: str | None, meta: dict[str, Any] | None) -> Chunk:
    meta = dict(meta or {})
    start, end = meta.get("start_char", -1), meta.get("end_char", -1)
    try:
        headings = json.loads(meta.get("headings") or "[]")
    except json.JSONDecodeError:
        headings = []
    return Chunk(
        id=chunk_id,
        doc_id=str(meta.get("doc_id", "")),
        position=int(meta.get("position", 0)),
        text=text or "",
        source=str(meta.get("source", "")),
        start_char=None if start is None or start < 0 else int(start),
        end_char=None if end is None or end < 0 else int(end),
        prev_id=meta.get("prev_id") or None,
        next_id=meta.get("next_id") or None,
        title=meta.get("title") or None,
        headings=headings,
        metadata={k: v for k, v in meta.items() if k not in _CORE_KEYS},
    )


class ChunkStore:
    """Chunks and their vectors in one Chroma collection, plus sidecar files in ``index_dir``."""

    def __init__(self, collection: Any, opened: _Opened, index_dir: Path, settings: StoreSettings) -> None:
        self.collection = collection
        self.index_dir = index_dir
        self._opened = opened
        self._settings = settings
        self._reopen_lock = threading.Lock()
        meta = collection.metadata or {}
        self.embedding_model: str = str(meta.get("embedding_model", ""))
        self.dim: int = int(meta.get("dim", 0))
        self._vectors: RevisionCache[np.ndarray] = RevisionCache(VECTOR_CACHE_SIZE)
        self._count: tuple[str, int] | None = None  # (revision, count): a count is a SQL query

    @classmethod
    def open(
        cls,
        index_dir: Path,
        settings: StoreSettings,
        *,
        embedding_model: str,
        dim: int | None = None,
        create: bool = False,
    ) -> ChunkStore:
        """Open (or with ``create``, create) the collection and check its embedding model."""
        index_dir.mkdir(parents=True, exist_ok=True) if create else None
        opened = _current_client(settings, index_dir)
        client = opened.client
        try:
            if create:
                if dim is None:
                    raise StoreError("creating an index needs the embedding dimension")
                collection = client.get_or_create_collection(
                    settings.collection,
                    metadata={"hnsw:space": "cosine", "embedding_model": embedding_model, "dim": dim},
                    embedding_function=None,
                )
            else:
                collection = client.get_collection(settings.collection, embedding_function=None)
        except StoreError:
            raise
        except Exception as err:  # chromadb's NotFoundError / ValueError differ by version
            if not create:
                raise StoreError(
                    f"no index at {index_dir} (collection '{settings.collection}'): run `ragpipe index DIR` first"
                ) from None
            raise StoreError(f"cannot open collection '{settings.collection}': {err}") from None
        store = cls(collection, opened, index_dir, settings)
        store.check_embedder(embedding_model, dim)
        return store

    def check_embedder(self, name: str, dim: int | None = None) -> None:
        """Raise ``EmbeddingMismatch`` unless ``name``/``dim`` are what the index was built with."""
        if self.embedding_model and (name != self.embedding_model or (dim and self.dim and dim != self.dim)):
            raise _mismatch(self.index_dir, self.embedding_model, self.dim, name, dim)

    @property
    def client(self) -> Any:
        return self._opened.client

    def _live(self) -> Any:
        """The collection, reopened first when another process has changed the index.

        When nothing changed this costs one read of the small revision file; a long-lived reader
        (a server answering questions) thus sees a re-index without a restart.
        """
        opened = self._opened
        if opened.revision is None or opened.revision == self.revision:
            return self.collection
        with self._reopen_lock:
            if self._opened is opened:  # no other thread reopened it meanwhile
                current = _current_client(self._settings, self.index_dir)
                try:
                    self.collection = current.client.get_collection(self._settings.collection, embedding_function=None)
                except Exception:  # chromadb's NotFoundError / ValueError differ by version
                    raise StoreError(
                        f"the index at {self.index_dir} no longer has collection '{self._settings.collection}' "
                        f"(another process removed it): run `ragpipe index DIR` to rebuild it"
                    ) from None
                self._opened = current
        return self.collection

    # -- reading ---------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._live().count())

    def query(self, vector: Sequence[float] | np.ndarray, k: int, where: dict | None = None) -> list[tuple[Chunk, float]]:
        """The ``k`` nearest chunks with cosine similarity, best first."""
        result = self._nearest(vector, k, where, ["documents", "metadatas", "distances"])
        if result is None:
            return []
        ids, docs = result["ids"][0], result["documents"][0]
        metas, dists = result["metadatas"][0], result["distances"][0]
        return [(_to_chunk(i, d, m), 1.0 - float(dist)) for i, d, m, dist in zip(ids, docs, metas, dists)]

    def query_ids(self, vector: Sequence[float] | np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """Like ``query`` but ids and similarities only: hybrid retrieval reads texts for the final cut only."""
        result = self._nearest(vector, k, where, ["distances"])
        if result is None:
            return []
        return [(i, 1.0 - float(dist)) for i, dist in zip(result["ids"][0], result["distances"][0])]

    def _nearest(self, vector: Sequence[float] | np.ndarray, k: int, where: dict | None, include: list[str]) -> Any:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self.dim and vector.shape[0] != self.dim:
            raise _mismatch(self.index_dir, self.embedding_model, self.dim, "the query embedder", vector.shape[0])
        collection = self._live()
        n = min(k, self._count_now())
        if n <= 0:
            return None
        return collection.query(query_embeddings=[vector.tolist()], n_results=n, where=where or None,
                                     include=include)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, in the order asked (missing ids are left out).

        Their vectors come in the same read and are kept for :meth:`embeddings`: the selector and
        the verifier ask for the vectors of the chunks just retrieved, and a second read of the
        same rows would cost about as much as the first.
        """
        if not ids:
            return []
        revision = self.revision
        result = self._live().get(ids=list(ids), include=["documents", "metadatas", "embeddings"])
        found = {i: _to_chunk(i, d, m) for i, d, m in zip(result["ids"], result["documents"], result["metadatas"])}
        vectors = result.get("embeddings")
        if vectors is not None and len(vectors) == len(result["ids"]):
            self._vectors.put({i: np.asarray(v, dtype=np.float32) for i, v in zip(result["ids"], vectors)}, revision)
        return [found[i] for i in ids if i in found]

    def neighbours(self, doc_id: str, position: int, window: int) -> list[Chunk]:
        """The chunks of ``doc_id`` at ``position ± window``, by position (the chunk itself included)."""
        return self._windows({"": (doc_id, position)}, window)[""]

    def neighbours_of(self, chunks: Sequence[Chunk], window: int) -> dict[str, list[Chunk]]:
        """:meth:`neighbours` of many chunks at once, by chunk id, in two store reads in all."""
        return self._windows({c.id: (c.doc_id, c.position) for c in chunks}, window)

    def _windows(self, anchors: dict[str, tuple[str, int]], window: int) -> dict[str, list[Chunk]]:
        """For each key, the chunks of its document within ``window`` of its position, by position.

        One metadata read for all documents, then one read of the texts wanted. The position
        range is applied here, not in the ``where``: Chroma answers a ``doc_id`` filter from its
        index in a few ms but scans every row for a ``$gte``/``$lte`` range combined with it
        (about 45 ms at 11k chunks).
        """
        docs = sorted({doc_id for doc_id, _ in anchors.values()})
        if not docs:
            return {}
        where = {"doc_id": docs[0]} if len(docs) == 1 else {"doc_id": {"$in": docs}}
        rows = self._live().get(where=where, include=["metadatas"])
        by_doc: dict[str, dict[int, str]] = {}
        for cid, meta in zip(rows["ids"], rows["metadatas"]):
            meta = meta or {}
            by_doc.setdefault(str(meta.get("doc_id", "")), {})[int(meta.get("position", 0))] = cid
        wanted = {
            key: [ids[p] for p in range(position - window, position + window + 1) if p in ids]
            for key, (doc_id, position) in anchors.items()
            for ids in [by_doc.get(doc_id, {})]
        }
        chunks = {chunk.id: chunk for chunk in self.get(sorted({i for ids in wanted.values() for i in ids}))}
        return {key: [chunks[i] for i in ids if i in chunks] for key, ids in wanted.items()}

    def _count_now(self) -> int:
        """``count()``, read again only after the store's revision has changed."""
        revision = self.revision
        if self._count is None or self._count[0] != revision:
            self._count = (revision, self.count())
        return self._count[1]

    def embeddings(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ``ids`` in the order asked, so selectors need not re-embed candidates.

        Kept in memory per store revision: the selector and the verifier of one query ask for
        the same candidates' vectors.
        """
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        found = self._vectors.get_many(ids, self.revision, self._read_vectors)
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"{len(missing)} chunk(s) are not in the index, e.g. {missing[0]}")
        return np.asarray([found[i] for i in ids], dtype=np.float32)

    def _read_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        result = self._live().get(ids=ids, include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(result["ids"], result["embeddings"])}

    def iter_chunks(self, batch: int = _PAGE) -> Iterator[Chunk]:
        collection, offset = self._live(), 0  # one snapshot: pages of a reopened collection could skip rows
        while True:
            result = collection.get(limit=batch, offset=offset, include=["documents", "metadatas"])
            if not result["ids"]:
                return
            for i, d, m in zip(result["ids"], result["documents"], result["metadatas"]):
                yield _to_chunk(i, d, m)
            offset += len(result["ids"])

    @property
    def revision(self) -> str:
        """Changes whenever chunks are written or deleted (BM25 and caches key on it)."""
        return read_revision(self.index_dir)

    # -- writing ---------------------------------------------------------------------------

    @property
    def max_batch(self) -> int:
        try:
            return int(self.client.get_max_batch_size())
        except Exception:  # older servers do not expose it
            return 1000

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray, *, embedding_model: str) -> None:
        """Write chunks with their vectors, in batches of the client's maximum size."""
        self.check_embedder(embedding_model, int(vectors.shape[1]) if len(vectors) else None)
        if len(chunks) != len(vectors):
            raise StoreError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        collection, step = self._live(), self.max_batch
        for start in range(0, len(chunks), step):
            part = chunks[start : start + step]
            collection.upsert(
                ids=[c.id for c in part],
                embeddings=np.asarray(vectors[start : start + step], dtype=np.float32),
                documents=[c.text for c in part],
                metadatas=[_to_metadata(c) for c in part],
            )
        if chunks:
            self._bump_revision()

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        collection, step = self._live(), self.max_batch
        for start in range(0, len(ids), step):
            collection.delete(ids=ids[start : start + step])
        if ids:
            self._bump_revision()

    def _bump_revision(self) -> None:
        """A new revision; this process's client already shows its own writes, so it stays current."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        revision = uuid.uuid4().hex
        tmp = self.index_dir / f".{REVISION_FILE}.{os.getpid()}.tmp"
        tmp.write_text(revision)
        with _CLIENTS_LOCK:
            os.replace(tmp, self.index_dir / REVISION_FILE)
            if self._opened.revision is not None:
                self._opened.revision = revision


def writer_lock(index_dir: Path) -> Any:
    """An exclusive, non-blocking lock on the index: a second writer gets ``StoreLocked``."""
    from filelock import FileLock, Timeout

    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(index_dir / LOCK_FILE), timeout=0)

    class _Guard:
        def __enter__(self) -> Any:
            try:
                lock.acquire()
            except Timeout:
                raise StoreLocked(
                    f"another process is writing the index at {index_dir}; wait for it to finish "
                    f"(or delete {index_dir / LOCK_FILE} if no ragpipe process is running)"
                ) from None
            return lock

        def __exit__(self, *exc: Any) -> None:
            lock.release()

    return _Guard()
