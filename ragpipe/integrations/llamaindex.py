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

import inspect
from typing import Any

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import Field

from ragpipe.context import RunContext
from ragpipe.integrations.convert import chunk_metadata, scored_chunk
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
            raise ValueError("RagpipeLlamaRetriever needs a retriever or a pipeline")
        self._ragpipe_retriever = retriever
        self._pipeline = pipeline
        self._k = k
        self._filters = filters
        super().__init__(**kwargs)

    async def _search(self, query: str) -> list[NodeWithScore]:
        if self._pipeline is not None:
            state = await self._pipeline.aevidence(query, filters=self._filters, top_k=self._k)
            return [to_node(e) for e in state.evidence]
        return [to_node(hit) for hit in await self._ragpipe_retriever.aretrieve(query, k=self._k, filters=self._filters)]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return run_sync(lambda: self._search(query_bundle.query_str))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await self._search(query_bundle.query_str)


class _RagpipePostprocessor(BaseNodePostprocessor):
    context: Any = Field(default_factory=RunContext, exclude=True)  # a ragpipe RunContext

    async def _process(self, nodes: list[NodeWithScore], query: str) -> list[NodeWithScore]:
        raise NotImplementedError

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes or query_bundle is None:
            return list(nodes)
        return run_sync(lambda: self._process(nodes, query_bundle.query_str))

    async def _apostprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes or query_bundle is None:
            return list(nodes)
        return await self._process(nodes, query_bundle.query_str)


class RagpipeSelectorPostprocessor(_RagpipePostprocessor):
    """Keeps and reorders nodes with a ragpipe selector (``listwise``, ``meteora``, …)."""

    method: str = "meteora"
    config: dict[str, Any] = Field(default_factory=dict)
    selector: Any = Field(default=None, exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "RagpipeSelectorPostprocessor"

    async def _process(self, nodes: list[NodeWithScore], query: str) -> list[NodeWithScore]:
        if self.selector is None:
            from ragpipe.select import get_selector

            self.selector = get_selector(self.method, **self.config)
        items = from_nodes(nodes)
        originals = {item.id: n for item, n in zip(items, nodes)}
        selection = await self.selector.select(query, items, self.context)
        kept = selection.kept if selection.kept is not None else selection.ranked
        return [NodeWithScore(node=originals[item.id].node, score=item.score) for item in kept]


class RagpipeVerifierPostprocessor(_RagpipePostprocessor):
    """Drops nodes the ragpipe verifier rejects; the reason goes into the kept nodes' metadata."""

    verifier: Any = Field(default=None, exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "RagpipeVerifierPostprocessor"

    async def _process(self, nodes: list[NodeWithScore], query: str) -> list[NodeWithScore]:
        if self.verifier is None:
            from ragpipe.verify import Verifier

            self.verifier = Verifier()
        items = from_nodes(nodes)
        originals = {item.id: n for item, n in zip(items, nodes)}
        result = self.verifier.verify(query, items, self.context)
        if inspect.isawaitable(result):
            result = await result
        return [originals[item.id] for item in result.accepted]
