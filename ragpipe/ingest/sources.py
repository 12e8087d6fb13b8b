"""What an indexing run works through: files of a folder, or in-memory documents, as ``Source``s.

A source has a stable key (relative path or document source), a cheap stat (size, mtime) used to
skip unchanged files without reading them, a content fingerprint, and a deferred loader.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ragpipe.config import Settings
from ragpipe.ingest.loaders import LoadedDocument, loader_for
from ragpipe.ingest.loaders.text_decoding import clean_text
from ragpipe.ingest.report import IndexReport
from ragpipe.ingest.walk import walk_folder
from ragpipe.schema import Document, stable_hash


@dataclass
class Source:
    """One thing to index: a file or an in-memory document, identified by ``key``."""

    key: str
    size: int
    mtime: float
    load: Callable[[], LoadedDocument]
    fingerprint: Callable[[], str]
    file_type: str = ""


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_sources(docs_dir: Path, settings: Settings, index_dir: Path, report: IndexReport) -> list[Source]:
    chunking = settings.chunking
    walked = walk_folder(
        docs_dir,
        include=chunking.include,
        exclude=chunking.exclude,
        index_dir=index_dir,
        max_bytes=int(chunking.max_file_mb * 1_000_000),
    )
    report.skipped.extend(walked.skipped)
    report.unsupported = walked.unsupported
    sources = []
    for entry in walked.files:
        loader = loader_for(entry.path)
        assert loader is not None  # walk_folder only returns loadable files
        sources.append(
            Source(
                key=entry.rel,
                size=entry.size,
                mtime=entry.mtime,
                load=lambda p=entry.path, fn=loader: fn(p),
                fingerprint=lambda p=entry.path: file_hash(p),
                file_type=entry.path.suffix.lower().lstrip("."),
            )
        )
    return sources


def document_sources(documents: Iterable[Document]) -> list[Source]:
    """Sources for in-memory documents (e.g. from LangChain/LlamaIndex), keyed by their source."""
    sources = []
    for doc in documents:
        key = doc.source or doc.id
        meta = {k: v for k, v in doc.metadata.items() if isinstance(v, str | int | float | bool)}
        fingerprint = stable_hash(doc.text, doc.title or "", json.dumps(meta, sort_keys=True), length=64)
        sources.append(
            Source(
                key=key,
                size=len(doc.text),
                mtime=doc.mtime or 0.0,
                load=lambda d=doc, m=meta: LoadedDocument(clean_text(d.text), d.title, dict(m)).ensure_segments(),
                fingerprint=lambda f=fingerprint: f,
                file_type=str(doc.metadata.get("file_type", "document")),
            )
        )
    return sources
