"""Embedders: text -> L2-normalised float32 vectors, plus the tokenizer that chunking budgets with.

The default is the packaged all-MiniLM-L6-v2 run by sentence-transformers, loaded offline.
``OpenAIEmbedder`` calls any OpenAI-compatible ``/v1/embeddings`` server (OpenAI, vLLM, TEI) for
when embedding moves off this machine. Heavy imports (torch, sentence-transformers) happen only
when a model is actually built, so an unchanged re-index never pays for them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ragpipe.config import EmbeddingSettings
from ragpipe.errors import ConfigError, LLMUnavailable, MissingExtraError
from ragpipe.models import MINILM_NAMES, resolve_embedding_model

CANONICAL_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# Default batch sizes when embedding.batch_size is unset. On CPU small batches win (less padding;
# 16 vs 64 was 27 vs 22 texts/s for MiniLM on 150-token chunks), on a GPU larger ones do.
CPU_BATCH_SIZE = 16
ACCELERATOR_BATCH_SIZE = 64


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class OffsetTokenizer(Protocol):
    """What the chunker needs: token character offsets of a text (no special tokens)."""

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...


def embedder_name(settings: EmbeddingSettings) -> str:
    """The model id recorded in an index, computed without loading the model.

    The packaged MiniLM answers to several names; they all record as the hub id so an index built
    with ``all-MiniLM-L6-v2`` opens with ``sentence-transformers/all-MiniLM-L6-v2`` and vice versa.
    """
    model = settings.model.strip()
    if settings.backend == "sentence-transformers" and model.lower() in MINILM_NAMES:
        return CANONICAL_MINILM
    return model


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded from a local folder (or the offline hub cache)."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as err:  # pragma: no cover - a core dependency
            raise MissingExtraError("sentence-transformers", None, "embedding") from err
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress display reports the run
        location = resolve_embedding_model(settings.model)
        device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = SentenceTransformer(location, device=device, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"embedding model '{settings.model}' could not be loaded offline ({err.__class__.__name__}); "
                "set embedding.model to a local sentence-transformers folder"
            ) from None
        self.name = embedder_name(settings)
        self.device = device
        self.batch_size = settings.batch_size or (CPU_BATCH_SIZE if device == "cpu" else ACCELERATOR_BATCH_SIZE)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed many texts in one call: sentence-transformers sorts them by length to cut padding."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees, special tokens included (what ``max_tokens`` limits)."""
        return len(self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        # verbose=False: whole sections are tokenized on purpose, longer than the model's limit.
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]


class OpenAIEmbedder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint.

    Token counts use the model's Hugging Face tokenizer when ``embedding.model`` is a local folder;
    otherwise a word-piece estimate that errs high (1 token per 3 characters), so chunks stay
    under the server's limit.
    """

    DEFAULT_MAX_TOKENS = 512

    def __init__(self, settings: EmbeddingSettings) -> None:
        from openai import OpenAI

        if not settings.base_url:
            raise ConfigError("embedding.base_url must be set for the openai embedding backend")
        api_key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        self.client = OpenAI(base_url=settings.base_url, api_key=api_key or "not-needed")
        self.name = embedder_name(settings)
        self.batch_size = settings.batch_size or ACCELERATOR_BATCH_SIZE
        self.max_tokens = self.DEFAULT_MAX_TOKENS
        self._tokenizer = self._local_tokenizer(settings.model)
        self._dim: int | None = None

    @staticmethod
    def _local_tokenizer(model: str) -> Any | None:
        if not Path(model).expanduser().is_dir():
            return None
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(Path(model).expanduser()), local_files_only=True)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        size = batch_size or self.batch_size
        rows: list[list[float]] = []
        for start in range(0, len(texts), size):
            batch = list(texts[start : start + size])
            try:
                response = self.client.embeddings.create(model=self.name, input=batch)
            except Exception as err:  # the openai client raises many connection/HTTP types
                raise LLMUnavailable(f"embedding server {self.client.base_url} failed: {err}") from err
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        vectors = _normalise(np.asarray(rows, dtype=np.float32))
        self._dim = int(vectors.shape[1])
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer(text, add_special_tokens=True)["input_ids"])
        return len(text) // 3 + 2

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        if self._tokenizer is not None:
            encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            return [tuple(span) for span in encoded["offset_mapping"]]
        return [(i, min(i + 3, len(text))) for i in range(0, len(text), 3)]


@functools.lru_cache(maxsize=4)
def _cached_embedder(settings_json: str) -> Embedder:
    settings = EmbeddingSettings.model_validate_json(settings_json)
    if settings.backend == "openai":
        return OpenAIEmbedder(settings)
    return SentenceTransformerEmbedder(settings)


def get_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder for these settings, built once per process (models are expensive to load)."""
    return _cached_embedder(settings.model_dump_json())


def get_index_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder for indexing: on CPU the ONNX export when there is one, else the configured model.

    The export gives the same vectors (checked when it was made) without importing torch and
    sentence-transformers, which cost seconds and about 400 MB of resident memory per process.
    With an accelerator the configured model runs there instead: batches of chunks are where a
    GPU pays.
    """
    if not _accelerator_possible(settings):
        from ragpipe.ingest.onnx_encoder import load_onnx_embedder

        fast = load_onnx_embedder(settings)
        if fast is not None:
            return fast
    return get_embedder(settings)


def _accelerator_possible(settings: EmbeddingSettings) -> bool:
    """Whether sentence-transformers could run on a GPU (``cuda``: NVIDIA or ROCm), judged without torch."""
    if settings.device is not None:
        return settings.device != "cpu"
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()


def get_query_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder for questions: the ONNX export when there is one, else the configured model.

    Loading sentence-transformers here also exports it (once per model), so the next process
    starts without torch.
    """
    from ragpipe.ingest.onnx_encoder import export_onnx_encoder, load_onnx_embedder

    fast = load_onnx_embedder(settings)
    if fast is not None:
        return fast
    embedder = get_embedder(settings)
    if isinstance(embedder, SentenceTransformerEmbedder):
        export_onnx_encoder(embedder, settings)
    return embedder

