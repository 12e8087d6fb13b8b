"""A server collection has one writer at a time, whichever folder or host its writers index from.

The lease logic runs here against an in-process Chroma client (the same storage core a server
uses); tests/ingest/test_chroma_server.py repeats the decisive case through a real ``chroma run``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ragpipe.config import load_settings
from ragpipe.errors import StoreLocked
from ragpipe.ingest import server_lock
from ragpipe.ingest.server_lock import LEASE_ID, lock_collection_name, server_writer_lock


@pytest.fixture
def server(monkeypatch):
    import chromadb

    client = chromadb.EphemeralClient()
    for name in [c.name if hasattr(c, "name") else c for c in client.list_collections()]:
        client.delete_collection(name)
    monkeypatch.setattr("ragpipe.ingest.store.chroma_client", lambda settings, index_dir: client)
    return client


def http_settings():
    return load_settings(store__kind="http", store__port=8123, store__collection="docs").store


def test_a_second_writer_from_another_folder_is_refused_while_the_first_writes(server, tmp_path):
    settings = http_settings()
    with server_writer_lock(settings, tmp_path / "a"):
        with pytest.raises(StoreLocked, match=r"server collection http://127\.0\.0\.1:8123/docs .*index .*a\b"):
            with server_writer_lock(settings, tmp_path / "b"):
                pass
    with server_writer_lock(settings, tmp_path / "b"):  # released: the next writer gets it
        pass
    assert server.get_collection(lock_collection_name("docs")).get()["ids"] == []


def test_the_lease_is_released_when_the_run_fails(server, tmp_path):
    settings = http_settings()
    with pytest.raises(RuntimeError), server_writer_lock(settings, tmp_path / "a"):
        raise RuntimeError("embedding failed")
    with server_writer_lock(settings, tmp_path / "b"):
        pass


def test_of_two_simultaneous_adds_exactly_one_wins(server):
    locks = server.get_or_create_collection("docs.writer-lock", embedding_function=None)
    first = {"token": "t1", "host": "h", "pid": 1, "index": "a", "since": 0.0}
    second = {**first, "token": "t2", "index": "b"}
    assert server_lock._try_add(locks, first) is True
    assert server_lock._try_add(locks, second) is False


def test_a_lease_left_by_a_dead_process_on_this_host_is_taken_over(server, tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    locks = server.get_or_create_collection("docs.writer-lock", embedding_function=None)
    locks.add(ids=[LEASE_ID], embeddings=[[0.0]], documents=[""],
              metadatas=[{"token": "old", "host": socket.gethostname(), "pid": int(dead.stdout), "index": "x",
                          "since": 0.0}])
    with server_writer_lock(http_settings(), tmp_path / "a"):
        assert locks.get(ids=[LEASE_ID])["metadatas"][0]["token"] != "old"


def test_a_lease_from_another_host_is_not_broken(server, tmp_path):
    locks = server.get_or_create_collection("docs.writer-lock", embedding_function=None)
    locks.add(ids=[LEASE_ID], embeddings=[[0.0]], documents=[""],
              metadatas=[{"token": "other", "host": "build-7", "pid": 1, "index": "/srv/idx", "since": 0.0}])
    with pytest.raises(StoreLocked, match="pid 1 on build-7.*delete the collection 'docs.writer-lock'"):
        with server_writer_lock(http_settings(), tmp_path / "a"):
            pass


def test_an_embedded_store_takes_no_server_lease(tmp_path, monkeypatch):
    monkeypatch.setattr("ragpipe.ingest.store.chroma_client", lambda *a: pytest.fail("no client needed"))
    with server_writer_lock(load_settings().store, tmp_path):
        pass
