"""RunState: the one typed state every node reads from and writes a patch to.

A query starts as ``RunState(question=..., filters=...)``; each node fills in the fields it
declares in ``writes``. ``to_answer()`` turns the finished state into the public ``Answer``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ragpipe.schema import Answer, DroppedEvidence, Rationale, ScoredChunk, TraceEvent, Usage, Verdict

# Fields that every query supplies, so no node needs to write them.
INPUT_FIELDS: frozenset[str] = frozenset({"question", "filters", "top_k"})
# Fields every node may touch as bookkeeping; they are merged, not replaced.
BOOKKEEPING_FIELDS: frozenset[str] = frozenset({"trace", "timings", "usage_by_node"})


class RunState(BaseModel):
    """Everything known about one query at one point of the graph."""

    model_config = ConfigDict(frozen=True)

    question: str
    filters: Any = None  # any spelling ragpipe.retrieve.filters.parse_filter accepts
    top_k: int | None = None
    candidates: list[ScoredChunk] = Field(default_factory=list)
    selected: list[ScoredChunk] = Field(default_factory=list)
    rationales: list[Rationale] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    evidence: list[ScoredChunk] = Field(default_factory=list)
    dropped: list[DroppedEvidence] = Field(default_factory=list)
    answer: Answer | None = None
    usage_by_node: dict[str, Usage] = Field(default_factory=dict)
    trace: list[TraceEvent] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def apply(self, patch: dict[str, Any]) -> RunState:
        """A new state with ``patch`` applied; ``trace`` entries are appended, ``timings`` merged."""
        update = dict(patch)
        if "trace" in update:
            update["trace"] = [*self.trace, *update["trace"]]
        if "timings" in update:
            update["timings"] = {**self.timings, **update["timings"]}
        if "usage_by_node" in update:
            update["usage_by_node"] = {**self.usage_by_node, **update["usage_by_node"]}
        return self.model_copy(update=update)

    def to_answer(self) -> Answer:
        """The public result: the generated answer completed with evidence, usage and timings."""
        base = self.answer or Answer(question=self.question, text="", abstained=True)
        total = Usage()
        for usage in self.usage_by_node.values():
            total = total + usage
        return base.model_copy(
            update={
                "question": self.question,
                "evidence": self.evidence,
                "verdicts": self.verdicts,
                "rationales": self.rationales,
                "dropped": self.dropped,
                "usage": total,
                "usage_by_node": dict(self.usage_by_node),
                "timings": dict(self.timings),
                "trace": [*self.trace, *base.trace],
            }
        )


def coerce_state(value: Any) -> RunState:
    """Accept a ``RunState``, a dict of its fields, or a bare question string."""
    if isinstance(value, RunState):
        return value
    if isinstance(value, str):
        return RunState(question=value)
    if isinstance(value, dict):
        return RunState(**value)
    raise TypeError(f"a graph runs on a RunState, a dict or a question string, not {type(value).__name__}")


STATE_FIELDS: frozenset[str] = frozenset(RunState.model_fields)
