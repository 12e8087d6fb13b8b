"""What an indexing run reports: progress events while it runs, and a summary at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
