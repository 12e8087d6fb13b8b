"""The data that flows through a pipeline: documents, chunks, scored evidence, verdicts, answers.

Everything is a pydantic model so it validates on the way in and serialises to JSON on the way
out (``ragpipe ask --json``, eval reports, the LangChain/LlamaIndex adapters).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def stable_hash(*parts: str, length: int = 16) -> str:
    """A short, stable, content-derived id (sha256 of the parts, NUL-separated)."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


class Document(BaseModel):
    """One source document as loaded, before chunking."""

    id: str
    source: str
    text: str
    title: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    mtime: float | None = None

    @staticmethod
    def make_id(source: str) -> str:
        """Document ids follow the source path so an edited file keeps its id."""
        return stable_hash("doc", source)


class Chunk(BaseModel):
    """A span of a document: the unit that is embedded, retrieved, selected and cited."""

    model_config = ConfigDict(frozen=False)

    id: str
    doc_id: str
    position: int
    text: str
    source: str = ""
    start_char: int | None = None
    end_char: int | None = None
    prev_id: str | None = None
    next_id: str | None = None
    title: str | None = None
    headings: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @staticmethod
    def make_id(doc_id: str, position: int, text: str) -> str:
        """Stable across runs: the same text at the same place gets the same id."""
        return stable_hash("chunk", doc_id, str(position), text)


class ScoredChunk(BaseModel):
    """A chunk with the score of the latest stage and the scores/ranks of every stage before it."""

    chunk: Chunk
    score: float = 0.0
    rank: int = 0
    stage_scores: dict[str, float] = Field(default_factory=dict)
    stage_ranks: dict[str, int] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.chunk.id

    def flat(self, *fields: str) -> dict[str, Any]:
        """The named fields of the hit and its chunk side by side, in the order named.

        This is how a hit leaves ragpipe (``--json`` output, framework metadata), so every
        outlet spells a field the same way; ``id`` is the former name of ``chunk_id``.
        """
        chunk = self.chunk
        every: dict[str, Any] = {
            "rank": self.rank,
            "score": self.score,
            "chunk_id": chunk.id,
            "id": chunk.id,
            "doc_id": chunk.doc_id,
            "source": chunk.source,
            "position": chunk.position,
            "start_char": chunk.start_char,
            "end_char": chunk.end_char,
            "stage_scores": dict(self.stage_scores),
            "stage_ranks": dict(self.stage_ranks),
            "metadata": dict(chunk.metadata),
            "text": chunk.text,
        }
        return {name: every[name] for name in fields}

    def with_stage(self, stage: str, score: float, rank: int) -> ScoredChunk:
        """A copy scored by ``stage``: becomes the current score and is kept in the history."""
        return self.model_copy(
            update={
                "score": score,
                "rank": rank,
                "stage_scores": {**self.stage_scores, stage: score},
                "stage_ranks": {**self.stage_ranks, stage: rank},
            }
        )


class Usage(BaseModel):
    """LLM cost of a call, a node or a run. Adds up with ``+``."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    llm_seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_calls=self.cached_calls + other.cached_calls,
            failed_calls=self.failed_calls + other.failed_calls,
            llm_seconds=self.llm_seconds + other.llm_seconds,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class TraceEvent(BaseModel):
    """One thing a node did that a user may want to audit: a prompt, a raw output, a repair, a fallback."""

    node: str
    kind: str  # "llm_call" | "llm_reply" | "repair" | "fallback" | "cutoff" | "truncation" | "info" | ...
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class Rationale(BaseModel):
    """A question-conditioned search facet, with the rule for rejecting chunks on that facet."""

    index: int
    text: str
    label: str | None = None
    flag_instructions: str | None = None
    chunk_ids: list[str] = Field(default_factory=list)


class Verdict(BaseModel):
    """The verifier's decision on one chunk."""

    chunk_id: str
    keep: bool
    flags: list[str] = Field(default_factory=list)
    reason: str = ""
    signals: dict[str, float | bool | str] = Field(default_factory=dict)
    parse_status: str = "ok"


class Citation(BaseModel):
    """A ``[n]`` marker in an answer, resolved to the chunk it cites."""

    n: int
    chunk_id: str
    source: str
    position: int
    start_char: int | None = None
    end_char: int | None = None
    # The sentence of the chunk the citation rests on, and its characters in the source document.
    quote: str | None = None
    quote_start_char: int | None = None
    quote_end_char: int | None = None


class DroppedEvidence(BaseModel):
    """Evidence that was selected but not used, and why."""

    chunk: ScoredChunk
    reason: str
    flags: list[str] = Field(default_factory=list)


class Answer(BaseModel):
    """What a pipeline returns for one question."""

    question: str
    text: str
    abstained: bool = False
    mode: Literal["generated", "extracted"] = "generated"  # extracted: quoted evidence sentences, no LLM wrote it
    citations: list[Citation] = Field(default_factory=list)
    evidence: list[ScoredChunk] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    rationales: list[Rationale] = Field(default_factory=list)
    dropped: list[DroppedEvidence] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    usage_by_node: dict[str, Usage] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    trace: list[TraceEvent] = Field(default_factory=list)
