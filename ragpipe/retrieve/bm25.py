"""Keyword retrieval: a bm25s index kept beside the vector store and updated incrementally.

Layout under ``store.index_dir / "bm25"``::

    CURRENT              name of the live generation (replaced atomically)
    <generation>/meta.json     store revision, tokenizer settings, chunk ids
    <generation>/corpus.jsonl  per chunk: id, tokens, filterable fields
    <generation>/model/        the bm25s index

A sync writes a new generation folder, then swaps ``CURRENT``; a crash mid-write leaves the old
generation live and a stray folder that the next sync removes. Because tokens are kept per chunk
id, a sync tokenises only new chunks and drops removed ones; re-building the bm25s matrix itself
is fast (vectorised, seconds for 10^5 chunks).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock

from ragpipe.retrieve.filters import Filter, chunk_fields, evaluate
from ragpipe.schema import Chunk

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DIRNAME = "bm25"


class _Store(Protocol):
    revision: str
    index_dir: Path

    def iter_chunks(self) -> Iterable[Chunk]: ...


def bm25s_module() -> Any:
    """bm25s, imported without numba when nothing has imported bm25s yet.

    bm25s imports numba (about 0.7 s) whenever it is installed, yet ragpipe only scores with
    ``get_scores`` and builds with ``index``, which are numpy/scipy code. Hiding numba during
    the import makes bm25s pick its numpy backend; numba stays importable for everyone else.
    """
    if "bm25s" in sys.modules:
        return sys.modules["bm25s"]
    hidden = "numba" not in sys.modules
    if hidden:
        sys.modules["numba"] = None  # type: ignore[assignment]  # makes ``import numba`` fail
    try:
        import bm25s
    finally:
        if hidden and sys.modules.get("numba", 0) is None:
            del sys.modules["numba"]
    return bm25s


def _stemmer() -> tuple[str | None, Any]:
    """English Snowball stemming when PyStemmer is installed; plain tokens otherwise."""
    try:
        import Stemmer  # PyStemmer
    except ImportError:
        return None, None
    return "snowball-english", Stemmer.Stemmer("english").stemWords


@dataclass(frozen=True)
class TokenizerConfig:
    stopwords: str = "en"
    stemmer: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"stopwords": self.stopwords, "stemmer": self.stemmer, "format": FORMAT_VERSION}


class Tokenizer:
    """bm25s's regex tokenizer, lower-cased, English stopwords, optional stemming."""

    def __init__(self) -> None:
        name, self._stem = _stemmer()
        self.config = TokenizerConfig(stemmer=name)

    def __call__(self, texts: list[str]) -> list[list[str]]:
        bm25s = bm25s_module()

        if not texts:
            return []
        tokens = bm25s.tokenize(
            texts, stopwords=self.config.stopwords, stemmer=self._stem, return_ids=False, show_progress=False
        )
        return [list(t) for t in tokens]


