"""Sources from other frameworks: LangChain ``Document``s, LlamaIndex ``Document``s and readers.

They become ragpipe ``Document``s, which ``index_documents`` indexes with the same incremental
rules as files (keyed by their ``source``, fingerprinted by text + scalar metadata).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ragpipe.schema import Document

_SOURCE_KEYS = ("source", "file_path", "file_name", "url", "filename")


def _scalar_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if isinstance(v, str | int | float | bool)}


def _document(text: str, metadata: dict[str, Any], fallback_id: str | None, index: int, kind: str) -> Document:
    source = next((str(metadata[k]) for k in _SOURCE_KEYS if metadata.get(k)), None)
    source = source or (f"{kind}:{fallback_id}" if fallback_id else f"{kind}:{index}")
    title = metadata.get("title") if isinstance(metadata.get("title"), str) else None
    return Document(
        id=Document.make_id(source),
        source=source,
        text=text,
        title=title,
        metadata={**metadata, "file_type": kind},
    )


def from_langchain(documents: Iterable[Any]) -> list[Document]:
    """LangChain ``Document`` (``page_content`` + ``metadata``; ``metadata['source']`` as identity)."""
    out = []
    for index, doc in enumerate(documents):
        metadata = _scalar_metadata(getattr(doc, "metadata", None))
        out.append(_document(doc.page_content, metadata, getattr(doc, "id", None), index, "langchain"))
    return out


def from_llamaindex(source: Any) -> list[Document]:
    """LlamaIndex ``Document``s (or nodes), or a reader whose ``load_data()`` returns them."""
    documents = source.load_data() if hasattr(source, "load_data") else source
    out = []
    for index, doc in enumerate(documents):
        metadata = _scalar_metadata(getattr(doc, "metadata", None))
        text = doc.get_content() if hasattr(doc, "get_content") else str(doc.text)
        out.append(_document(text, metadata, getattr(doc, "doc_id", None) or getattr(doc, "id_", None), index, "llamaindex"))
    return out
