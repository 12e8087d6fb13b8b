"""File loaders, one module per type; importing this package registers them all."""

from ragpipe.ingest.loaders import csv_rows, html, json_records, markdown, pdf, text, word  # noqa: F401
from ragpipe.ingest.loaders.base import (
    LoadedDocument,
    Segment,
    SegmentBuilder,
    loader_for,
    read_text,
    register_loader,
    supported_suffixes,
)

__all__ = [
    "LoadedDocument",
    "Segment",
    "SegmentBuilder",
    "loader_for",
    "read_text",
    "register_loader",
    "supported_suffixes",
]
