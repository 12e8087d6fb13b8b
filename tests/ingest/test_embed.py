"""Embedder plumbing that needs no model: the OpenAI-compatible backend and the per-process cache."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ragpipe.config import EmbeddingSettings
from ragpipe.errors import ConfigError, LLMUnavailable
from ragpipe.ingest.embed import OpenAIEmbedder, get_embedder


class FakeEmbeddings:
    """Answers like /v1/embeddings, deliberately out of order, and records batch sizes."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail

    def create(self, model: str, input: list[str]):  # noqa: A002 - the OpenAI client's name
        if self.fail:
            raise ConnectionError("connection refused")
        self.batches.append(len(input))
        data = [SimpleNamespace(index=i, embedding=[float(len(t)), 3.0, 4.0]) for i, t in enumerate(input)]
        return SimpleNamespace(data=list(reversed(data)))


def openai_embedder(fail: bool = False) -> OpenAIEmbedder:
    embedder = OpenAIEmbedder(
        EmbeddingSettings(backend="openai", model="text-embedding-3-small", base_url="http://127.0.0.1:9/v1", batch_size=2)
    )
    embedder.client = SimpleNamespace(embeddings=FakeEmbeddings(fail), base_url="http://127.0.0.1:9/v1")
    return embedder


def test_openai_embedder_batches_orders_and_normalises():
    embedder = openai_embedder()
    vectors = embedder.embed(["a", "bbb", "cc", "dddd", "e"])
    assert embedder.client.embeddings.batches == [2, 2, 1]
    assert vectors.shape == (5, 3) and embedder.dim == 3
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1][0] > vectors[0][0]  # rows follow the input order, not the server's
    assert embedder.name == "text-embedding-3-small"


def test_openai_embedder_token_estimate_errs_high():
    embedder = openai_embedder()
    text = "word " * 100
    assert embedder.count_tokens(text) >= 100 + 2
    offsets = embedder.token_offsets("abcdefgh")
    assert offsets[0] == (0, 3) and offsets[-1][1] == 8


def test_openai_embedder_failure_is_an_llm_unavailable():
    with pytest.raises(LLMUnavailable, match="embedding server"):
        openai_embedder(fail=True).embed(["x"])


def test_openai_backend_needs_a_base_url():
    with pytest.raises(ConfigError, match="base_url"):
        get_embedder(EmbeddingSettings(backend="openai", model="m"))


def test_batch_size_defaults_to_small_batches_on_cpu_and_keeps_an_explicit_one(minilm):
    from ragpipe.ingest.embed import ACCELERATOR_BATCH_SIZE, CPU_BATCH_SIZE

    assert EmbeddingSettings().batch_size is None
    assert minilm.device != "cpu" or minilm.batch_size == CPU_BATCH_SIZE
    remote = OpenAIEmbedder(EmbeddingSettings(backend="openai", model="m", base_url="http://127.0.0.1:9/v1"))
    assert remote.batch_size == ACCELERATOR_BATCH_SIZE
    assert openai_embedder().batch_size == 2


def test_missing_sentence_transformers_names_the_package_not_an_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ragpipe.errors import MissingExtraError
    from ragpipe.ingest.embed import SentenceTransformerEmbedder

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import -> ImportError
    with pytest.raises(MissingExtraError) as err:
        SentenceTransformerEmbedder(EmbeddingSettings())
    assert "pip install 'sentence-transformers'" in str(err.value)
    assert "ragpipe[" not in str(err.value)  # no extra carries it: it is a core dependency
