"""Fixtures for ingestion tests: a fast fake embedder, settings pointing at a temp index, the real MiniLM."""

from __future__ import annotations

import pytest

from ragpipe.config import load_settings
from ragpipe.ingest.testing import HashingEmbedder


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def settings():
    return load_settings(chunking__chunk_tokens=40, chunking__overlap_tokens=8)


@pytest.fixture(scope="session")
def minilm():
    """The packaged all-MiniLM-L6-v2 (a few seconds to load; once per test session)."""
    from ragpipe.config import EmbeddingSettings
    from ragpipe.ingest.embed import get_embedder

    return get_embedder(EmbeddingSettings())
