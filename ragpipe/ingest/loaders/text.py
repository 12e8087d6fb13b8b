"""Plain text files."""

from __future__ import annotations

from pathlib import Path

from ragpipe.ingest.loaders.base import LoadedDocument, read_text, register_loader


@register_loader(".txt", ".text", ".rst", ".log")
def load_text(path: Path) -> LoadedDocument:
    file = read_text(path)
    return LoadedDocument(file.text, metadata={"encoding": file.encoding}).ensure_segments()
