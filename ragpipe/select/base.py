"""The selector contract and the machinery every selector shares.

A selector turns (question, candidates) into scored, ordered evidence plus a trace. Subclasses
implement ``score`` (one float per candidate, higher is better) and get the rest from the base:
de-duplication, the empty-input, one-candidate and empty-question paths, usage metering, the fail
policy (fail-open keeps the retriever's order when the LLM output is unusable), the harm bound
(``harm_bound.py``: an LLM order is gated and fused with the input order), stage scores that stay
monotone with rank, and the optional adaptive cutoff. A selector that needs a different flow
(e.g. METEORA) overrides ``select`` and uses the same helpers.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import Any, Callable, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from ragpipe.context import RunContext
from ragpipe.llm.base import LLM, Completion, Message
from ragpipe.llm.wrappers import CallLog
from ragpipe.schema import Rationale, ScoredChunk, TraceEvent, Usage
from ragpipe.select.cutoff import METHODS as CUTOFF_METHODS
from ragpipe.select.cutoff import CutoffResult, apply_cutoff
from ragpipe.select.harm_bound import HarmBoundConfig, Reliability, bound
from ragpipe.settings_layers import validate_table

_REGISTRY: dict[str, type[Selector]] = {}
RAW_TRACE_CHARS = 500
SelectorClass = TypeVar("SelectorClass", bound=type)


def register_selector(name: str) -> Callable[[SelectorClass], SelectorClass]:
    """Class decorator: make a ``Selector`` subclass available as ``name`` (see ``get_selector``);
    the class takes the name it is registered under."""

    def decorate(cls: SelectorClass) -> SelectorClass:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


class RationalePair(TypedDict):
    rationale: int  # 1-based rationale number
    chunk_id: str
    cosine: float


class SelectionExtras(TypedDict, total=False):
    """What a selector reports beyond the ranking; every key is optional, unknown keys are refused."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    llm_order: list[str]  # LLM selectors: the model's own order (ids) before the harm bound
    rationales: list[Rationale]  # METEORA: the rationales used, with the chunks each picked
    pairs: list[RationalePair]
    pooled_scores: dict[str, float]
    fused_scores: dict[str, float] | None
    elbow_index: int | None
    stages: dict[str, list[str]]  # METEORA: chunk ids after pairing, pooling and expansion


class Selection(BaseModel):
    """A selector's output: everything ranked, what survived the cutoff, and how it got there."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ranked: list[ScoredChunk]
    kept: list[ScoredChunk]
    cutoff: CutoffResult | None = None
    trace: list[TraceEvent] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    extras: SelectionExtras = Field(default_factory=lambda: SelectionExtras())


class SelectorConfig(BaseModel):
    """Options every selector understands."""

    model_config = ConfigDict(extra="forbid")

    cutoff: str = "none"
    min_keep: int = 1
    max_keep: int | None = None
    z_threshold: float = 1.0
    threshold: float | None = None
    fail_policy: Literal["open", "closed"] = "open"

    @field_validator("cutoff")
    @classmethod
    def _known_cutoff(cls, value: str) -> str:
        if value not in CUTOFF_METHODS:
            raise ValueError(f"unknown cutoff '{value}'; choose one of: {', '.join(CUTOFF_METHODS)}")
        return value

    @model_validator(mode="after")
    def _consistent_bounds(self) -> SelectorConfig:
        if self.min_keep < 0 or (self.max_keep is not None and self.max_keep < max(self.min_keep, 1)):
            raise ValueError(f"inconsistent bounds min_keep={self.min_keep}, max_keep={self.max_keep}")
        if self.cutoff == "threshold" and self.threshold is None:
            raise ValueError("the 'threshold' cutoff needs a threshold value")
        return self


class LLMSelectorConfig(SelectorConfig):
    """Options of every selector that asks an LLM: the common ones plus the harm bound."""

    harm_bound: HarmBoundConfig = Field(default_factory=HarmBoundConfig)


class SelectorRun:
    """Per-call scratchpad: the trace of one ``select`` call and the LLM recorded for it."""

    def __init__(self, node: str, ctx: RunContext) -> None:
        self.node = node
        self.ctx = ctx
        self.trace: list[TraceEvent] = []
        self.calls: CallLog = ctx.meter.child()  # this call's share of the run's log
        self.reliability = Reliability()
        self.readings: list[list[int]] = []  # each reading's order, for methods that read candidates several ways
        self._llm: LLM | None = None

    @property
    def llm(self) -> LLM:
        """The context's LLM; each call is recorded once, for this call and for the run."""
        if self._llm is None:
            self._llm = self.ctx.llm_for(self.node, self.calls)
        return self._llm

    def note(self, kind: str, message: str, **data: Any) -> None:
        self.trace.append(TraceEvent(node=self.node, kind=kind, message=message, data=data))

    async def chat(self, messages: Sequence[Message], *, purpose: str, **options: Any) -> Completion:
        """One metered LLM call, traced with its raw output, tokens and latency (or its error)."""
        try:
            completion = await self.llm.chat(messages, **options)
        except Exception as err:
            self.note("llm_reply", f"{purpose}: {type(err).__name__}: {err}", error=type(err).__name__)
            raise
        self.note(
            "llm_reply",
            purpose,
            raw=completion.text[:RAW_TRACE_CHARS],
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            latency_s=round(completion.latency_s, 4),
            finish_reason=completion.finish_reason,
            cached=completion.cached,
        )
        return completion

    @property
    def usage(self) -> Usage:
        return self.calls.total()


