"""What a loader returns, the loader registry, and the checks every text-based loader shares.

A loader turns one file into a ``LoadedDocument``: its plain text plus ``segments`` that say
which part of the text sits under which headings / on which page / in which record. The chunker
never lets a chunk cross a segment boundary, so every chunk inherits exact headings and pages.
A new file type is one module with one ``@register_loader(".ext")`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragpipe.errors import IngestError


@dataclass
class Segment:
    """A span ``text[start:end]`` of the document with the headings/page/record it belongs to."""

    start: int
    end: int
    headings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedDocument:
    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)

    def ensure_segments(self) -> LoadedDocument:
        """A document without explicit structure is one segment."""
        if not self.segments and self.text:
            self.segments = [Segment(0, len(self.text))]
        return self


class SegmentBuilder:
    """Builds a document's text piece by piece while recording each piece's segment."""

    def __init__(self, separator: str = "\n\n") -> None:
        self.parts: list[str] = []
        self.segments: list[Segment] = []
        self.length = 0
        self.separator = separator

    def add(self, text: str, headings: list[str] | None = None, **metadata: Any) -> None:
        text = text.strip()
        if not text:
            return
        if self.parts:
            self.parts.append(self.separator)
            self.length += len(self.separator)
        self.segments.append(Segment(self.length, self.length + len(text), list(headings or []), metadata))
        self.parts.append(text)
        self.length += len(text)

    def build(self, title: str | None = None, **metadata: Any) -> LoadedDocument:
        return LoadedDocument("".join(self.parts), title, metadata, self.segments)


LoaderFn = Callable[[Path], LoadedDocument]
_LOADERS: dict[str, LoaderFn] = {}


def register_loader(*suffixes: str) -> Callable[[LoaderFn], LoaderFn]:
    """Register ``fn`` as the loader of files ending in ``suffixes`` (e.g. ``".md"``)."""

    def decorate(fn: LoaderFn) -> LoaderFn:
        for suffix in suffixes:
            _LOADERS[suffix.lower()] = fn
        return fn

    return decorate


def loader_for(path: Path) -> LoaderFn | None:
    return _LOADERS.get(path.suffix.lower())


def supported_suffixes() -> list[str]:
    return sorted(_LOADERS)


def read_text(path: Path) -> str:
    """Strict UTF-8 text: binary or undecodable files are refused, never silently mangled."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise IngestError(str(path), "binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise IngestError(str(path), f"not valid UTF-8 text (byte {err.start})") from None
