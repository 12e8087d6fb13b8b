"""Server mode: index into a real ``chroma run`` on 127.0.0.1, then query it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from ragpipe.config import load_settings
from ragpipe.ingest import index_folder
from ragpipe.ingest.store import ChunkStore
from tests.ingest.fixtures import write_corpus

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    if shutil.which("chroma") is None:
        pytest.skip("the chroma CLI is not installed")
    port = free_port()
    proc = subprocess.Popen(
        ["chroma", "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("chroma run exited early")
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("chroma run did not start listening")
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def test_index_and_query_through_a_chroma_server(tmp_path, chroma_server, embedder):
    docs = write_corpus(tmp_path / "docs", n_files=4)
    settings = load_settings(
        store__kind="http", store__port=chroma_server, store__path=str(tmp_path / "sidecar"),
        chunking__chunk_tokens=40,
    )
    report = index_folder(docs, settings, embedder=embedder)
    assert len(report.added) == 4 and report.chunks_total == report.chunks_added > 0
    assert not (tmp_path / "sidecar" / "chroma").exists()  # the vectors live in the server
    assert (tmp_path / "sidecar" / "manifest.sqlite3").is_file()
    store = ChunkStore.open(tmp_path / "sidecar", settings.store, embedding_model=embedder.name)
    best, score = store.query(embedder.embed_query("topic2 item2x3"), 1)[0]
    assert best.source == "doc02.txt" and 0 < score <= 1
    (docs / "doc03.txt").unlink()
    again = index_folder(docs, settings, embedder=embedder)
    assert again.removed == ["doc03.txt"]
    assert "doc03.txt" not in {c.source for c in store.iter_chunks()}


def test_two_index_folders_cannot_write_one_server_collection_at_once(tmp_path, chroma_server, embedder):
    from ragpipe.errors import StoreLocked
    from ragpipe.ingest.server_lock import server_writer_lock

    docs = write_corpus(tmp_path / "docs", n_files=2)
    first = load_settings(store__kind="http", store__port=chroma_server, store__path=str(tmp_path / "worker1"))
    second = load_settings(store__kind="http", store__port=chroma_server, store__path=str(tmp_path / "worker2"))
    with server_writer_lock(first.store, tmp_path / "worker1"):
        with pytest.raises(StoreLocked, match="another process is writing the server collection"):
            index_folder(docs, second, embedder=embedder)
    assert len(index_folder(docs, second, embedder=embedder).added) == 2  # free again once the first is done
