"""The node protocol: a named step that reads some ``RunState`` fields and writes others.

A node is a plain pydantic model with an async ``arun(state, ctx) -> patch``; subclasses only
declare ``reads``/``writes`` and implement ``arun``. Running a graph needs nothing beyond
pydantic, so ``ragpipe ask`` and the Python API never import LangChain.

LangChain is loaded only when asked for: ``node.as_runnable()`` gives the Runnable skin, and the
Runnable-style calls (``invoke``/``ainvoke``/``batch``/``abatch``) switch to it by themselves
when a config carries callbacks, when LangSmith tracing is switched on, or when the node runs
inside a LangChain run, so callbacks and tracing see every node as before. ``node | runnable``
and the other Runnable methods (``astream_events``, ``with_config``, …) go through the skin.

The per-query ``RunContext`` (LLM, prompts, usage meter) travels in the config under
``configurable["ragpipe_ctx"]`` so one graph object can serve many concurrent queries, each with
its own meter.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.graph.state import BOOKKEEPING_FIELDS, RunState, coerce_state
from ragpipe.llm.base import run_sync

CTX_KEY = "ragpipe_ctx"
Config = dict[str, Any]  # a LangChain-compatible RunnableConfig dict

# Environment switches with which LangChain/LangSmith trace every run.
_TRACING_ENV = ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING")
# Runnable methods a node offers through its LangChain skin (loaded on first use).
_RUNNABLE_METHODS = frozenset({
    "stream", "astream", "astream_events", "astream_log", "transform", "atransform",
    "with_config", "with_retry", "with_fallbacks", "with_listeners", "with_types", "bind",
    "pipe", "pick", "assign", "get_input_schema", "get_output_schema", "config_schema",
    "get_config_jsonschema", "get_input_jsonschema", "get_output_jsonschema",
    "batch_as_completed", "abatch_as_completed", "as_tool",
})


class GraphBuildError(ConfigError):
    """The graph cannot run as composed: a node reads a field that nothing before it writes."""


def context_from(config: Config | None) -> RunContext:
    """The ``RunContext`` carried by a config (a bare one when there is none)."""
    ctx = ((config or {}).get("configurable") or {}).get(CTX_KEY)
    return ctx if ctx is not None else RunContext(given=False)


def with_context(config: Config | None, ctx: RunContext) -> Config:
    """A copy of ``config`` that carries ``ctx`` to every node."""
    config = dict(config or {})
    config["configurable"] = {**(config.get("configurable") or {}), CTX_KEY: ctx}
    return config


def needs_langchain(config: Config | None) -> bool:
    """Whether a run must go through LangChain so that callbacks or tracing see it."""
    if config and config.get("callbacks"):
        return True
    if any(os.environ.get(name, "").lower() in {"1", "true", "yes"} for name in _TRACING_ENV):
        return True
    lc_config = sys.modules.get("langchain_core.runnables.config")
    if lc_config is not None:  # only possible inside a LangChain run, which imported it
        parent = lc_config.var_child_runnable_config.get()
        return bool(parent and parent.get("callbacks"))
    return False


class Node(BaseModel):
    """Base of every pipeline step. Subclasses set ``reads``/``writes`` and implement ``arun``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str | None = None
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
        return self.name or type(self).__name__

    def get_name(self) -> str:
        """The node's name, as LangChain callbacks and graphs show it."""
        return self.label

    # -- execution ------------------------------------------------------------------------
    async def astep(self, state: RunState, config: Config) -> RunState:
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

    async def __call__(self, input: Any, config: Config | None = None) -> RunState:  # noqa: A002
        """A node is an async callable: ``await node(state_or_question, config)``."""
        return await self.ainvoke(input, config)

    async def ainvoke(self, input: Any, config: Config | None = None, **kwargs: Any) -> RunState:  # noqa: A002
        """Run on a ``RunState``, a dict of its fields or a question string."""
        if needs_langchain(config):
            return await self.as_runnable().ainvoke(input, config, **kwargs)
        return await self.astep(coerce_state(input), config or {})

    def invoke(self, input: Any, config: Config | None = None, **kwargs: Any) -> RunState:  # noqa: A002
        return run_sync(lambda: self.ainvoke(input, config, **kwargs))

    async def abatch(self, inputs: list[Any], config: Config | list[Config] | None = None,
                     **kwargs: Any) -> list[RunState]:
        """Run on every input concurrently; ``config`` is one for all or one per input."""
        configs = config if isinstance(config, list) else [config] * len(inputs)
        if any(needs_langchain(c) for c in configs):
            return await self.as_runnable().abatch(inputs, config, **kwargs)
        return list(await asyncio.gather(*(self.ainvoke(i, c) for i, c in zip(inputs, configs))))

    def batch(self, inputs: list[Any], config: Config | list[Config] | None = None, **kwargs: Any) -> list[RunState]:
        return run_sync(lambda: self.abatch(inputs, config, **kwargs))

    # -- LangChain, on demand -------------------------------------------------------------
    def as_runnable(self) -> Any:
        """This node as a LangChain ``Runnable`` (imports langchain-core)."""
        from ragpipe.integrations.langchain import NodeRunnable

        return NodeRunnable(node=self)

    def __getattr__(self, name: str) -> Any:
        if name in _RUNNABLE_METHODS:
            return getattr(self.as_runnable(), name)
        return super().__getattr__(name)  # type: ignore[misc]

    # -- composition ----------------------------------------------------------------------
    def __or__(self, other: Any) -> Any:
        """``node | node`` builds a checked ``Sequence``; anything else composes as LangChain's ``|``."""
        if isinstance(other, Node):
            from ragpipe.graph.compose import Sequence

            return Sequence.of(self, other)
        return self.as_runnable() | other

    def __ror__(self, other: Any) -> Any:
        return other | self.as_runnable()

    # -- drawing --------------------------------------------------------------------------
    def draw_ascii(self) -> str:
        from ragpipe.graph.draw import draw_ascii

        return draw_ascii(self)

    def draw_mermaid(self) -> str:
        from ragpipe.graph.draw import draw_mermaid

        return draw_mermaid(self)

    def get_graph(self, config: Config | None = None) -> Any:
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
