"""LangChain adapters: a retriever, document compressors for the selectors and the verifier, and
the Runnable skin of a graph node.

    from langchain_core.runnables import RunnablePassthrough
    retriever = RagpipeRetriever.from_pipeline(pipe)            # retrieve → select → verify
    compressor = RagpipeSelectorCompressor(method="listwise", context=ctx)
    chain = {"docs": retriever, "question": RunnablePassthrough()} | prompt | llm

``node.as_runnable()`` (a ``NodeRunnable``) makes any ragpipe graph node a LangChain Runnable
with callbacks and tracing per node; graph nodes use it by themselves when LangChain needs them.

Every class has a real async path (``ainvoke`` / ``acompress_documents``) that awaits ragpipe's
own coroutines; the sync path runs the same coroutine to completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
    Callbacks,
)
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from pydantic import ConfigDict, Field, PrivateAttr

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.graph.node import Node
from ragpipe.graph.state import RunState, coerce_state
from ragpipe.integrations.convert import chunk_metadata, kept_with_verdicts, scored_chunk
from ragpipe.integrations.nodes import NodeAdapter, fallbacks, run_on_chunks, select_node, verify_node
from ragpipe.llm.base import run_sync
from ragpipe.schema import ScoredChunk


class NodeRunnable(RunnableSerializable[RunState, RunState]):
    """A ragpipe graph node as a LangChain Runnable: one chain run per node, children nested."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    node: Any  # a ragpipe.graph.Node

    def model_post_init(self, __context: Any) -> None:
        if self.name is None:
            self.name = self.node.label

    async def _ainvoke(
        self, input_: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> RunState:
        child_config = patch_config(config, callbacks=run_manager.get_child())
        return await self.node.astep(coerce_state(input_), child_config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> RunState:  # noqa: A002
        return await self._acall_with_config(self._ainvoke, input, config, run_type="chain")

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> RunState:  # noqa: A002
        return run_sync(lambda: self.ainvoke(input, config, **kwargs))

    def get_graph(self, config: RunnableConfig | None = None) -> Any:
        return self.node.get_graph(config)


def to_document(item: ScoredChunk, **extra: Any) -> Document:
    return Document(page_content=item.chunk.text, metadata=chunk_metadata(item, **extra), id=item.chunk.id)


def from_documents(documents: Sequence[Document]) -> list[ScoredChunk]:
    return [scored_chunk(d.page_content, d.metadata, i, ident=d.id) for i, d in enumerate(documents)]


class RagpipeRetriever(BaseRetriever):
    """Documents for a query from a ragpipe ``Retriever``, or the verified evidence of a ``Pipeline``.

    From a pipeline, the retriever's callbacks reach every inner node (they show in
    ``astream_events``), and a fallback inside the run is warned about and named in each
    document's ``fallbacks`` metadata.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any = None  # anything with ``aretrieve(question, k=, filters=)``
    pipeline: Any = None  # a ragpipe.Pipeline: returns its evidence (no answer generation)
    k: int | None = None
    filters: Any = None

    def model_post_init(self, __context: Any) -> None:
        if self.retriever is None and self.pipeline is None:
            raise ConfigError("RagpipeRetriever needs a retriever or a pipeline")

    @classmethod
    def from_pipeline(cls, pipeline: Any, **kwargs: Any) -> RagpipeRetriever:
        return cls(pipeline=pipeline, **kwargs)

    async def _search(self, query: str, callbacks: Any = None) -> list[Document]:
        if self.pipeline is not None:
            config = {"callbacks": callbacks} if callbacks else None
            state = await self.pipeline.aevidence(query, filters=self.filters, top_k=self.k, config=config)
            verdicts = {v.chunk_id: v for v in state.verdicts}
            notes = fallbacks(state.trace)
            return [
                to_document(e, verdict=verdicts[e.id].reason if e.id in verdicts else None,
                            rationales=[r.text for r in state.rationales], fallbacks=notes)
                for e in state.evidence
            ]
        return [to_document(hit) for hit in await self.retriever.aretrieve(query, k=self.k, filters=self.filters)]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return run_sync(lambda: self._search(query, run_manager.get_child()))

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        return await self._search(query, run_manager.get_child())


class _RagpipeCompressor(NodeAdapter, BaseDocumentCompressor):
    """Runs one ragpipe graph node over the documents; ``callbacks`` reach the node."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    context: Any = Field(default_factory=RunContext)  # a ragpipe RunContext (LLM, prompts)
    _node: Any = PrivateAttr(default=None)

    def _out(self, state: RunState, documents: Sequence[Document]) -> list[Document]:
        raise NotImplementedError

    async def _compress(self, documents: Sequence[Document], query: str, callbacks: Callbacks | None) -> list[Document]:
        if not documents:
            return []
        state = await run_on_chunks(self._node, query, from_documents(documents), self.context, callbacks)
        return self._out(state, documents)

    def compress_documents(self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None) -> Sequence[Document]:
        return run_sync(lambda: self._compress(documents, query, callbacks))

    async def acompress_documents(self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None) -> Sequence[Document]:
        return await self._compress(documents, query, callbacks)


def _originals(documents: Sequence[Document]) -> dict[str, Document]:
    return {item.id: doc for item, doc in zip(from_documents(documents), documents)}


class RagpipeSelectorCompressor(_RagpipeCompressor):
    """Keeps and reorders documents with a ragpipe selector (``listwise``, ``meteora``, …)."""

    method: str = "meteora"
    config: dict[str, Any] = Field(default_factory=dict)
    selector: Any = None  # built from the registry when None

    def _build(self) -> Node:
        return select_node(self.method, self.config, self.selector)

    def _out(self, state: RunState, documents: Sequence[Document]) -> list[Document]:
        originals, notes = _originals(documents), fallbacks(state.trace)
        out = []
        for item in state.selected:
            doc = originals[item.id]
            meta = {**doc.metadata, **item.flat("chunk_id", "score", "stage_scores")}
            if notes:
                meta["fallbacks"] = notes
            out.append(Document(page_content=doc.page_content, metadata=meta, id=doc.id))
        return out


class RagpipeVerifierCompressor(_RagpipeCompressor):
    """Drops documents the ragpipe verifier rejects (poisoned, injected, inconsistent)."""

    verifier: Any = None  # ragpipe.verify.Verifier; a default one when None

    def _build(self) -> Node:
        return verify_node(self.verifier)

    def _out(self, state: RunState, documents: Sequence[Document]) -> list[Document]:
        originals, notes = _originals(documents), fallbacks(state.trace)
        out = []
        for chunk_id, verdict in kept_with_verdicts(state):
            doc = originals[chunk_id]
            meta = {**doc.metadata, "chunk_id": chunk_id, **verdict}
            if notes:
                meta["fallbacks"] = notes
            out.append(Document(page_content=doc.page_content, metadata=meta, id=doc.id))
        return out
