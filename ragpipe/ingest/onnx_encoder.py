"""A torch-free copy of the sentence-transformers model for query time (ONNX Runtime + tokenizers).

Importing torch and sentence-transformers costs seconds per process (8-10 s on 2 CPU cores),
far more than embedding one question. So, once a sentence-transformers model has been loaded
for indexing, its transformer is exported to ONNX into a cache folder keyed by the model's
files. Later processes embed questions (and METEORA rationales) with ONNX Runtime, which loads
in under half a second and returns the same vectors: an export is published only after the two
runtimes agree on probe texts (max absolute difference <= ``PARITY_TOLERANCE``).

Only the common shape is exported: ``Transformer -> Pooling (mean or cls) [-> Normalize]``.
Anything else, or any failure, leaves the torch path in place; a failed export is remembered
(``failed.json``) so it is not retried on every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragpipe.config import EmbeddingSettings
from ragpipe.models import resolve_embedding_model

if TYPE_CHECKING:
    from ragpipe.ingest.embed import SentenceTransformerEmbedder

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PARITY_TOLERANCE = 1e-4
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "encoder.json"
FAILED_FILE = "failed.json"
PROBE_TEXTS = (
    "How often are API keys rotated?",
    "Zürich's café serves crème brûlée — 42 € per 2 people; 東京 too.",
    "A long passage that runs past the model's token limit. " * 80,
    "x",
)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _model_folder(settings: EmbeddingSettings) -> Path | None:
    folder = Path(resolve_embedding_model(settings.model)).expanduser()
    return folder if (folder / "modules.json").is_file() else None


def cache_key(settings: EmbeddingSettings) -> str | None:
    """A key that changes when the model's files change; None when the model is not a local folder."""
    folder = _model_folder(settings)
    if folder is None:
        return None
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{folder.resolve()}".encode())
    for path in sorted(folder.rglob("*.json")) + [folder / name for name in _WEIGHT_FILES]:
        if path.is_file():
            stat = path.stat()
            digest.update(f"|{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def encoder_dir(settings: EmbeddingSettings) -> Path | None:
    """Where this model's ONNX export lives (or would live)."""
    key = cache_key(settings)
    return Path(settings.encoder_cache).expanduser() / key if key else None


class OnnxEmbedder:
    """The ``Embedder`` protocol over an exported model: same name, dimension and vectors."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        self.name: str = meta["name"]
        self.dim: int = int(meta["dim"])
        self.max_tokens: int = int(meta["max_seq_length"])
        self.batch_size = 32
        self._pooling: str = meta["pooling"]
        self._inputs: list[str] = list(meta["inputs"])
        self._counter = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self._tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer.enable_padding(pad_id=int(meta.get("pad_id", 0)))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = min(4, os.cpu_count() or 1)
        # No busy-waiting between runs: queries arrive one at a time, beside an LLM using the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = batch_size or self.batch_size
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            out[rows] = self._embed_batch([texts[i] for i in rows])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encoded = self._tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        hidden = self._session.run(None, {name: arrays[name] for name in self._inputs})[0]
        if self._pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = arrays["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=True).ids)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [tuple(span) for span in self._counter.encode(text, add_special_tokens=False).offsets]


def load_onnx_embedder(settings: EmbeddingSettings) -> OnnxEmbedder | None:
    """The exported encoder for these settings, or None when there is none (or it will not load)."""
    if settings.backend != "sentence-transformers" or settings.query_runtime == "torch":
        return None
    folder = encoder_dir(settings)
    if folder is None or not (folder / META_FILE).is_file():
        return None
    try:
        return OnnxEmbedder(folder)
    except Exception as err:  # a damaged cache entry must never break a query: use torch instead
        log.warning("ONNX query encoder in %s unusable (%s); using sentence-transformers", folder, err)
        return None


def _export_shape(model: Any) -> tuple[str, Any] | None:
    """(pooling, transformer module) when the model is Transformer -> Pooling [-> Normalize]."""
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    pooling = modules[1]
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None and hasattr(pooling, "get_pooling_mode_str"):
        mode = pooling.get_pooling_mode_str()
    if mode not in ("mean", "cls") or not hasattr(modules[0], "auto_model"):
        return None
    return str(mode), modules[0].auto_model


def _write_export(embedder: SentenceTransformerEmbedder, pooling: str, transformer: Any, target: Path) -> None:
    import torch

    tokenizer = embedder.model.tokenizer
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(inputs, args, strict=True))).last_hidden_state

    sample = tokenizer(["an example", "another, longer example"], return_tensors="pt", padding=True)
    axes = {n: {0: "batch", 1: "tokens"} for n in inputs} | {"hidden": {0: "batch", 1: "tokens"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes; the parity check is what decides
        torch.onnx.export(
            Encoder(transformer.eval()), tuple(sample[n] for n in inputs), str(target / MODEL_FILE),
            input_names=inputs, output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False,
        )
    tokenizer.backend_tokenizer.save(str(target / TOKENIZER_FILE))
    meta = {
        "format": FORMAT_VERSION, "name": embedder.name, "dim": embedder.dim,
        "max_seq_length": embedder.max_tokens, "pooling": pooling, "inputs": inputs,
        "pad_id": int(tokenizer.pad_token_id or 0),
    }
    (target / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def export_onnx_encoder(embedder: SentenceTransformerEmbedder, settings: EmbeddingSettings) -> Path | None:
    """Export ``embedder``'s model for query time unless done (or failed) before; never raises.

    Written to a temporary folder and renamed into place only after the parity check, so a run
    killed mid-export leaves no half-written encoder behind.
    """
    if settings.query_runtime == "torch":
        return None
    folder = encoder_dir(settings)
    if folder is None or (folder / META_FILE).is_file() or (folder / FAILED_FILE).is_file():
        return folder if folder is not None and (folder / META_FILE).is_file() else None
    shape = _export_shape(embedder.model)
    if shape is None:
        return None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    except OSError as err:
        log.info("no ONNX query encoder: cache %s not writable (%s)", folder.parent, err)
        return None
    try:
        _write_export(embedder, *shape, staging)
        worst = float(np.abs(OnnxEmbedder(staging).embed(PROBE_TEXTS) - embedder.embed(PROBE_TEXTS)).max())
        if worst > PARITY_TOLERANCE:
            raise ValueError(f"ONNX vectors differ from sentence-transformers by {worst:.2e}")
        meta = json.loads((staging / META_FILE).read_text(encoding="utf-8"))
        (staging / META_FILE).write_text(json.dumps({**meta, "parity_max_abs_diff": worst}, indent=1))
        os.replace(staging, folder)
        return folder
    except OSError:  # another process published the same export first
        shutil.rmtree(staging, ignore_errors=True)
        return folder if (folder / META_FILE).is_file() else None
    except Exception as err:  # the torch path keeps working; remember not to try again
        shutil.rmtree(staging, ignore_errors=True)
        log.info("ONNX export of %s failed: %s", embedder.name, err)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / FAILED_FILE).write_text(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        except OSError:
            pass
        return None
