"""The public Python API: build a pipeline once, ask it questions from many threads or coroutines.

    from ragpipe import Pipeline

    pipe = Pipeline.from_settings(docs="~/notes")          # indexes on first use
    answer = pipe.ask("How do I rotate the API keys?")      # or: await pipe.aask(...)
    print(answer.text)
    for c in answer.citations:
        print(c.n, c.source, c.start_char, c.end_char)

The pipeline's components (retriever, selector, verifier, LLM, prompts) are shared and read-only;
everything that belongs to one query (state, usage meter, trace, LLM time budget) is created per
call, so concurrent ``ask``/``aask`` calls are safe and each ``Answer`` reports only its own usage.
Each query's LLM calls share one deadline (``llm.ask_deadline_s``): a hung server costs at most
that long, nodes fall back once it has passed, and the answer's trace says so.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragpipe.context import RunContext
from ragpipe.generate.generator import AnswerEvent, Generation, TokenEvent
from ragpipe.llm.base import LLM, run_sync
from ragpipe.llm.deadline import DEFAULT_DEADLINE_S, CallBudget
from ragpipe.schema import Answer

if TYPE_CHECKING:
    from ragpipe.config import Settings
    from ragpipe.graph.node import Node
    from ragpipe.graph.state import RunState


class Pipeline:
    """A graph plus the shared context it runs in."""

    def __init__(self, graph: Node, ctx: RunContext, *, index: Any = None, method: str = "custom") -> None:
        self.graph = graph
        self.ctx = ctx
        self.index = index
        self.method = method

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls,
        docs: str | Path | None = None,
        *,
        index: Any = None,
        method: str | None = None,
        verify: bool | None = None,
        answer: str | None = None,
        settings: Settings | None = None,
        llm: LLM | None = None,
        top_k: int | None = None,
        auto_index: bool = True,
        progress: Callable[..., Any] | None = None,
        **overrides: Any,
    ) -> Pipeline:
        """Build the standard pipeline over a documents folder (or an opened ``index``).

        ``overrides`` are settings in ``section__field`` form (``llm__model="..."``). Without
        ``llm`` the LLM comes from the settings (embedded llama.cpp by default). ``answer`` is the
        answer mode: ``extractive``, ``generate`` or ``auto`` (the ``answer`` setting).
        """
        from ragpipe.config import load_settings
        from ragpipe.prompts import PromptRegistry

        if settings is not None and overrides:
            from ragpipe.errors import ConfigError

            raise ConfigError(f"pass either settings or setting overrides, not both (got {sorted(overrides)})")
        if settings is None:
            settings = load_settings(answer=answer, **overrides)
        elif answer is not None:
            from ragpipe.generate.generator import check_answer_mode

            settings = settings.model_copy(update={"answer": check_answer_mode(answer)})
        method = method or settings.method
        if index is None:
            if docs is None:
                from ragpipe.errors import ConfigError

                raise ConfigError("a pipeline needs documents: pass docs=<folder> or index=<opened index>")
            index = open_or_build_index(docs, settings, auto_index=auto_index, progress=progress)
        if llm is None:
            from ragpipe.llm.factory import build_llm

            llm = build_llm(settings)
        from ragpipe.concurrency import set_workers
        from ragpipe.retrieve import Retriever

        set_workers(settings.retrieval.worker_threads)
        retriever = Retriever(index.store, index.embedder, settings.retrieval)
        prompts = PromptRegistry([settings.prompts_dir] if settings.prompts_dir else [])
        ctx = RunContext(llm=llm, prompts=prompts, embedder=index.embedder, store=index.store, settings=settings)
        graph = graph_from_settings(settings, method=method, verify=verify, retriever=retriever, top_k=top_k)
        graph.prepare()
        return cls(graph, ctx, index=index, method=method)

    # -- queries ----------------------------------------------------------------------------
    def new_budget(self) -> CallBudget:
        """A fresh LLM time budget for one query, from ``llm.ask_deadline_s``."""
        settings = self.ctx.settings
        return CallBudget(settings.llm.ask_deadline_s if settings is not None else DEFAULT_DEADLINE_S)

    def _query_context(self, trace: bool, budget: CallBudget | None, top_k: int | None) -> Any:
        from ragpipe.graph.recording import query_context

        if top_k is not None and top_k < 1:
            from ragpipe.errors import ConfigError

            raise ConfigError(f"top_k must be at least 1 (got {top_k})")
        return query_context(self.ctx, record=trace, budget=budget or self.new_budget())

    async def arun(self, question: str, *, filters: Any = None, top_k: int | None = None,
                   trace: bool = False, budget: CallBudget | None = None) -> RunState:
        """Run the graph and return the final state (the ``Answer`` plus intermediate fields).

        ``budget`` lets a caller watch the query's LLM waits (``budget.waiting()``); a fresh one
        from the settings is used otherwise.
        """
        from ragpipe.graph.node import with_context
        from ragpipe.graph.state import RunState

        ctx = self._query_context(trace, budget, top_k)
        state = RunState(question=question, filters=filters, top_k=top_k)
        final = await self.graph.ainvoke(state, with_context(None, ctx))
        return _with_recorded(final, ctx)

    async def aask(self, question: str, *, filters: Any = None, top_k: int | None = None,
                   trace: bool = False, budget: CallBudget | None = None) -> Answer:
        """Answer ``question`` (async). ``trace=True`` keeps every prompt and raw LLM output."""
        state = await self.arun(question, filters=filters, top_k=top_k, trace=trace, budget=budget)
        return state.to_answer()

    def ask(self, question: str, *, filters: Any = None, top_k: int | None = None,
            trace: bool = False, budget: CallBudget | None = None) -> Answer:
        """Answer ``question`` (sync; safe to call from many threads at once)."""
        return run_sync(lambda: self.aask(question, filters=filters, top_k=top_k, trace=trace, budget=budget))

    async def astream(self, question: str, *, filters: Any = None, top_k: int | None = None,
                      trace: bool = False, budget: CallBudget | None = None) -> AsyncIterator[TokenEvent | AnswerEvent]:
        """Yield answer text as it is generated, then one ``AnswerEvent`` with the full ``Answer``.

        Token events carry raw model text; the final answer's text has validated, renumbered
        citations (out-of-range markers removed), so clients should replace what they streamed.
        """
        from ragpipe.graph.node import with_context
        from ragpipe.graph.nodes import GenerateNode
        from ragpipe.graph.state import RunState

        head = self._evidence_graph()
        if head is None:
            answer = await self.aask(question, filters=filters, top_k=top_k, trace=trace, budget=budget)
            yield TokenEvent(answer.text)
            yield AnswerEvent(answer)
            return
        ctx = self._query_context(trace, budget, top_k)
        config = with_context(None, ctx)
        state = await head.ainvoke(RunState(question=question, filters=filters, top_k=top_k), config)
        generate: GenerateNode = self.graph.nodes[-1]  # type: ignore[attr-defined]
        start = time.perf_counter()
        async for event in generate.generator.astream(question, state.evidence, ctx):
            if isinstance(event, Generation):
                state = state.apply(
                    {"answer": event.answer, "trace": event.events,
                     "timings": {generate.label: time.perf_counter() - start},
                     "usage_by_node": ctx.meter.by_node()}
                )
            else:
                yield event
        yield AnswerEvent(_with_recorded(state, ctx).to_answer())

    async def aevidence(self, question: str, *, filters: Any = None, top_k: int | None = None,
                        config: dict[str, Any] | None = None) -> RunState:
        """Run everything before generation: the state holds ``evidence``, ``dropped``, ``verdicts``.

        This is what the LangChain and LlamaIndex retrievers return from a pipeline; ``config``
        (a LangChain RunnableConfig, e.g. with ``callbacks``) lets their tracing see every node.
        """
        from ragpipe.graph.node import with_context
        from ragpipe.graph.state import RunState

        head = self._evidence_graph() or self.graph
        state = RunState(question=question, filters=filters, top_k=top_k)
        return await head.ainvoke(state, with_context(config, self._query_context(False, None, top_k)))

    def _evidence_graph(self) -> Node | None:
        """The graph without its final generate node (None when it does not end with one)."""
        from ragpipe.graph.compose import Sequence
        from ragpipe.graph.nodes import GenerateNode

        graph = self.graph
        if isinstance(graph, Sequence) and graph.nodes and isinstance(graph.nodes[-1], GenerateNode):
            return Sequence(nodes=graph.nodes[:-1], inputs=graph.inputs)
        return None

    # -- inspection -------------------------------------------------------------------------
    def draw_ascii(self) -> str:
        return self.graph.draw_ascii()

    def draw_mermaid(self) -> str:
        return self.graph.draw_mermaid()


def graph_from_settings(settings: Settings, *, method: str | None = None, verify: bool | None = None,
                        retriever: Any = None, top_k: int | None = None) -> Node:
    """The graph the settings describe: the method with its ``[select.<method>]`` options and,
    when verifying, a verifier with the ``[verifier]`` options."""
    from ragpipe.graph.presets import build_graph

    method = method or settings.method
    verify = settings.verify if verify is None else verify
    verifier = None
    if verify:
        from ragpipe.verify import Verifier

        verifier = Verifier(settings.verifier_config())
    return build_graph(method, verify=verify, retriever=retriever, top_k=top_k or settings.retrieval.top_k,
                       selector_config=settings.selector_options(method), verifier=verifier)


def _with_recorded(state: RunState, ctx: Any) -> RunState:
    """The state with the query's recorded LLM calls appended to its trace (when recorded)."""
    events = ctx.recorded_events()
    return state.apply({"trace": events}) if events else state


