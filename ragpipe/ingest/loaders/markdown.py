"""Markdown: the text as written, one segment per heading section, the first H1 as title."""

from __future__ import annotations

import re
from pathlib import Path

from ragpipe.ingest.loaders.base import LoadedDocument, Segment, read_text, register_loader

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_segments(text: str) -> tuple[list[Segment], str | None]:
    """Split at ATX headings outside code fences; each segment carries its heading path."""
    segments: list[Segment] = []
    path: list[tuple[int, str]] = []
    title: str | None = None
    start, offset, in_fence = 0, 0, False
    headings: list[str] = []
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line.rstrip("\r\n"))
        if match:
            if text[start:offset].strip():
                segments.append(Segment(start, offset, headings))
            level, heading = len(match.group(1)), match.group(2).strip()
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading)]
            headings = [h for _, h in path]
            if level == 1 and title is None:
                title = heading
            start = offset
        offset += len(line)
    if text[start:].strip():
        segments.append(Segment(start, len(text), headings))
    return segments, title


@register_loader(".md", ".markdown")
def load_markdown(path: Path) -> LoadedDocument:
    file = read_text(path)
    segments, title = markdown_segments(file.text)
    return LoadedDocument(file.text, title, {"encoding": file.encoding}, segments)
