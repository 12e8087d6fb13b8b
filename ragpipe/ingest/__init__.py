"""Ingestion: load sources, chunk them by the embedder's tokens, embed, and keep a Chroma index current.

Heavy libraries (torch, sentence-transformers, chromadb) load only when a run needs them.
"""

from ragpipe.ingest.indexer import Index, index_documents, index_folder, open_index, resolve_index_dir
from ragpipe.ingest.report import IndexReport, ProgressEvent

__all__ = [
    "Index",
    "IndexReport",
    "ProgressEvent",
    "index_documents",
    "index_folder",
    "open_index",
    "resolve_index_dir",
]