def dedupe(candidates: Sequence[ScoredChunk], run: SelectorRun) -> list[ScoredChunk]:
    """Drop repeated chunk ids (first occurrence wins), recording how many were dropped."""
    seen: set[str] = set()
    unique = []
    for candidate in candidates:
        if candidate.id not in seen:
            seen.add(candidate.id)
            unique.append(candidate)
    if len(unique) < len(candidates):
        run.note("repair", f"dropped {len(candidates) - len(unique)} duplicate candidate(s)")
    return unique


def order_of(scores: Sequence[float]) -> list[int]:
    """Indices by descending score; ties keep input order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def ranked_by(candidates: Sequence[ScoredChunk], scores: Sequence[float], stage: str) -> list[ScoredChunk]:
    """Candidates sorted by ``scores`` (ties keep input order), stamped with the stage score and rank."""
    order = order_of(scores)
    return [candidates[i].with_stage(stage, float(scores[i]), rank) for rank, i in enumerate(order, start=1)]


def input_order_scores(n: int) -> list[float]:
    """Scores that reproduce the input order (n, n-1, ..., 1)."""
    return [float(n - i) for i in range(n)]


def input_slot_scores(candidates: Sequence[ScoredChunk]) -> list[float]:
    """The incoming scores when they are sorted and informative, else ``input_order_scores``.

    Keeps the retriever's score shape (what an elbow cutoff needs) for an order-preserving result;
    candidate lists without usable scores (all equal, or unsorted) fall back to rank order.
    """
    scores = [c.score for c in candidates]
    if len(set(scores)) > 1 and all(a >= b for a, b in zip(scores, scores[1:])):
        return scores
    return input_order_scores(len(candidates))


def retrieval_prior(candidates: Sequence[ScoredChunk]) -> list[float]:
    """The input order as a 0-1 score (1 = first): min-max of ``input_slot_scores``."""
    return minmax(input_slot_scores(candidates)) if len(candidates) > 1 else [1.0] * len(candidates)


ConfigT = TypeVar("ConfigT", bound=SelectorConfig)


class Selector(ABC, Generic[ConfigT]):
    """Base class: set ``name`` and ``Config``, implement ``score`` (or override ``select``).

    ``Selector[MyConfig]`` with ``Config = MyConfig`` types ``self.config`` for the subclass;
    every config derives from ``SelectorConfig``, so the shared paths read its fields directly.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[SelectorConfig]] = SelectorConfig
    needs_llm: ClassVar[bool] = True
    config: ConfigT

    def __init__(self, **config: Any) -> None:
        self.config = validate_table(self.Config, config, f"selector '{self.name}'",  # type: ignore[assignment]
                                     label="setting")

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        """One score per candidate, higher is better. Raise to fall back (the base records it)."""
        raise NotImplementedError

    async def select(self, question: str, candidates: list[ScoredChunk], ctx: RunContext) -> Selection:
        run = SelectorRun(self.name, ctx)
        unique = dedupe(candidates, run)
        if not unique:
            return Selection(ranked=[], kept=[], trace=run.trace)
        if len(unique) == 1:
            run.note("info", "one candidate: nothing to rank, no LLM call")
            scores = input_order_scores(1)
        elif not question.strip():
            run.note("fallback", "empty question: kept the input order")
            scores = input_order_scores(len(unique))
        elif self.needs_llm and ctx.llm is None:
            run.note("fallback", "no LLM configured: kept the input order" if getattr(ctx, "given", True)
                     else "ran without a context (so without an LLM): kept the input order")
            scores = input_order_scores(len(unique))
        else:
            try:
                scores = await self.score(question, unique, run)
                if len(scores) != len(unique):
                    raise ValueError(f"{len(scores)} scores for {len(unique)} candidates")
            except Exception as err:  # LLM failures of any kind: never crash a query
                return self._failed(unique, run, err)
        return self.finish(unique, scores, run)

    def _failed(self, candidates: list[ScoredChunk], run: SelectorRun, err: Exception) -> Selection:
        policy = self.config.fail_policy
        reason = f"{type(err).__name__}: {err}"
        ranked = ranked_by(candidates, input_order_scores(len(candidates)), self.name)
        if policy == "closed":
            run.note("fallback", f"selector failed ({reason}); fail-closed: kept nothing", error=reason)
            return Selection(ranked=ranked, kept=[], trace=run.trace, usage=run.usage)
        run.note("fallback", f"selector failed ({reason}); fail-open: kept the input order", error=reason)
        return self._with_cutoff(ranked, run)

    def finish(self, candidates: list[ScoredChunk], scores: Sequence[float], run: SelectorRun) -> Selection:
        """Rank by ``scores`` (through the harm bound when the config has one) and apply the cutoff."""
        harm = self.config.harm_bound if isinstance(self.config, LLMSelectorConfig) else None
        if harm is None or run.reliability.answers == 0:
            return self._with_cutoff(ranked_by(candidates, scores, self.name), run)
        llm_order = order_of(scores)
        decision = bound(llm_order, run.reliability, harm, run.readings)
        run.note("harm_bound", decision.reason, trusted=decision.trusted, **decision.data)
        llm_ids = [candidates[i].id for i in llm_order]
        if decision.trusted == "llm":
            return self._with_cutoff(ranked_by(candidates, scores, self.name), run, llm_ids)
        # Slot scores: the final order carries the selector's score distribution (or the input's,
        # when the input order won), so scores stay monotone with rank and keep their shape.
        if decision.trusted == "input":
            slots = input_slot_scores(candidates)
        else:
            slots = sorted(scores, reverse=True)
        ranked = [candidates[i].with_stage(self.name, float(slots[r]), r + 1) for r, i in enumerate(decision.order)]
        return self._with_cutoff(ranked, run, llm_ids)

    def _with_cutoff(self, ranked: list[ScoredChunk], run: SelectorRun,
                     llm_order: list[str] | None = None) -> Selection:
        """The selection, with ``extras["llm_order"]``: the LLM's own order (ids) before the harm bound."""
        config = self.config
        method = config.cutoff
        extras = SelectionExtras() if llm_order is None else SelectionExtras(llm_order=llm_order)
        if method == "none" and config.max_keep is None:
            return Selection(ranked=ranked, kept=list(ranked), trace=run.trace, usage=run.usage, extras=extras)
        result = apply_cutoff(
            [c.score for c in ranked],
            method,
            min_keep=config.min_keep,
            max_keep=config.max_keep,
            z_threshold=config.z_threshold,
            threshold=config.threshold,
        )
        run.note("cutoff", f"kept {result.keep} of {result.n}: {result.reason}", method=result.method,
                 elbow_index=result.elbow_index)
        return Selection(ranked=ranked, kept=ranked[: result.keep], cutoff=result, trace=run.trace, usage=run.usage,
                         extras=extras)


def minmax(values: Sequence[float]) -> list[float]:
    """Scale to [0, 1]; a constant list maps to all zeros (it carries no ordering)."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high - low <= 1e-12:
        return [0.0] * len(values)
    return [(v - low) / (high - low) for v in values]
