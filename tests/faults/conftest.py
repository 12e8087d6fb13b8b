"""Shared pieces of the fault catalogue: a small in-memory pipeline over a scripted or HTTP LLM."""

from __future__ import annotations

import pytest

from ragpipe.schema import Chunk

DOC_CHUNKS = [
    Chunk(id=f"c{i}", doc_id=f"d{i}", position=0, source=f"notes/{i}.md", start_char=0, end_char=60,
          text=f"API keys fact {i}: rotate the API keys every {30 * (i + 1)} days from the admin console.")
    for i in range(6)
]


@pytest.fixture
def doc_chunks() -> list[Chunk]:
    return list(DOC_CHUNKS)


def pipeline_over(llm, chunks=None, *, method: str = "pointwise_yesno", verify: bool = False, deadline_s=None):
    """``Pipeline`` with an in-memory retriever and the given LLM; ``deadline_s`` sets llm.ask_deadline_s."""
    from ragpipe.config import load_settings
    from ragpipe.context import RunContext
    from ragpipe.graph.memory import InMemoryRetriever
    from ragpipe.graph.presets import build_graph
    from ragpipe.pipeline import Pipeline

    settings = load_settings(**({"llm__ask_deadline_s": deadline_s} if deadline_s is not None else {}))
    graph = build_graph(method, verify=verify, retriever=InMemoryRetriever(chunks or DOC_CHUNKS, top_k=6))
    return Pipeline(graph, RunContext(llm=llm, settings=settings), method=method)
