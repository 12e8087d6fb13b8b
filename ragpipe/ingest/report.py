"""What an indexing run reports: progress events while it runs, and a summary at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ragpipe.ingest.walk import Skipped
from ragpipe.schema import TraceEvent


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a run, for bars and for APIs that relay progress (phase, done of total)."""

    phase: str  # "scan" | "parse" | "embed" | "write" | "done"
    done: int
    total: int
    chunks: int = 0
    embeddings_per_s: float | None = None


ProgressFn = Callable[[ProgressEvent], None]

_UNITS = {"scan": "files", "parse": "files", "embed": "chunks", "write": "files"}


class ProgressLines:
    """Progress as plain lines, for logs and pipes, where a progress bar shows nothing until the end.

    One line the first time each phase reports, then at most one every ``interval_s`` seconds,
    and a last line when the run is done.
    """

    def __init__(self, stream: TextIO, *, interval_s: float = 10.0, prefix: str = "ragpipe index: ") -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.prefix = prefix
        self._seen: set[str] = set()
        self._last = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.phase in self._seen and event.phase != "done" and now - self._last < self.interval_s:
            return
        self._seen.add(event.phase)
        self._last = now
        self.stream.write(self.prefix + self.line(event) + "\n")
        self.stream.flush()

    @staticmethod
    def line(event: ProgressEvent) -> str:
        if event.phase == "done":
            return f"done: {event.done} files written, {event.chunks} chunks embedded"
        total = f"~{event.total}" if event.phase == "embed" and event.total > event.done else str(event.total)
        rate = f" ({event.embeddings_per_s:.1f} chunks/s)" if event.embeddings_per_s else ""
        return f"{event.phase}: {event.done}/{total} {_UNITS.get(event.phase, '')}{rate}".rstrip()


@dataclass
class IndexReport:
    index_dir: Path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    unsupported: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int | None = None
    embedded: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0
    dry_run: bool = False
    trace: list[TraceEvent] = field(default_factory=list)

    @property
    def embeddings_per_s(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["index_dir"] = str(self.index_dir)
        data["embeddings_per_s"] = round(self.embeddings_per_s, 2)
        data["trace"] = [event.model_dump() for event in self.trace]
        return data
