"""RunContext: what a pipeline node needs besides the state: LLM, prompts, embedder, store, meter.

One context is built per pipeline and shared by its nodes and by concurrent queries; it holds
no per-query state. ``ctx.llm_for(node)`` returns the LLM metered under that node's name, so
usage adds up per node without the node doing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragpipe.llm.base import LLM
from ragpipe.llm.wrappers import Metered, UsageMeter
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
    meter: UsageMeter = field(default_factory=UsageMeter)

    def llm_for(self, node: str) -> LLM:
        """The context's LLM, metered under ``node``. Raises if the context has no LLM."""
        if self.llm is None:
            from ragpipe.errors import ConfigError

            raise ConfigError(f"node '{node}' needs an LLM but the pipeline was built without one")
        return Metered(self.llm, self.meter, node)
