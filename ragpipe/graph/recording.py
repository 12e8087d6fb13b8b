"""Per-query contexts: a fresh call log for every query and its LLM time budget.

A pipeline's ``RunContext`` is shared by all queries; ``query_context`` derives a private copy
so usage adds up per answer and every LLM call of the query goes through the query's
``CallBudget`` (deadline and per-node breaker) when one is given. With ``record=True`` the call
log keeps every prompt and raw output, and the answer's trace gets one ``llm_call`` event per
call (what ``ragpipe ask --trace`` prints).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ragpipe.context import RunContext
from ragpipe.llm.base import LLM
from ragpipe.llm.deadline import Budgeted, CallBudget
from ragpipe.llm.wrappers import CallLog
from ragpipe.schema import TraceEvent


@dataclass
class QueryContext(RunContext):
    """A ``RunContext`` for one query: own call log and optional LLM time budget."""

    budget: CallBudget | None = field(default=None)

    def _llm_under(self, node: str, llm: LLM) -> LLM:
        return Budgeted(llm, self.budget, node) if self.budget is not None else llm

    def recorded_events(self) -> list[TraceEvent]:
        """One ``llm_call`` event per call when the query was recorded (none otherwise)."""
        return self.meter.events() if self.meter.keep_text else []


def query_context(base: RunContext, *, record: bool = False, budget: CallBudget | None = None) -> QueryContext:
    """A copy of ``base`` that shares its components but has its own call log (and budget)."""
    shared = {f.name: getattr(base, f.name) for f in dataclasses.fields(RunContext) if f.name != "meter"}
    return QueryContext(**shared, meter=CallLog(keep_text=record), budget=budget)