def not_a_folder_message(path: Path) -> str:
    """What to say when the documents path is not a folder (it is a file, or it is missing)."""
    if path.is_file():
        return (f"{path} is a file; the documents must be a folder: put the file in a folder and pass "
                f"that folder (e.g. {path.parent})")
    return f"documents folder {path} does not exist: pass an existing folder of documents"


def open_or_build_index(docs: str | Path, settings: Settings, *, auto_index: bool = True,
                        progress: Callable[..., Any] | None = None) -> Any:
    """Open the index of ``docs``; index the folder first when it has no index yet.

    An existing index is used as it is (``ragpipe index`` refreshes it), so asking stays fast;
    a pipeline that stays up sees such a refresh, even by another process, from its next query on.
    """
    from ragpipe.errors import ConfigError, EmbeddingMismatch, StoreError
    from ragpipe.ingest.indexer import index_folder, open_index

    folder = Path(docs).expanduser()
    if not folder.is_dir():
        raise ConfigError(not_a_folder_message(folder))
    try:
        index = open_index(folder, settings)
        if index.store.count() > 0 or not auto_index:
            return index
    except EmbeddingMismatch:
        raise
    except StoreError:
        if not auto_index:
            raise
    index_folder(folder, settings, progress=progress)
    index = open_index(folder, settings)
    if index.store.count() == 0:
        raise ConfigError(f"no text could be extracted from the documents in {folder}")
    return index
