"""Fixtures for ingestion tests: a fast fake embedder, settings pointing at a temp index, the real MiniLM."""

from __future__ import annotations

import pytest

from tests.ingest.fixtures import embedder, settings  # noqa: F401 - shared with tests/faults


@pytest.fixture(scope="session")
def minilm():
    """The packaged all-MiniLM-L6-v2 (a few seconds to load; once per test session)."""
    from ragpipe.config import EmbeddingSettings
    from ragpipe.ingest.embed import get_embedder

    return get_embedder(EmbeddingSettings())
