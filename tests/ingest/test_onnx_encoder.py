"""The torch-free query encoder: same vectors and token counts as sentence-transformers, safe caching."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from ragpipe.config import EmbeddingSettings, load_settings
from ragpipe.ingest import index_folder, onnx_encoder, open_index
from ragpipe.ingest.embed import SentenceTransformerEmbedder, get_query_embedder
from ragpipe.ingest.onnx_encoder import OnnxEmbedder, encoder_dir, export_onnx_encoder, load_onnx_embedder

pytestmark = pytest.mark.integration

TEXTS = [
    "How is lava formed?",
    "Naïve café owners in São Paulo price espresso at R$ 7,50 — “cheap”.",
    "Tokens matter for embedding models with a fixed window. " * 120,  # longer than 256 tokens
    "",
    "line one\nline two\ttabbed",
]


@pytest.fixture(scope="module")
def exported(minilm, tmp_path_factory):
    settings = EmbeddingSettings(encoder_cache=str(tmp_path_factory.mktemp("encoders")))
    folder = export_onnx_encoder(minilm, settings)
    assert folder is not None and folder == encoder_dir(settings)
    return settings, folder


def test_export_gives_the_same_vectors_and_tokens(minilm, exported):
    settings, folder = exported
    fast = load_onnx_embedder(settings)
    assert isinstance(fast, OnnxEmbedder)
    assert (fast.name, fast.dim, fast.max_tokens) == (minilm.name, minilm.dim, minilm.max_tokens)
    assert np.abs(fast.embed(TEXTS) - minilm.embed(TEXTS)).max() < 1e-4
    assert np.abs(fast.embed_query(TEXTS[0]) - minilm.embed_query(TEXTS[0])).max() < 1e-4
    for text in TEXTS:
        assert fast.count_tokens(text) == minilm.count_tokens(text)
        assert fast.token_offsets(text) == minilm.token_offsets(text)
    meta = json.loads((folder / onnx_encoder.META_FILE).read_text())
    assert meta["parity_max_abs_diff"] < 1e-4 and meta["pooling"] == "mean"
    assert fast.embed([]).shape == (0, minilm.dim)


def test_second_export_is_a_no_op_and_torch_runtime_skips_it(minilm, exported):
    settings, folder = exported
    before = (folder / onnx_encoder.MODEL_FILE).stat().st_mtime_ns
    assert export_onnx_encoder(minilm, settings) == folder
    assert (folder / onnx_encoder.MODEL_FILE).stat().st_mtime_ns == before
    torch_only = settings.model_copy(update={"query_runtime": "torch"})
    assert load_onnx_embedder(torch_only) is None
    assert isinstance(get_query_embedder(torch_only), SentenceTransformerEmbedder)


def test_damaged_cache_falls_back_to_sentence_transformers(minilm, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="ragpipe.ingest")  # the CLI quietens this logger
    settings = EmbeddingSettings(encoder_cache=str(tmp_path))
    folder = encoder_dir(settings)
    folder.mkdir(parents=True)
    (folder / onnx_encoder.META_FILE).write_text(json.dumps({"name": minilm.name, "dim": 384, "max_seq_length": 256,
                                                            "pooling": "mean", "inputs": ["input_ids"]}))
    (folder / onnx_encoder.TOKENIZER_FILE).write_text("{}")
    (folder / onnx_encoder.MODEL_FILE).write_bytes(b"not an onnx model")
    assert load_onnx_embedder(settings) is None
    assert "unusable" in caplog.text
    assert isinstance(get_query_embedder(settings), SentenceTransformerEmbedder)


def test_failed_export_leaves_nothing_half_written_and_is_not_retried(minilm, tmp_path, monkeypatch):
    settings = EmbeddingSettings(encoder_cache=str(tmp_path))
    monkeypatch.setattr(onnx_encoder, "PARITY_TOLERANCE", -1.0)  # no export can pass the check
    assert export_onnx_encoder(minilm, settings) is None
    folder = encoder_dir(settings)
    assert sorted(p.name for p in folder.iterdir()) == [onnx_encoder.FAILED_FILE]
    assert "differ" in json.loads((folder / onnx_encoder.FAILED_FILE).read_text())["error"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]

    def must_not_run(*args, **kwargs):
        raise AssertionError("a failed export is retried")

    monkeypatch.setattr(onnx_encoder, "_write_export", must_not_run)
    assert export_onnx_encoder(minilm, settings) is None
    assert load_onnx_embedder(settings) is None


def test_models_of_another_shape_are_not_exported(minilm, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_encoder, "_export_shape", lambda model: None)
    settings = EmbeddingSettings(encoder_cache=str(tmp_path))
    assert export_onnx_encoder(minilm, settings) is None
    assert not encoder_dir(settings).exists()


def test_indexing_leaves_an_encoder_that_queries_use(minilm, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "volcano.md").write_text("# Volcanoes\n\nMagma rises through the crust and erupts as lava.\n")
    (docs / "bread.txt").write_text("Knead the dough, let it rise, then bake the bread for forty minutes.")
    settings = load_settings(embedding__encoder_cache=str(tmp_path / "encoders"))
    index_folder(docs, settings)
    index = open_index(docs, settings)
    assert isinstance(index.embedder, OnnxEmbedder)
    question = "how is lava formed?"
    fast_hits = index.store.query(index.embedder.embed_query(question), 2)
    torch_hits = index.store.query(minilm.embed_query(question), 2)
    assert [c.id for c, _ in fast_hits] == [c.id for c, _ in torch_hits]
    assert fast_hits[0][1] == pytest.approx(torch_hits[0][1], abs=1e-4)


def test_a_second_folder_is_indexed_with_the_export_on_cpu(minilm, tmp_path, monkeypatch):
    settings = load_settings(embedding__encoder_cache=str(tmp_path / "encoders"), embedding__device="cpu")
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, text in ((first, "Magma rises through the crust and erupts as lava."),
                         (second, "Knead the dough, let it rise, then bake the bread.")):
        folder.mkdir()
        (folder / "note.txt").write_text(text)
    index_folder(first, settings)  # loads sentence-transformers and leaves the export
    def torch_model(settings):
        raise AssertionError("sentence-transformers loaded")

    monkeypatch.setattr("ragpipe.ingest.embed.get_embedder", torch_model)
    index_folder(second, settings)
    index = open_index(second, settings)
    hits = index.store.query(minilm.embed_query("how is bread baked?"), 1)
    assert hits[0][1] == pytest.approx(float(minilm.embed(["Knead the dough, let it rise, then bake the bread."])[0]
                                             @ minilm.embed_query("how is bread baked?")), abs=1e-4)


def test_indexing_on_a_gpu_keeps_the_configured_model(exported, monkeypatch):
    from ragpipe.ingest import embed

    settings, _ = exported
    monkeypatch.setattr(embed, "get_embedder", lambda s: "configured model")
    assert isinstance(embed.get_index_embedder(settings.model_copy(update={"device": "cpu"})), OnnxEmbedder)
    assert embed.get_index_embedder(settings.model_copy(update={"device": "cuda"})) == "configured model"
    torch_only = settings.model_copy(update={"device": "cpu", "query_runtime": "torch"})
    assert embed.get_index_embedder(torch_only) == "configured model"
