"""The pipeline's leaf nodes: retrieve, cutoff, select, verify (or accept), generate.

Each wraps one component built elsewhere (retriever, selector registry, verifier, generator)
and maps it onto ``RunState`` fields; none holds per-query state, so one instance serves
concurrent queries.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import Field

from ragpipe.context import RunContext
from ragpipe.graph.node import GraphBuildError, Node
from ragpipe.graph.state import RunState
from ragpipe.schema import TraceEvent


class RetrieveNode(Node):
    """Hybrid/dense/BM25 retrieval of candidates for the question."""

    name: str | None = "retrieve"
    reads = ("question", "filters", "top_k")
    writes = ("candidates",)

    retriever: Any = None  # ragpipe.retrieve.Retriever; built from the context when None
    top_k: int | None = None
    mode: str | None = None

    def _retriever(self, ctx: RunContext) -> Any:
        if self.retriever is not None:
            return self.retriever
        from ragpipe.retrieve import Retriever

        if ctx.store is None or ctx.embedder is None or ctx.settings is None:
            from ragpipe.errors import ConfigError

            if not ctx.given:
                raise ConfigError("the retrieve node ran without a context: use pipe.ask / pipe.arun, or pass "
                                  "config=with_context(None, pipe.ctx) (from ragpipe.graph.node) to invoke")
            raise ConfigError("the retrieve node needs a retriever, or a context with store, embedder and settings")
        return Retriever(ctx.store, ctx.embedder, ctx.settings.retrieval)

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        k = state.top_k or self.top_k
        candidates = await self._retriever(ctx).aretrieve(state.question, k=k, filters=state.filters, mode=self.mode)
        event = TraceEvent(node=self.label, kind="info", message=f"retrieved {len(candidates)} candidate(s)",
                           data={"k": k, "filters": state.filters})
        return {"candidates": list(candidates), "trace": [event]}


class CutoffNode(Node):
    """Keeps the head of the retrieval ranking up to the score elbow (no LLM): the ``fast`` preset.

    With ``recall_guard`` (the default) the elbow is followed only at a pronounced knee; otherwise
    the top ``budget`` are kept, so the cutoff never keeps less than a small top-k would.
    ``options`` go to the cutoff function (``budget``, ``min_keep``, ``knee_prominence_min``, …).
    """

    name: str | None = "cutoff"
    reads = ("candidates",)
    writes = ("selected",)

    method: str = "zscore_gap"
    recall_guard: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        self._config()  # bad options fail when the graph is built, not at the first question

    def _config(self) -> Any:
        from pydantic import ValidationError

        from ragpipe.select.cutoff import CutoffConfig

        try:
            return CutoffConfig(method=self.method, recall_guard=self.recall_guard, **self.options)
        except ValidationError as err:
            from ragpipe.config import options_error

            raise options_error(("select", "fast"), err) from None

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        if not state.candidates:
            return {"selected": [], "trace": [TraceEvent(node=self.label, kind="cutoff", message="no candidates")]}
        ranked = sorted(state.candidates, key=lambda c: -c.score)  # stable: ties keep retrieval order
        result = self._config().keep([c.score for c in ranked])
        keep = result.keep
        event = TraceEvent(
            node=self.label,
            kind="cutoff",
            message=f"kept {keep} of {len(state.candidates)}: {result.reason}",
            data={"method": result.method, "elbow_index": result.elbow_index, "keep": keep,
                  "trusted": result.trusted, "budget": result.budget},
        )
        return {"selected": ranked[:keep], "trace": [event]}


class SelectNode(Node):
    """An LLM selector from the registry (``listwise``, ``groupwise``, ``meteora``, …)."""

    reads = ("question", "candidates")
    writes = ("selected", "rationales")

    method: str
    config: dict[str, Any] = Field(default_factory=dict)
    selector: Any = None  # built from the registry on first use when None

    def model_post_init(self, __context: Any) -> None:
        if self.name is None:
            self.name = self.method
        if self.selector is None:
            known = _registered_selectors()
            if self.method not in known:
                choices = ", ".join(["fast", *known]) if known else "fast (no selectors are installed)"
                raise GraphBuildError(f"unknown method '{self.method}'; choose one of: {choices}")

    def _selector(self) -> Any:
        if self.selector is None:  # built on first use so that drawing a graph needs no models
            from ragpipe.select import get_selector

            self.selector = get_selector(self.method, **self.config)
        return self.selector

    def prepare(self) -> None:
        self._selector()

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        selection = await self._selector().select(state.question, state.candidates, ctx)
        kept = list(selection.kept) if selection.kept is not None else list(selection.ranked)
        rationales = list((selection.extras or {}).get("rationales", []))
        return {"selected": kept, "rationales": rationales, "trace": list(selection.trace)}


class VerifyNode(Node):
    """The verifier: drops poisoned, injected or inconsistent evidence and says why."""

    name: str | None = "verify"
    # ``rationales`` is used when a selector wrote them (METEORA) but not required (``fast``).
    reads = ("question", "selected")
    writes = ("evidence", "verdicts", "dropped")

    verifier: Any = None  # ragpipe.verify.Verifier; a default one when None

    def _verifier(self) -> Any:
        if self.verifier is None:
            from ragpipe.verify import Verifier

            self.verifier = Verifier()
        return self.verifier

    def prepare(self) -> None:
        self._verifier()

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        result = self._verifier().verify(state.question, state.selected, ctx, rationales=state.rationales or None)
        if inspect.isawaitable(result):
            result = await result
        return {
            "evidence": list(result.accepted),
            "verdicts": list(result.verdicts),
            "dropped": [*state.dropped, *result.dropped],
            "trace": list(result.trace),
        }


class AcceptNode(Node):
    """Used when verification is switched off: every selected chunk becomes evidence."""

    name: str | None = "accept"
    reads = ("selected",)
    writes = ("evidence",)

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        event = TraceEvent(node=self.label, kind="info", message="verification is off: all selected chunks are evidence")
        return {"evidence": list(state.selected), "trace": [event]}


class GenerateNode(Node):
    """Writes the cited answer from the evidence, or abstains."""

    name: str | None = "generate"
    reads = ("question", "evidence")
    writes = ("answer",)

    generator: Any = None  # ragpipe.generate.Generator; the default prompt when None

    def model_post_init(self, __context: Any) -> None:
        if self.generator is None:
            from ragpipe.generate import Generator

            self.generator = Generator(node=self.label)

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        generation = await self.generator.agenerate(state.question, state.evidence, ctx)
        return {"answer": generation.answer, "trace": generation.events}


def _registered_selectors() -> list[str]:
    """Names in the selector registry (empty when the registry cannot be loaded here)."""
    try:
        from ragpipe.select import available_selectors
    except ImportError:
        return []
    return list(available_selectors())
