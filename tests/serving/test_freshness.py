"""A long-lived process sees what another process indexed into the same embedded store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ragpipe.config import load_settings
from ragpipe.ingest.indexer import index_folder
from ragpipe.ingest.store import ChunkStore
from ragpipe.ingest.testing import HashingEmbedder
from ragpipe.retrieve import Retriever

ROOT = Path(__file__).resolve().parents[2]
OLD = {
    "birds.txt": "Kingfishers dive for fish in clear streams.",
    "install.txt": "Run pip install ragpipe to install the package on Linux.",
}
NEW = ("zeta.txt", "The zeta protocol QX9 encrypts telemetry packets end to end.")
QUESTION = "zeta protocol QX9 telemetry"


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in OLD.items():
        (docs / name).write_text(text)
    return docs


def _in_other_process(code: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def _top_sources(retriever: Retriever, mode: str) -> list[str]:
    return [Path(hit.chunk.source).name for hit in retriever.retrieve(QUESTION, k=1, mode=mode)]


def test_dense_and_bm25_see_chunks_another_process_indexed(tmp_path: Path) -> None:
    docs, settings, embedder, store = _indexed(tmp_path)
    retriever = Retriever(store, embedder, settings.retrieval)
    assert _top_sources(retriever, "dense") != ["zeta.txt"]  # the old index is loaded and searched

    (docs / NEW[0]).write_text(NEW[1])
    _in_other_process(f"""
        from ragpipe.config import load_settings
        from ragpipe.ingest.indexer import index_folder
        from ragpipe.ingest.testing import HashingEmbedder
        index_folder({str(docs)!r}, load_settings(), embedder=HashingEmbedder())
    """)

    for mode in ("dense", "bm25", "hybrid"):
        assert _top_sources(retriever, mode) == ["zeta.txt"], mode


def _indexed(tmp_path: Path) -> tuple[Path, Any, HashingEmbedder, ChunkStore]:
    """A small folder indexed in this process, and its store opened as a long-lived reader would."""
    docs = _docs(tmp_path)
    settings = load_settings()
    embedder = HashingEmbedder()
    index_folder(docs, settings, embedder=embedder)
    return docs, settings, embedder, ChunkStore.open(docs / ".ragpipe", settings.store, embedding_model=embedder.name)


def test_an_unchanged_index_is_not_reopened_between_queries(tmp_path: Path) -> None:
    docs, settings, embedder, store = _indexed(tmp_path)
    retriever = Retriever(store, embedder, settings.retrieval)
    client, collection = store.client, store.collection
    for mode in ("dense", "bm25", "hybrid"):
        assert _top_sources(retriever, mode) != ["zeta.txt"]
        assert Path(retriever.retrieve("Kingfishers fish", k=1, mode=mode)[0].chunk.source).name == "birds.txt"
    assert store.client is client and store.collection is collection


def test_this_process_own_writes_need_no_reopen(tmp_path: Path) -> None:
    docs, settings, embedder, store = _indexed(tmp_path)
    retriever = Retriever(store, embedder, settings.retrieval)
    retriever.retrieve("Kingfishers", k=1)
    client = store.client

    (docs / NEW[0]).write_text(NEW[1])
    index_folder(docs, settings, embedder=embedder)  # same process: the writes go through the same client

    assert _top_sources(retriever, "dense") == ["zeta.txt"]
    assert store.client is client


@pytest.mark.slow
async def test_a_pipeline_sees_a_cli_reindex_with_the_real_embedder(tmp_path: Path) -> None:
    from ragpipe import Pipeline
    from ragpipe.llm.scripted import ScriptedLLM

    docs = _docs(tmp_path)
    pipe = Pipeline.from_settings(docs, llm=ScriptedLLM(echo=True), method="fast", verify=False,
                                  answer="extractive")
    retriever = Retriever(pipe.index.store, pipe.index.embedder, pipe.ctx.settings.retrieval)
    before = await pipe.aevidence(QUESTION)
    assert "zeta.txt" not in {Path(e.chunk.source).name for e in before.evidence}

    (docs / NEW[0]).write_text(NEW[1])
    _in_other_process(f"""
        import sys
        from ragpipe.cli import main
        sys.exit(main(["index", {str(docs)!r}]))
    """)

    after = await pipe.aevidence(QUESTION)
    assert Path(after.evidence[0].chunk.source).name == "zeta.txt"
    for mode in ("dense", "bm25"):
        assert _top_sources(retriever, mode) == ["zeta.txt"], mode


def test_a_write_after_another_process_wrote_keeps_both_writes(tmp_path: Path) -> None:
    docs, settings, embedder, store = _indexed(tmp_path)
    Retriever(store, embedder, settings.retrieval).retrieve("Kingfishers", k=1, mode="dense")

    (docs / NEW[0]).write_text(NEW[1])
    _in_other_process(f"""
        from ragpipe.config import load_settings
        from ragpipe.ingest.indexer import index_folder
        from ragpipe.ingest.testing import HashingEmbedder
        index_folder({str(docs)!r}, load_settings(), embedder=HashingEmbedder())
    """)
    (docs / "owls.txt").write_text("Barn owls hunt voles at dusk over open meadows.")
    index_folder(docs, settings, embedder=embedder)  # this process writes next, through its older client

    _in_other_process(f"""
        from pathlib import Path
        from ragpipe.config import load_settings
        from ragpipe.ingest.store import ChunkStore
        from ragpipe.ingest.testing import HashingEmbedder
        from ragpipe.retrieve import Retriever
        embedder = HashingEmbedder()
        store = ChunkStore.open(Path({str(docs / ".ragpipe")!r}), load_settings().store, embedding_model=embedder.name)
        retriever = Retriever(store, embedder)
        for question, wanted in (({QUESTION!r}, "zeta.txt"), ("barn owls voles dusk", "owls.txt")):
            top = [Path(h.chunk.source).name for h in retriever.retrieve(question, k=1, mode="dense")]
            assert top == [wanted], (question, top)
    """)
