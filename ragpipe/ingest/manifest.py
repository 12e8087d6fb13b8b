"""The index manifest: which source is indexed, at which content hash, as which chunk ids.

SQLite (stdlib, transactional, crash-safe) in the index folder. A source's row is written only
*after* its chunks are in the store, so a run killed at any point leaves rows that describe
chunks that really exist; the next run redoes whatever has no row. ``clean`` is false while a
run is in progress: if a run died, the next one deletes the chunks it had announced as
``pending`` (written ahead of every upsert) that no row owns. Only announced ids are ever swept,
so a collection shared with other indexes (a Chroma server) is never touched beyond our own chunks.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MANIFEST_FILE = "manifest.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    key TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    chunk_ids TEXT NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (chunk_id TEXT PRIMARY KEY);
"""


@dataclass(frozen=True)
class ManifestEntry:
    key: str
    doc_id: str
    hash: str
    size: int
    mtime: float
    chunk_ids: tuple[str, ...]
    error: str | None = None  # why this content could not be indexed (not retried until it changes)


class Manifest:
    """Per-source rows plus a few index-wide facts (embedding model, clean flag)."""

    def __init__(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        self.path = index_dir / MANIFEST_FILE
        # Writes may come from the indexer's writer thread; the indexer serialises them.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def exists(cls, index_dir: Path) -> bool:
        return (index_dir / MANIFEST_FILE).is_file()

    def close(self) -> None:
        self._db.close()

    def entries(self) -> dict[str, ManifestEntry]:
        rows = self._db.execute("SELECT key, doc_id, hash, size, mtime, chunk_ids, error FROM sources")
        return {
            key: ManifestEntry(key, doc_id, hash_, size, mtime, tuple(json.loads(ids)), error)
            for key, doc_id, hash_, size, mtime, ids, error in rows
        }

    def put(self, entries: Iterable[ManifestEntry]) -> None:
        rows = [(e.key, e.doc_id, e.hash, e.size, e.mtime, json.dumps(list(e.chunk_ids)), e.error) for e in entries]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def touch(self, key: str, size: int, mtime: float) -> None:
        """Same content, new stat: remember the stat so the next run skips hashing it."""
        self._db.execute("UPDATE sources SET size = ?, mtime = ? WHERE key = ?", (size, mtime, key))

    def remove(self, keys: Iterable[str]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM sources WHERE key = ?", [(k,) for k in keys])

    def add_pending(self, chunk_ids: Iterable[str]) -> None:
        """Announce chunk ids about to be upserted (write-ahead, so a crash cannot orphan them)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR IGNORE INTO pending VALUES (?)", [(i,) for i in chunk_ids])

    def pending(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT chunk_id FROM pending")}

    def clear_pending(self) -> None:
        self._db.execute("DELETE FROM pending")

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def clean(self) -> bool:
        return self.get_meta("clean") != "false"

    def mark(self, *, clean: bool) -> None:
        """Record whether a run is in progress (and by which process, for readers to tell a dead one)."""
        self.set_meta("clean", "true" if clean else "false")
        self.set_meta("writer_pid", "" if clean else str(os.getpid()))


def run_state(index_dir: Path) -> str | None:
    """``None`` when the last run finished, ``"running"`` while its process lives, else ``"interrupted"``.

    Read-only and lock-free, so asking never delays or blocks a run that is writing.
    """
    path = index_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(path, timeout=2)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('clean', 'writer_pid')").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if meta.get("clean") != "false":
        return None
    return "running" if _alive(meta.get("writer_pid", "")) else "interrupted"


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
