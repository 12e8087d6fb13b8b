"""The graph engine: data-flow checks, sequence/parallel/branch semantics, LangChain behaviour, drawing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableLambda

from ragpipe.context import RunContext
from ragpipe.graph import (
    AcceptNode,
    Branch,
    GenerateNode,
    GraphBuildError,
    Node,
    Parallel,
    RetrieveNode,
    RunState,
    Sequence,
    build_graph,
    fuse_rrf,
    with_context,
)
from ragpipe.graph.memory import InMemoryRetriever
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.schema import Chunk, TraceEvent

CHUNKS = [
    Chunk(id=f"c{i}", doc_id="d1", position=i, text=text, source="notes.txt", start_char=i * 100, end_char=i * 100 + 40)
    for i, text in enumerate(
        [
            "The capital of France is Paris.",
            "Berlin is the capital of Germany.",
            "Paris hosts the Louvre museum.",
            "Bananas are rich in potassium.",
        ]
    )
]


class TakeHead(Node):
    """Keeps the first ``n`` candidates as selected."""

    name: str | None = "head"
    reads = ("candidates",)
    writes = ("selected",)
    n: int = 2

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        return {"selected": state.candidates[: self.n], "trace": [TraceEvent(node=self.label, kind="info", message="head")]}


class Reverse(Node):
    """Reverses the candidates into ``selected``; records the in-flight count for concurrency checks."""

    name: str | None = "reverse"
    reads = ("candidates",)
    writes = ("selected",)
    gate: Any = None

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        if self.gate is not None:
            await self.gate.wait()
        return {"selected": list(reversed(state.candidates))}


class Recorder(Node):
    """Writes ``rationales`` (as an independent branch field)."""

    name: str | None = "recorder"
    reads = ("question",)
    writes = ("rationales",)
    gate: Any = None

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        if self.gate is not None:
            self.gate.set()  # lets the other branch finish: only possible if both run concurrently
        return {"rationales": []}


class Sneaky(Node):
    name: str | None = "sneaky"
    reads = ("question",)
    writes = ("selected",)

    async def arun(self, state: RunState, ctx: RunContext) -> dict[str, Any]:
        return {"selected": [], "answer": None}


def retrieve() -> RetrieveNode:
    return RetrieveNode(retriever=InMemoryRetriever(CHUNKS, top_k=4))


def config(llm: ScriptedLLM | None = None) -> dict:
    return with_context(None, RunContext(llm=llm or ScriptedLLM(["Paris [1]."])))


def test_sequence_runs_nodes_in_order_and_records_timings_and_trace() -> None:
    graph = retrieve() | TakeHead(n=2) | AcceptNode() | GenerateNode()
    state = graph.invoke("What is the capital of France?", config=config())
    assert [c.id for c in state.candidates][:1] == ["c0"]
    assert [c.id for c in state.evidence] == [c.id for c in state.candidates[:2]]
    assert state.answer is not None and state.answer.citations[0].chunk_id == "c0"
    assert list(state.timings) == ["retrieve", "head", "accept", "generate"]
    assert [e.node for e in state.trace][:3] == ["retrieve", "head", "accept"]
    assert state.usage_by_node["generate"].calls == 1


def test_a_node_that_reads_an_unwritten_field_is_refused_at_build_time() -> None:
    with pytest.raises(GraphBuildError, match="'generate' reads `evidence` but nothing before it writes it"):
        retrieve() | GenerateNode()
    with pytest.raises(GraphBuildError, match="'accept' reads `selected`"):
        Sequence.of(retrieve(), AcceptNode(), TakeHead())
    # A partial graph may declare what its caller supplies.
    partial = Sequence.of(AcceptNode(), GenerateNode(), inputs=["selected"])
    assert partial.input_fields() == {"selected", "question"}


def test_a_node_writing_an_undeclared_field_fails_loudly() -> None:
    with pytest.raises(GraphBuildError, match="sneaky"):
        Sneaky().invoke("q")


async def test_parallel_runs_branches_concurrently_and_merges_disjoint_fields() -> None:
    gate = asyncio.Event()
    fan = Parallel(branches=[Reverse(gate=gate), Recorder(gate=gate)])
    graph = retrieve() | fan
    state = await asyncio.wait_for(graph.ainvoke("capital of France", config=config()), timeout=5)
    assert [c.id for c in state.selected] == [c.id for c in reversed(state.candidates)]
    assert {"reverse", "recorder", "parallel"} <= set(state.timings)


def test_parallel_branches_writing_the_same_field_need_a_merge() -> None:
    with pytest.raises(GraphBuildError, match="both write `selected`"):
        Parallel(branches=[TakeHead(), Reverse()])


def test_fuse_rrf_merges_two_rankings() -> None:
    graph = retrieve() | Parallel(branches=[TakeHead(n=2), Reverse()], merge=fuse_rrf("selected"))
    state = graph.invoke("capital of France Paris", config=config())
    a, b, c, d = (x.id for x in state.candidates)
    # head = [a, b]; reverse = [d, c, b, a]  ->  a: 1/61+1/64 > b: 1/62+1/63 > d: 1/61 > c: 1/62
    assert [x.id for x in state.selected] == [a, b, d, c]
    assert state.selected[0].stage_scores["fused"] == pytest.approx(1 / 61 + 1 / 64)
    assert [x.rank for x in state.selected] == [1, 2, 3, 4]


def test_branch_takes_the_path_its_condition_picks() -> None:
    branch = Branch(
        condition=lambda s: len(s.candidates) > 2,
        then=TakeHead(n=1),
        otherwise=Reverse(),
        condition_reads=("candidates",),
        description="more than 2 candidates",
    )
    graph = retrieve() | branch | AcceptNode()
    state = graph.invoke("capital", config=config())
    assert [c.id for c in state.evidence] == [state.candidates[0].id]
    few = RetrieveNode(retriever=InMemoryRetriever(CHUNKS[:2])) | branch | AcceptNode()
    state = few.invoke("capital", config=config())
    assert [c.id for c in state.evidence] == [c.id for c in reversed(state.candidates)]


def test_nodes_compose_with_plain_langchain_runnables_and_batch() -> None:
    chain = (retrieve() | TakeHead(n=1) | AcceptNode() | GenerateNode()) | RunnableLambda(lambda s: s.to_answer().text)
    llm = ScriptedLLM(cycle=["It is Paris [1]."])
    texts = chain.batch(["capital of France?", "Louvre?"], config=config(llm))
    assert texts == ["It is Paris [1].", "It is Paris [1]."]
    assert len(llm.requests) == 2


async def test_abatch_and_callbacks_see_every_node() -> None:
    class Names(BaseCallbackHandler):
        def __init__(self) -> None:
            self.names: list[str] = []

        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            self.names.append(kwargs.get("name"))

    handler = Names()
    graph = retrieve() | TakeHead() | AcceptNode()
    states = await graph.abatch(["capital", "museum"], config={**config(), "callbacks": [handler]})
    assert len(states) == 2
    for name in ("sequence", "retrieve", "head", "accept"):
        assert handler.names.count(name) == 2


def test_ascii_and_mermaid_drawings_show_every_node_in_order() -> None:
    graph = retrieve() | Parallel(branches=[TakeHead(), Reverse()], merge=fuse_rrf("selected")) | AcceptNode() | GenerateNode()
    ascii_art = graph.draw_ascii()
    lines = ascii_art.splitlines()
    assert lines[0] == "(question)" and lines[-1] == "(answer)"
    order = [next(i for i, line in enumerate(lines) if f" {name} " in f"{line} ") for name in ("retrieve", "head", "reverse", "accept", "generate")]
    assert order == sorted(order)
    assert "fuse_rrf" in ascii_art and "evidence, question → answer" in ascii_art
    mermaid = graph.draw_mermaid()
    assert mermaid.startswith("flowchart TD")
    # start→retrieve→fan-out, fan-out→each branch, each branch→merge, merge→accept→generate→finish
    assert mermaid.count("-->") == 9


class _StubVerifier:
    async def verify(self, question, evidence, ctx, rationales=None):  # pragma: no cover - not run here
        raise AssertionError


def test_presets_have_the_documented_shapes() -> None:
    fast = build_graph("fast", verifier=_StubVerifier())
    assert [n.label for n in fast.nodes] == ["retrieve", "cutoff", "verify", "generate"]
    off = build_graph("fast", verify=False)
    assert [n.label for n in off.nodes] == ["retrieve", "cutoff", "accept", "generate"]
    listwise = build_graph("listwise", selector=object(), verifier=_StubVerifier())
    assert [n.label for n in listwise.nodes] == ["retrieve", "listwise", "verify", "generate"]


def test_langchain_get_graph_has_one_node_per_leaf() -> None:
    graph = retrieve() | Parallel(branches=[TakeHead(), Reverse()], merge=fuse_rrf("selected")) | AcceptNode()
    lc_graph = graph.get_graph()
    assert {"retrieve", "head", "reverse", "accept"} <= set(lc_graph.nodes)
    edges = {(e.source, e.target) for e in lc_graph.edges}
    assert {("retrieve", "head"), ("retrieve", "reverse"), ("head", "accept"), ("reverse", "accept")} <= edges
    assert "retrieve --> head" in lc_graph.draw_mermaid()


async def test_astream_events_reports_a_chain_run_per_node() -> None:
    graph = retrieve() | TakeHead() | AcceptNode()
    starts = [e["name"] async for e in graph.astream_events("capital", config=config(), version="v2")
              if e["event"] == "on_chain_start"]
    assert starts == ["sequence", "retrieve", "head", "accept"]


def test_a_graph_inside_a_langchain_run_reports_its_nodes_to_that_run() -> None:
    class Names(BaseCallbackHandler):
        def __init__(self) -> None:
            self.names: list[str] = []

        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            self.names.append(kwargs.get("name"))

    graph = retrieve() | TakeHead() | AcceptNode()
    handler = Names()
    outer = RunnableLambda(lambda q: graph.invoke(q, config()).selected[0].id, name="outer")
    assert outer.invoke("capital of France", config={"callbacks": [handler]}) == "c0"
    assert handler.names[:2] == ["outer", "sequence"] and "head" in handler.names


def test_plain_runs_record_timings_and_trace_without_langchain() -> None:
    graph = retrieve() | TakeHead(n=1) | AcceptNode()
    state = asyncio.run(graph("capital of France", config()))
    assert list(state.timings) == ["retrieve", "head", "accept"]
    assert [e.node for e in state.trace] == ["retrieve", "head", "accept"]
    assert state.evidence[0].id == "c0"
