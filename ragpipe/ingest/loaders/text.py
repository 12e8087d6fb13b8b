"""Plain text files."""

from __future__ import annotations

from pathlib import Path

from ragpipe.ingest.loaders.base import LoadedDocument, read_text, register_loader


@register_loader(".txt", ".text", ".rst", ".log")
def load_text(path: Path) -> LoadedDocument:
    return LoadedDocument(read_text(path)).ensure_segments()
