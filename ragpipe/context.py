"""RunContext: what a pipeline node needs besides the state: LLM, prompts, embedder, store, call log.

One context is built per pipeline and shared by its nodes; each query runs in a copy with its
own call log. ``ctx.llm_for(node)`` returns the LLM recorded under that node's name, so usage
and traces add up per node without the node doing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragpipe.llm.base import LLM
from ragpipe.llm.wrappers import CallLog, Recorded
from ragpipe.prompts import PromptRegistry, default_registry

if TYPE_CHECKING:
    from ragpipe.config import Settings


@dataclass
class RunContext:
    llm: LLM | None = None
    prompts: PromptRegistry = field(default_factory=default_registry)
    embedder: Any | None = None  # ragpipe.ingest.embed.Embedder
    store: Any | None = None  # ragpipe.ingest.store.ChunkStore
    settings: Settings | None = None
    meter: CallLog = field(default_factory=CallLog)  # every LLM call of the run, once
    given: bool = True  # False for the empty context a node falls back to when none was passed

    def llm_for(self, node: str, log: CallLog | None = None) -> LLM:
        """The context's LLM, each call recorded under ``node`` in ``log`` (a child of the
        context's log) or in the context's log. Raises if the context has no LLM."""
        if self.llm is None:
            from ragpipe.errors import ConfigError

            raise ConfigError(missing_llm_message(node, self.given))
        return Recorded(self._llm_under(node, self.llm), log if log is not None else self.meter, node)

    def _llm_under(self, node: str, llm: LLM) -> LLM:
        """Hook for per-query limits around the backend (inside the recorder, so refusals count)."""
        return llm


def missing_llm_message(node: str, given: bool = True) -> str:
    """Why a node has no LLM: the run carried no context at all, or the context has no LLM."""
    if not given:
        return (f"node '{node}' needs an LLM, but the graph ran without a context: use pipe.ask / pipe.arun, "
                "or pass config=with_context(None, pipe.ctx) (from ragpipe.graph.node) to invoke")
    return f"node '{node}' needs an LLM but the pipeline was built without one"
