"""PDF via pypdf: one segment per page with its page number; empty pages are reported."""

from __future__ import annotations

import logging
from pathlib import Path

from ragpipe.errors import IngestError
from ragpipe.ingest.loaders.base import LoadedDocument, SegmentBuilder, register_loader

log = logging.getLogger(__name__)


@register_loader(".pdf")
def load_pdf(path: Path) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise IngestError(str(path), "encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = (info.title if info else None) or None
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError) as err:
        raise IngestError(str(path), f"unreadable PDF ({err.__class__.__name__}: {err})") from None
    builder = SegmentBuilder()
    for number, text in enumerate(pages, start=1):
        builder.add(text, [], page=number)
    chars_per_page = [len(text.strip()) for text in pages]
    empty = [n for n, chars in enumerate(chars_per_page, start=1) if chars == 0]
    if empty:
        log.warning("%s: no text extracted from page(s) %s (scanned images?)", path, empty)
    return builder.build(title, pages=len(pages), empty_pages=len(empty), chars_per_page=chars_per_page)
