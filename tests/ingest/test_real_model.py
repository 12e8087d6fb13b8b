"""The packaged all-MiniLM-L6-v2, offline: vectors, token limits, and an end-to-end index + query."""

from __future__ import annotations

import numpy as np
import pytest

from ragpipe.config import load_settings
from ragpipe.ingest import index_folder, open_index
from ragpipe.ingest.embed import CANONICAL_MINILM, embedder_name

pytestmark = pytest.mark.integration


def test_minilm_vectors_are_normalised(minilm):
    vectors = minilm.embed(["a cat sat on the mat", "stock markets fell sharply", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    query = minilm.embed_query("kitten on a rug")
    assert float(query @ vectors[0]) > float(query @ vectors[1])
    assert minilm.name == CANONICAL_MINILM and minilm.max_tokens == 256


def test_model_aliases_record_one_name():
    from ragpipe.config import EmbeddingSettings

    assert embedder_name(EmbeddingSettings(model="all-MiniLM-L6-v2")) == CANONICAL_MINILM
    assert embedder_name(EmbeddingSettings(model="sentence-transformers/all-minilm-l6-v2")) == CANONICAL_MINILM
    assert embedder_name(EmbeddingSettings(model="/models/e5")) == "/models/e5"


def test_index_and_query_end_to_end(tmp_path, minilm):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "volcano.md").write_text("# Volcanoes\n\nMagma rises through the crust and erupts as lava.\n")
    (docs / "bread.txt").write_text("Knead the dough, let it rise, then bake the bread for forty minutes.")
    (docs / "long.txt").write_text("Tokens matter for embedding models with a fixed window. " * 200)
    settings = load_settings(chunking__chunk_tokens=10_000)  # clamped to the model's 256-token window
    report = index_folder(docs, settings)
    assert sorted(report.added) == ["bread.txt", "long.txt", "volcano.md"]
    index = open_index(docs, settings)
    for chunk in index.store.iter_chunks():
        assert minilm.count_tokens(chunk.text) <= minilm.max_tokens
    hits = index.store.query(index.embedder.embed_query("how is lava formed?"), 2)
    assert hits[0][0].source == "volcano.md" and hits[0][0].headings == ["Volcanoes"]
    assert hits[0][1] > hits[1][1]
    with pytest.raises(Exception, match="embedding model"):
        open_index(docs, load_settings(embedding__model="/some/other/model"))


def test_windowed_chunking_matches_whole_text_with_the_real_tokenizer(minilm):
    """Tokenizing a window of sentences at a time gives MiniLM's chunks of the whole text."""
    from ragpipe.ingest.chunker import Chunker, ChunkPlan
    from ragpipe.ingest.loaders.base import LoadedDocument

    sentences = [f"Ünïcode café item {i} costs {i * 3.5:.1f}€ (see ref. [{i}]) — isn't it? Yes!" for i in range(400)]
    text = " ".join(sentences) + "\n" + "supercalifragilistic, expialidocious " * 300 + " end."  # > a window
    doc = LoadedDocument(text).ensure_segments()
    plan = ChunkPlan.for_embedder(200, 30, minilm.max_tokens)
    whole = Chunker(minilm, plan, window_chars=10**9).chunk(doc, "d", "s").chunks
    windowed = Chunker(minilm, plan, window_chars=500).chunk(doc, "d", "s").chunks
    assert [(c.id, c.start_char, c.end_char) for c in windowed] == [(c.id, c.start_char, c.end_char) for c in whole]
    assert all(minilm.count_tokens(c.text) <= minilm.max_tokens for c in whole)
