"""Word .docx via python-docx: one segment per "Heading N" section, then one per table."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ragpipe.errors import IngestError
from ragpipe.ingest.loaders.base import LoadedDocument, SegmentBuilder, register_loader


def _heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 0
    if style_name.startswith("Heading "):
        tail = style_name.removeprefix("Heading ").strip()
        return int(tail) if tail.isdigit() else None
    return None


@register_loader(".docx")
def load_docx(path: Path) -> LoadedDocument:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise IngestError(str(path), f"unreadable .docx ({err.__class__.__name__})") from None
    builder = SegmentBuilder()
    title = document.core_properties.title or None
    path_: list[tuple[int, str]] = []
    section: list[str] = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        level = _heading_level(paragraph.style.name if paragraph.style is not None else "")
        if level is not None and text:
            builder.add("\n".join(section), [h for lvl, h in path_ if lvl > 0])
            section = []
            if level == 0:
                title = title or text
            path_ = [(lvl, h) for lvl, h in path_ if lvl < level] + [(level, text)]
        if text:
            section.append(text)
    builder.add("\n".join(section), [h for lvl, h in path_ if lvl > 0])
    for number, table in enumerate(document.tables, start=1):
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        builder.add("\n".join(rows), [f"table {number}"], table=number)
    return builder.build(title)
