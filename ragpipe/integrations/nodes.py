"""What every framework adapter shares: the graph nodes it wraps, the LLM check at construction,
running a node on converted chunks, and making fallbacks visible to the caller.

The LangChain and LlamaIndex adapters only convert documents (``convert``) and call these, so a
selector or verifier behaves the same inside a chain, a query engine or a ragpipe pipeline.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.graph.node import Node, with_context
from ragpipe.graph.nodes import SelectNode, VerifyNode
from ragpipe.graph.state import RunState
from ragpipe.schema import ScoredChunk, TraceEvent

log = logging.getLogger(__name__)



class FallbackWarning(UserWarning):
    """A ragpipe step could not do its job at run time and fell back (input order, cheap signals)."""


def select_node(method: str, config: dict[str, Any], selector: Any = None) -> SelectNode:
    return SelectNode(method=method, config=dict(config), selector=selector)


def verify_node(verifier: Any = None) -> VerifyNode:
    return VerifyNode(verifier=verifier)


def node_needs_llm(node: Node) -> bool:
    """Whether ``node`` asks an LLM as configured (a selector of the registry, the verifier's LLM signals)."""
    if isinstance(node, SelectNode):
        return bool(getattr(node._selector(), "needs_llm", False))
    if isinstance(node, VerifyNode):
        from ragpipe.verify.verifier import _LLM_SIGNALS

        config = getattr(node._verifier(), "config", None)
        return bool(set(getattr(config, "signals", ())) & set(_LLM_SIGNALS))
    return False


def require_llm(node: Node, context: RunContext, adapter: str) -> None:
    """Fail at construction, not with a silent fallback at query time, when the LLM is missing."""
    if context.llm is None and node_needs_llm(node):
        raise ConfigError(
            f"{adapter}: '{node.label}' needs an LLM but the context has none: pass "
            "context=RunContext(llm=...) (or pipe.ctx of a Pipeline), or pick a method that needs no LLM "
            "(e.g. retrieval_order; for the verifier, signals without 'llm')")


class NodeAdapter:
    """The construction every adapter shares: build its one graph node, then check it has its LLM.

    Mixed in before the framework's base class (a pydantic model with a ``context`` field and a
    private ``_node``), so a missing LLM fails when the adapter is made, in every framework.
    """

    def _build(self) -> Node:
        raise NotImplementedError

    def model_post_init(self, __context: Any) -> None:
        self._node = self._build()
        require_llm(self._node, self.context, type(self).__name__)  # type: ignore[attr-defined]


async def run_on_chunks(node: Node, question: str, items: list[ScoredChunk], context: RunContext,
                        callbacks: Any = None) -> RunState:
    """Run one selector or verifier node over converted chunks, in a per-call context."""
    from ragpipe.graph.recording import query_context

    field = "selected" if isinstance(node, VerifyNode) else "candidates"
    state = RunState(question=question, **{field: items})
    config = with_context({"callbacks": callbacks} if callbacks else None, query_context(context))
    return await node.ainvoke(state, config)


def fallbacks(trace: Sequence[TraceEvent]) -> list[str]:
    """The fallback messages of a run, warned about once so they never pass silently."""
    notes = [f"{e.node}: {e.message}" for e in trace if e.kind == "fallback"]
    for note in notes:
        log.warning("ragpipe fell back: %s", note)
        warnings.warn(f"ragpipe fell back: {note}", FallbackWarning, stacklevel=3)
    return notes
