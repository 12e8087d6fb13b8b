"""ragpipe's blocking query-time work runs on its own small pool, never on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ragpipe import Pipeline
from ragpipe.concurrency import DEFAULT_WORKERS, THREAD_PREFIX, run_blocking, set_workers
from ragpipe.config import load_settings
from ragpipe.errors import ConfigError
from ragpipe.ingest.indexer import index_folder
from ragpipe.ingest.store import ChunkStore
from ragpipe.ingest.testing import HashingEmbedder
from ragpipe.llm.scripted import ScriptedLLM

NOTES = {
    "rivers.txt": "The Seine flows through Paris and reaches the sea at Le Havre.",
    "keys.txt": "Rotate the API keys every ninety days from the admin console.",
    "leave.txt": "Employees receive twenty-five days of paid leave per year.",
}
QUESTIONS = ["Which river flows through Paris?", "How often are API keys rotated?", "How much paid leave is there?"]


class RecordingEmbedder(HashingEmbedder):
    """Remembers the thread of every embedding call."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return super().embed(texts, batch_size=batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        return super().embed_query(text)


class RecordingTokenizerLLM(ScriptedLLM):
    """A model whose token counting is blocking work; remembers where it ran."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.threads: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.threads.append(threading.current_thread().name)
        return super().count_tokens(text)


@pytest.fixture(autouse=True)
def _default_pool() -> Iterator[None]:
    yield
    set_workers(DEFAULT_WORKERS)


def _pipeline(tmp_path: Path, llm: ScriptedLLM, embedder: HashingEmbedder, answer: str = "generate",
              **settings: object) -> Pipeline:
    docs = tmp_path / "docs"
    if not docs.exists():
        docs.mkdir()
        for name, text in NOTES.items():
            (docs / name).write_text(text)
        index_folder(docs, load_settings(), embedder=HashingEmbedder())
    loaded = load_settings(**settings)
    store = ChunkStore.open(docs / ".ragpipe", loaded.store, embedding_model=embedder.name)
    index = SimpleNamespace(store=store, embedder=embedder)
    return Pipeline.from_settings(index=index, settings=loaded, llm=llm, method="fast", verify=False,
                                  answer=answer)


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


async def test_retrieval_and_token_counting_run_on_the_pool_threads(tmp_path: Path) -> None:
    embedder = RecordingEmbedder()
    llm = RecordingTokenizerLLM(cycle=["The Seine flows through Paris [1]."], delay_s=0.01)
    pipe = _pipeline(tmp_path, llm, embedder)
    answers = await asyncio.gather(*(pipe.aask(q) for q in QUESTIONS * 2))
    assert all(a.text for a in answers)
    assert embedder.threads and llm.threads
    assert {name.rsplit("_", 1)[0] for name in embedder.threads + llm.threads} == {THREAD_PREFIX}


async def test_auto_answers_embed_the_evidence_sentences_on_the_pool_threads(tmp_path: Path) -> None:
    """``auto`` weighs the generated answer against the best evidence sentence: embedding blocks."""
    embedder = RecordingEmbedder()
    pipe = _pipeline(tmp_path, RecordingTokenizerLLM(cycle=["The Seine flows through Paris [1]."]), embedder,
                     answer="auto")
    answers = await asyncio.gather(*(pipe.aask(q) for q in QUESTIONS))
    assert all(a.text for a in answers)
    assert len(embedder.threads) > len(QUESTIONS)  # the sentences were embedded, besides each question
    assert {name.rsplit("_", 1)[0] for name in embedder.threads} == {THREAD_PREFIX}


async def test_the_pool_runs_no_more_calls_at_once_than_its_size() -> None:
    set_workers(3)
    lock = threading.Lock()
    in_flight, most = 0, 0

    def work() -> str:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.02)  # blocking, as a store read is
        with lock:
            in_flight -= 1
        return threading.current_thread().name

    names = await asyncio.gather(*(run_blocking(work) for _ in range(12)))
    assert most <= 3
    assert len(set(names)) <= 3
    assert len(_pool_threads()) <= 3


def test_many_pipelines_share_one_bounded_pool(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    first = _pipeline(tmp_path, ScriptedLLM(cycle=["The Seine [1]."]), embedder)
    first.ask(QUESTIONS[0])
    threads_after_first = {t.ident for t in threading.enumerate()}
    for question in QUESTIONS * 2:
        pipe = _pipeline(tmp_path, ScriptedLLM(cycle=["The Seine [1]."]), embedder)
        pipe.ask(question)
        del pipe
    pool = _pool_threads()
    assert 1 <= len(pool) <= DEFAULT_WORKERS
    new = {t.name for t in threading.enumerate() if t.ident not in threads_after_first}
    assert not {name for name in new if name.startswith(THREAD_PREFIX)}, new


def test_the_worker_threads_setting_sizes_the_pool(tmp_path: Path) -> None:
    llm = RecordingTokenizerLLM(cycle=["The Seine [1]."])
    pipe = _pipeline(tmp_path, llm, HashingEmbedder(), retrieval__worker_threads=1)
    for question in QUESTIONS:
        pipe.ask(question)
    assert len(set(llm.threads)) == 1


@pytest.mark.parametrize("value", [0, 65, "two"])
def test_a_bad_worker_threads_setting_is_an_error_naming_it(value: object) -> None:
    with pytest.raises(ConfigError, match="retrieval.worker_threads"):
        load_settings(retrieval__worker_threads=value)


def test_a_bad_pool_size_from_code_is_an_error() -> None:
    with pytest.raises(ValueError, match="worker_threads"):
        set_workers(0)


async def test_resizing_the_pool_retires_the_old_threads() -> None:
    await asyncio.gather(*(run_blocking(time.sleep, 0.01) for _ in range(4)))
    old = _pool_threads()
    set_workers(DEFAULT_WORKERS + 1)
    ran_on = await asyncio.gather(*(run_blocking(threading.current_thread) for _ in range(4)))
    for thread in old:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in old)
    assert not set(ran_on) & set(old)  # thread objects, not idents: the OS reuses those
    assert len(_pool_threads()) <= DEFAULT_WORKERS + 1
