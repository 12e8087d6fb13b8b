"""One writer per server collection: a lease record kept in the Chroma server itself.

The file lock in the index folder only stops writers that share that folder; two machines (or two
index folders) indexing into one server collection would interleave their writes. So writers of a
server store also take a lease in a companion collection ``<collection>.writer-lock``. Chroma keeps
the first record added under an id and ignores later adds of that id, so when two writers add
their lease at once exactly one reads its own token back: the server is the arbiter, no clock or
shared file is needed. The lease is removed when the run ends; one left by a crashed process on
this host is taken over when that process is gone, one from another host must be removed by hand
(the error says how).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragpipe.config import StoreSettings
from ragpipe.errors import StoreError, StoreLocked

LEASE_ID = "writer"
LOCK_SUFFIX = ".writer-lock"


def lock_collection_name(collection: str) -> str:
    return f"{collection}{LOCK_SUFFIX}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _holder(locks: Any) -> dict[str, Any] | None:
    got = locks.get(ids=[LEASE_ID], include=["metadatas"])
    return got["metadatas"][0] if got["ids"] else None


def _try_add(locks: Any, lease: dict[str, Any]) -> bool:
    locks.add(ids=[LEASE_ID], metadatas=[lease], embeddings=[[0.0]], documents=[""])
    holder = _holder(locks)
    return holder is not None and holder.get("token") == lease["token"]


def _stale(holder: dict[str, Any]) -> bool:
    return holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0)))


@contextlib.contextmanager
def server_writer_lock(settings: StoreSettings, index_dir: Path) -> Iterator[None]:
    """Hold the server collection's write lease for the block (nothing to do for an embedded store)."""
    if settings.kind != "http":
        yield
        return
    from ragpipe.ingest.store import chroma_client

    name = lock_collection_name(settings.collection)
    where = f"http://{settings.host}:{settings.port}/{settings.collection}"
    try:
        locks = chroma_client(settings, index_dir).get_or_create_collection(name, embedding_function=None)
        lease = {"token": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                 "index": str(index_dir), "since": time.time()}
        won = _try_add(locks, lease)
        if not won:
            holder = _holder(locks)
            if holder is not None and _stale(holder):
                locks.delete(ids=[LEASE_ID], where={"token": holder["token"]})
                won = _try_add(locks, lease)
    except StoreError:
        raise
    except Exception as err:
        raise StoreError(f"cannot take the write lease of {where}: {err}") from None
    if not won:
        holder = _holder(locks) or {}
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("since", 0))))
        raise StoreLocked(
            f"another process is writing the server collection {where} (pid {holder.get('pid')} on "
            f"{holder.get('host')}, index {holder.get('index')}, since {since}); wait for it to finish, "
            f"or if it is gone delete the collection '{name}' on the server"
        )
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a lease that cannot be removed is reported stale later
            locks.delete(ids=[LEASE_ID], where={"token": lease["token"]})
