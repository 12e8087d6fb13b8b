"""LlamaIndex adapters: a retriever and node postprocessors for the selectors and the verifier.

    engine = RetrieverQueryEngine.from_args(
        RagpipeLlamaRetriever(retriever=ragpipe_retriever),
        llm=my_llm,                                   # pass one explicitly: no OpenAI default
        node_postprocessors=[RagpipeSelectorPostprocessor(method="listwise", context=ctx),
                             RagpipeVerifierPostprocessor(context=ctx)],
    )

The async paths (``aretrieve``, ``apostprocess_nodes``) await ragpipe's coroutines directly
rather than pushing sync code to a thread.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import Field, PrivateAttr

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.graph.node import Node
from ragpipe.graph.state import RunState
from ragpipe.integrations.convert import chunk_metadata, kept_with_verdicts, scored_chunk
from ragpipe.integrations.nodes import NodeAdapter, fallbacks, run_on_chunks, select_node, verify_node
from ragpipe.llm.base import run_sync
from ragpipe.schema import ScoredChunk


def to_node(item: ScoredChunk, **extra: Any) -> NodeWithScore:
    meta = chunk_metadata(item, **extra)
    meta.pop("stage_scores", None)  # LlamaIndex metadata must stay flat
    node = TextNode(id_=item.chunk.id, text=item.chunk.text, metadata=meta,
                    excluded_llm_metadata_keys=list(meta), excluded_embed_metadata_keys=list(meta))
    return NodeWithScore(node=node, score=item.score)


def from_nodes(nodes: list[NodeWithScore]) -> list[ScoredChunk]:
    return [scored_chunk(n.node.get_content(), n.node.metadata, i, ident=n.node.node_id, score=n.score)
            for i, n in enumerate(nodes)]


class RagpipeLlamaRetriever(BaseRetriever):
    """Nodes for a query from a ragpipe ``Retriever``, or the verified evidence of a ``Pipeline``."""

    def __init__(self, retriever: Any = None, *, pipeline: Any = None, k: int | None = None, filters: Any = None,
                 **kwargs: Any) -> None:
        if retriever is None and pipeline is None:
            raise ConfigError("RagpipeLlamaRetriever needs a retriever or a pipeline")
        self._ragpipe_retriever = retriever
        self._pipeline = pipeline
        self._k = k
        self._filters = filters
        super().__init__(**kwargs)

    async def _search(self, query: str) -> list[NodeWithScore]:
        if self._pipeline is not None:
            state = await self._pipeline.aevidence(query, filters=self._filters, top_k=self._k)
            notes = fallbacks(state.trace)
            return [to_node(e, fallbacks="; ".join(notes)) if notes else to_node(e) for e in state.evidence]
        return [to_node(hit) for hit in await self._ragpipe_retriever.aretrieve(query, k=self._k, filters=self._filters)]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return run_sync(lambda: self._search(query_bundle.query_str))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await self._search(query_bundle.query_str)


class _RagpipePostprocessor(NodeAdapter, BaseNodePostprocessor):
    """Runs one ragpipe graph node over the nodes; checks for a needed LLM at construction."""

    context: Any = Field(default_factory=RunContext, exclude=True)  # a ragpipe RunContext
    _node: Any = PrivateAttr(default=None)

    def _out(self, state: RunState, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        raise NotImplementedError

    async def _process(self, nodes: list[NodeWithScore], query: str) -> list[NodeWithScore]:
        state = await run_on_chunks(self._node, query, from_nodes(nodes), self.context)
        return self._out(state, nodes)

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes or query_bundle is None:
            return list(nodes)
        return run_sync(lambda: self._process(nodes, query_bundle.query_str))

    async def _apostprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes or query_bundle is None:
            return list(nodes)
        return await self._process(nodes, query_bundle.query_str)


def _with_metadata(original: NodeWithScore, score: float | None, **extra: Any) -> NodeWithScore:
    """A copy of ``original`` with ``extra`` in its metadata (the caller's node is not changed)."""
    node = original.node.model_copy()
    node.metadata = {**original.node.metadata, **extra}
    hidden = [k for k in extra if k not in node.excluded_llm_metadata_keys]
    node.excluded_llm_metadata_keys = [*node.excluded_llm_metadata_keys, *hidden]
    node.excluded_embed_metadata_keys = [*node.excluded_embed_metadata_keys,
                                         *(k for k in extra if k not in node.excluded_embed_metadata_keys)]
    return NodeWithScore(node=node, score=score)


def _originals(nodes: list[NodeWithScore]) -> dict[str, NodeWithScore]:
    return {item.id: n for item, n in zip(from_nodes(nodes), nodes)}


def _notes(trace: Any) -> dict[str, Any]:
    notes = fallbacks(trace)
    return {"fallbacks": "; ".join(notes)} if notes else {}


class RagpipeSelectorPostprocessor(_RagpipePostprocessor):
    """Keeps and reorders nodes with a ragpipe selector (``listwise``, ``meteora``, …).

    The node's score becomes the selection score; the retrieval score stays in the metadata
    (``retrieval_score``), next to ``selection_score``.
    """

    method: str = "meteora"
    config: dict[str, Any] = Field(default_factory=dict)
    selector: Any = Field(default=None, exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "RagpipeSelectorPostprocessor"

    def _build(self) -> Node:
        return select_node(self.method, self.config, self.selector)

    def _out(self, state: RunState, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        originals, notes = _originals(nodes), _notes(state.trace)
        return [_with_metadata(originals[item.id], item.score, retrieval_score=originals[item.id].score,
                               selection_score=item.score, **notes)
                for item in state.selected]


class RagpipeVerifierPostprocessor(_RagpipePostprocessor):
    """Drops nodes the ragpipe verifier rejects; the verdict goes into the kept nodes' metadata."""

    verifier: Any = Field(default=None, exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "RagpipeVerifierPostprocessor"

    def _build(self) -> Node:
        return verify_node(self.verifier)

    def _out(self, state: RunState, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        originals, notes = _originals(nodes), _notes(state.trace)
        return [_with_metadata(originals[chunk_id], originals[chunk_id].score, **verdict, **notes)
                for chunk_id, verdict in kept_with_verdicts(state)]
