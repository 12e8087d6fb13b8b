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
from ragpipe.ingest.loaders.text_decoding import clean_text, decode_bytes


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
        text = clean_text(text).strip()
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


@dataclass(frozen=True)
class TextFile:
    """A text file's cleaned text and the encoding it was decoded with."""

    text: str
    encoding: str


def read_text(path: Path) -> TextFile:
    """The file's text, decoded by its BOM, as UTF-8, or by charset detection, control characters removed.

    Binary content is refused (``IngestError``), never silently mangled into text.
    """
    decoded = decode_bytes(path.read_bytes())
    if decoded.refusal:
        raise IngestError(str(path), decoded.refusal)
    return TextFile(clean_text(decoded.text), decoded.encoding)