@dataclass(eq=False)
class BM25Index:
    """BM25 over every chunk of a store; ``search`` returns (chunk id, score) best first."""

    directory: Path
    revision: str | None
    ids: list[str]
    tokens: list[list[str]] | None  # read only to sync (most of the index's memory); None for search
    fields: list[dict[str, Any]]  # each chunk's filterable fields, in ``ids`` order
    model: Any  # a bm25s.BM25, or None when loaded only to be updated
    tokenizer: Tokenizer
    _position: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._position = {chunk_id: i for i, chunk_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------------ building

    @classmethod
    def sync(cls, store: _Store) -> BM25Index:
        """Bring the on-disk index in line with ``store``; tokenises only chunks it has not seen."""
        directory = Path(store.index_dir) / DIRNAME
        directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory / ".lock")):
            tokenizer = Tokenizer()
            revision = store.revision
            current = cls._load(directory, tokenizer, with_model=False, with_tokens=True)
            if current is not None and current.revision == revision:
                return cls._load(directory, tokenizer) or current
            known: dict[str, tuple[list[str], dict[str, Any]]] = {}
            if current is not None and current.tokens is not None:
                known = {cid: (tok, fld) for cid, tok, fld in zip(current.ids, current.tokens, current.fields)}
            ids: list[str] = []
            tokens: list[list[str] | None] = []
            fields: list[dict[str, Any]] = []
            pending: list[tuple[int, str]] = []
            for chunk in store.iter_chunks():
                ids.append(chunk.id)
                fields.append(_jsonable(chunk_fields(chunk)))
                if chunk.id in known:
                    tokens.append(known[chunk.id][0])
                else:
                    tokens.append(None)
                    pending.append((len(ids) - 1, _index_text(chunk)))
            for (slot, _text), toks in zip(pending, tokenizer([text for _slot, text in pending])):
                tokens[slot] = toks
            reused = len(ids) - len(pending)
            log.info("bm25 sync: %d chunks (%d tokenised, %d reused)", len(ids), len(pending), reused)
            index = cls(
                directory=directory,
                revision=revision,
                ids=ids,
                tokens=[t or [] for t in tokens],
                fields=fields,
                model=_build_model([t or [] for t in tokens]),
                tokenizer=tokenizer,
            )
            index._write()
            return index

    @classmethod
    def open(cls, store: _Store) -> BM25Index:
        """The persisted index, synced first when the store changed since it was written."""
        directory = Path(store.index_dir) / DIRNAME
        index = cls._load(directory, Tokenizer()) if (directory / "CURRENT").is_file() else None
        if index is None or index.revision != store.revision:
            return cls.sync(store)
        return index

    def _write(self) -> None:
        """Write a new generation folder, then point ``CURRENT`` at it with an atomic replace."""
        assert self.tokens is not None, "only an index built with its tokens is written"
        generation = Path(tempfile.mkdtemp(prefix="gen-", dir=self.directory))
        meta = {"revision": self.revision, "tokenizer": self.tokenizer.config.as_dict(), "count": len(self.ids)}
        with (generation / "corpus.jsonl").open("w", encoding="utf-8") as fh:
            for chunk_id, toks, flds in zip(self.ids, self.tokens, self.fields):
                fh.write(json.dumps({"id": chunk_id, "tokens": toks, "fields": flds}) + "\n")
        if self.model is not None:
            self.model.save(str(generation / "model"), show_progress=False)
        (generation / "meta.json").write_text(json.dumps(meta))
        pointer = self.directory / "CURRENT.tmp"
        pointer.write_text(generation.name)
        os.replace(pointer, self.directory / "CURRENT")
        for stale in self.directory.glob("gen-*"):
            if stale.name != generation.name:
                shutil.rmtree(stale, ignore_errors=True)

    @classmethod
    def _load(cls, directory: Path, tokenizer: Tokenizer, *, with_model: bool = True,
              with_tokens: bool = False) -> BM25Index | None:
        """The live generation, or ``None`` when absent, unreadable or tokenised differently.

        Searching needs the model, ids and filter fields only; the per-chunk tokens (about 5 KB a
        chunk as Python lists, most of the index's memory) are read only to sync, which reuses them.
        """
        try:
            generation = directory / (directory / "CURRENT").read_text().strip()
            meta = json.loads((generation / "meta.json").read_text())
            if meta.get("tokenizer") != tokenizer.config.as_dict():
                return None
            ids, tokens, fields = [], [], []
            with (generation / "corpus.jsonl").open(encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    ids.append(row["id"])
                    if with_tokens:
                        tokens.append(row["tokens"])
                    fields.append(row["fields"])
            model = None
            if with_model and ids:
                model = bm25s_module().BM25.load(str(generation / "model"), show_progress=False)
        except (OSError, ValueError, KeyError) as err:
            if (directory / "CURRENT").exists():
                log.warning("bm25 index at %s unreadable (%s); rebuilding", directory, err)
            return None
        return cls(
            directory=directory,
            revision=meta.get("revision"),
            ids=ids,
            tokens=tokens if with_tokens else None,
            fields=fields,
            model=model,
            tokenizer=tokenizer,
        )

    # ------------------------------------------------------------------ querying

    def search(self, query: str, k: int, flt: Filter | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (chunk id, BM25 score) that share at least one term with the query."""
        if self.model is None or not self.ids or k <= 0:
            return []
        vocab = self.model.vocab_dict
        query_tokens = [t for t in self.tokenizer([query])[0] if t in vocab]
        if not query_tokens:
            return []
        scores = np.asarray(self.model.get_scores(query_tokens), dtype=np.float32)
        if flt is not None:
            scores = np.where(self.mask(flt), scores, 0.0)
        hits = np.flatnonzero(scores > 0)
        if hits.size > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        order = hits[np.lexsort((hits, -scores[hits]))]
        return [(self.ids[i], float(scores[i])) for i in order]

    def mask(self, flt: Filter) -> np.ndarray:
        """Which chunks pass ``flt`` (same semantics as the dense post-filter)."""
        return np.fromiter((evaluate(flt, f) for f in self.fields), dtype=bool, count=len(self.fields))


def _index_text(chunk: Chunk) -> str:
    """What BM25 matches on: the title (when the chunk text lacks it) and the chunk text."""
    if chunk.title and chunk.title not in chunk.text[: len(chunk.title) + 8]:
        return f"{chunk.title}\n{chunk.text}"
    return chunk.text


def _build_model(tokens: list[list[str]]) -> Any:
    if not tokens:
        return None
    model = bm25s_module().BM25()
    model.index(tokens, show_progress=False)
    return model


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    """Filterable fields as stored on disk: scalars and lists of scalars only."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
        else:
            out[key] = str(value)
    return out

