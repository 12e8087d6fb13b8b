"""The node protocol: a named step that reads some ``RunState`` fields and writes others.

A node is a LangChain ``RunnableSerializable[RunState, RunState]``: ``invoke``/``ainvoke``/
``batch``/``abatch``, ``|`` composition and callbacks come from langchain-core. Subclasses only
declare ``reads``/``writes`` and implement ``arun(state, ctx) -> patch``.

The per-query ``RunContext`` (LLM, prompts, usage meter) travels in the LangChain config under
``configurable["ragpipe_ctx"]`` so one graph object can serve many concurrent queries, each with
its own meter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForChainRun
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from pydantic import ConfigDict

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.graph.state import BOOKKEEPING_FIELDS, RunState, coerce_state
from ragpipe.llm.base import run_sync

CTX_KEY = "ragpipe_ctx"


class GraphBuildError(ConfigError):
    """The graph cannot run as composed: a node reads a field that nothing before it writes."""


def context_from(config: RunnableConfig | None) -> RunContext:
    """The ``RunContext`` carried by a LangChain config (a bare one when there is none)."""
    ctx = ((config or {}).get("configurable") or {}).get(CTX_KEY)
    return ctx if ctx is not None else RunContext()


def with_context(config: RunnableConfig | None, ctx: RunContext) -> RunnableConfig:
    """A copy of ``config`` that carries ``ctx`` to every node."""
    config = dict(config or {})
    config["configurable"] = {**(config.get("configurable") or {}), CTX_KEY: ctx}
    return config  # type: ignore[return-value]


class Node(RunnableSerializable[RunState, RunState]):
    """Base of every pipeline step. Subclasses set ``reads``/``writes`` and implement ``arun``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()

    # -- what a subclass implements -------------------------------------------------------
    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        """Return a patch holding only the fields in ``writes`` (plus optional ``trace`` events)."""
        raise NotImplementedError

    # -- declared data flow (composite nodes compute theirs) ------------------------------
    def input_fields(self) -> frozenset[str]:
        return frozenset(self.reads)

    def output_fields(self) -> frozenset[str]:
        return frozenset(self.writes)

    def children(self) -> list[Node]:
        return []

    def prepare(self) -> None:
        """Build heavy components now rather than on the first query (a pipeline calls this once)."""
        for child in self.children():
            child.prepare()

    @property
    def label(self) -> str:
        return self.get_name()

    # -- execution ------------------------------------------------------------------------
    async def astep(self, state: RunState, config: RunnableConfig) -> RunState:
        """Run this node on ``state`` and return the next state (timing and usage recorded)."""
        ctx = context_from(config)
        start = time.perf_counter()
        patch = await self.arun(state, ctx)
        elapsed = time.perf_counter() - start
        allowed = set(self.writes) | {"trace"}
        unexpected = set(patch) - allowed
        if unexpected:
            raise GraphBuildError(f"node '{self.label}' wrote {sorted(unexpected)} but declares writes={list(self.writes)}")
        patch["timings"] = {self.label: elapsed}
        patch["usage_by_node"] = ctx.meter.by_node()
        return state.apply(patch)

    async def _ainvoke(
        self, input_: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> RunState:
        child_config = patch_config(config, callbacks=run_manager.get_child())
        return await self.astep(coerce_state(input_), child_config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> RunState:  # noqa: A002
        return await self._acall_with_config(self._ainvoke, input, config, run_type="chain")

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> RunState:  # noqa: A002
        return run_sync(lambda: self.ainvoke(input, config, **kwargs))

    # -- composition ----------------------------------------------------------------------
    def __or__(self, other: Any) -> Any:  # type: ignore[override]
        """``node | node`` builds a checked ``Sequence``; anything else is LangChain's ``|``."""
        if isinstance(other, Node):
            from ragpipe.graph.compose import Sequence

            return Sequence.of(self, other)
        return super().__or__(other)

    # -- drawing --------------------------------------------------------------------------
    def draw_ascii(self) -> str:
        from ragpipe.graph.draw import draw_ascii

        return draw_ascii(self)

    def draw_mermaid(self) -> str:
        from ragpipe.graph.draw import draw_mermaid

        return draw_mermaid(self)

    def get_graph(self, config: RunnableConfig | None = None) -> Any:
        """LangChain's graph view of this node tree (one graph node per leaf node)."""
        from ragpipe.graph.draw import to_langchain_graph

        return to_langchain_graph(self)


def check_flow(nodes: Iterable[Node], available: Iterable[str]) -> frozenset[str]:
    """Check that each node's reads are written before it; return the fields available after."""
    have = set(available) | BOOKKEEPING_FIELDS
    for node in nodes:
        missing = node.input_fields() - have
        if missing:
            field = sorted(missing)[0]
            raise GraphBuildError(f"node '{node.label}' reads `{field}` but nothing before it writes it")
        have |= node.output_fields()
    return frozenset(have)
