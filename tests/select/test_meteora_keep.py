"""How many chunks METEORA keeps: the recall guard against an elbow that cuts too early.

The scenario a new user hit: 30 hybrid candidates for a simple question, one chunk a little
closer to the question than the rest. The z-score elbow on the pooled scores cut after that one
chunk (the first gap of a sorted list is nearly always the largest), and neighbour expansion then
padded the answer with four chunks nobody had ranked. The guard trusts an elbow only when its
knee is pronounced, otherwise keeps a budgeted top-k, and counts expanded neighbours in the budget.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.schema import Chunk, ScoredChunk

QUESTION = "When did the Eiffel Tower open to the public?"
RATIONALE = "opening ceremony of the tower for visitors in 1889"


def vector(to_question: float, to_rationale: float = 0.0) -> np.ndarray:
    """A unit vector with the given cosines to the question (x axis) and the rationale (y axis)."""
    return np.array([to_question, to_rationale, np.sqrt(1 - to_question**2 - to_rationale**2)], dtype=np.float32)


class TableEmbedder:
    """Known texts map to crafted unit vectors (3-d)."""

    name, dim, max_tokens = "table-3d", 3, 256

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, texts, *, batch_size=None):  # noqa: ANN001
        return np.stack([self.table[t] for t in texts])

    def embed_query(self, text):  # noqa: ANN001
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class NeighbourStore:
    """Every candidate sits in the middle of its own three-chunk document."""

    def neighbours(self, doc_id: str, position: int, window: int) -> list[Chunk]:
        return [Chunk(id=f"{doc_id}#{p}", doc_id=doc_id, position=p, text=f"{doc_id} part {p}")
                for p in range(position - window, position + window + 1) if p != position]


def thirty_candidates() -> tuple[list[ScoredChunk], dict[str, np.ndarray]]:
    """Hybrid-style candidates: c0 a little closer to the question, then a gentle slope; c7 matches
    the rationale's facet. Retriever scores are RRF-like (small, smoothly decreasing)."""
    cosines = [0.80] + [0.70 - 0.008 * i for i in range(1, 30)]
    table = {QUESTION: vector(1.0), RATIONALE: vector(0.0, 1.0)}
    out = []
    for i, cos in enumerate(cosines):
        text = f"candidate passage {i}"
        table[text] = vector(cos, 0.55 if i == 7 else 0.0)
        score = 1 / (60 + i + 1) + 1 / (60 + i + 2)
        out.append(ScoredChunk(chunk=Chunk(id=f"c{i}", doc_id=f"d{i}", position=1, text=text), score=score,
                               rank=i + 1, stage_scores={"hybrid": score}, stage_ranks={"hybrid": i + 1}))
    return out, table


def context(reply: str) -> RunContext:
    _, table = thirty_candidates()
    return RunContext(llm=ScriptedLLM([reply]), embedder=TableEmbedder(table), store=NeighbourStore())


ONE_RATIONALE = json.dumps({"rationales": [{"label": "opening", "text": RATIONALE}]})


async def test_paper_elbow_reproduces_the_one_of_thirty_cut() -> None:
    """Without the guard (the paper's ECSE) the elbow keeps one chunk and expansion adds four."""
    from ragpipe.select import get_selector

    candidates, _ = thirty_candidates()
    paper = get_selector("meteora", recall_guard=False, min_keep=1)
    selection = await paper.select(QUESTION, candidates, context(ONE_RATIONALE))
    assert selection.cutoff.keep == 1 and selection.cutoff.n == 30
    assert len(selection.extras["stages"]["expanded"]) == 4
    assert len(selection.kept) == 6


async def test_guard_keeps_a_budgeted_top_k_when_the_knee_is_not_pronounced() -> None:
    from ragpipe.select import get_selector

    candidates, _ = thirty_candidates()
    selection = await get_selector("meteora").select(QUESTION, candidates, context(ONE_RATIONALE))
    cutoff = selection.cutoff
    assert cutoff.trusted is False and cutoff.elbow_keep == 1
    assert 0 < cutoff.prominence < 0.7
    assert len(selection.kept) <= 5  # the budget holds neighbours too
    ids = {c.id for c in selection.kept}
    assert {"c0", "c1"} <= ids  # never fewer than min_keep=2 of the best
    assert not selection.extras["stages"]["expanded"]  # a full budget leaves no room for neighbours
    event = next(e for e in selection.trace if e.kind == "cutoff")
    assert "not pronounced" in event.message and event.data["trusted"] is False
    assert event.data["budget"] == 5 and event.data["prominence"] == pytest.approx(cutoff.prominence)


async def test_the_guard_keeps_what_top_k_of_the_same_size_keeps_when_rationales_are_ignored() -> None:
    """rationale_weight=0 orders by the retriever alone: the kept set is exactly its top-k."""
    from ragpipe.select import get_selector

    candidates, _ = thirty_candidates()
    selection = await get_selector("meteora", rationale_weight=0.0).select(QUESTION, candidates,
                                                                          context(ONE_RATIONALE))
    assert [c.id for c in selection.kept] == [c.id for c in candidates[: len(selection.kept)]]


def pronounced_candidates() -> tuple[list[ScoredChunk], dict[str, np.ndarray]]:
    """Two chunks answer the question, the other 28 are far below: a knee worth trusting."""
    cosines = [0.95, 0.93] + [0.30 - 0.004 * i for i in range(28)]
    table = {QUESTION: vector(1.0)}
    out = []
    for i, cos in enumerate(cosines):
        text = f"candidate passage {i}"
        table[text] = vector(cos)
        out.append(ScoredChunk(chunk=Chunk(id=f"c{i}", doc_id=f"d{i}", position=1, text=text),
                               score=30.0 - i, rank=i + 1))
    return out, table


async def test_a_pronounced_knee_is_trusted_and_neighbours_fill_the_rest_of_the_budget() -> None:
    from ragpipe.select import get_selector

    candidates, table = pronounced_candidates()
    ctx = RunContext(llm=None, embedder=TableEmbedder(table), store=NeighbourStore())
    selection = await get_selector("meteora", rationales="question", budget=4).select(QUESTION, candidates, ctx)
    assert selection.cutoff.trusted is True and selection.cutoff.keep == 2
    assert [c.id for c in selection.kept[:2]] == ["c0", "c1"]
    assert len(selection.kept) == 4  # two neighbours of c0 fit; c1's do not
    assert selection.extras["stages"]["expanded"] == ["d0#0", "d0#2"]
    expansion = next(e for e in selection.trace if e.kind == "expansion")
    assert expansion.data["left_out_for_budget"] == 2


async def test_budget_caps_what_an_expanded_selection_may_add() -> None:
    from ragpipe.select import get_selector

    candidates, table = pronounced_candidates()
    ctx = RunContext(llm=None, embedder=TableEmbedder(table), store=NeighbourStore())
    selection = await get_selector("meteora", rationales="question", budget=2).select(QUESTION, candidates, ctx)
    assert [c.id for c in selection.kept] == ["c0", "c1"]


@pytest.mark.parametrize("setting", [{"budget": 0}, {"knee_prominence": 1.5}, {"rationale_weight": -0.1},
                                     {"min_keep": 6, "budget": 5}, {"budgett": 5}])
def test_bad_guard_settings_are_config_errors_naming_the_field(setting) -> None:  # noqa: ANN001
    from ragpipe.select import get_selector

    with pytest.raises(ConfigError) as err:
        get_selector("meteora", **setting)
    named = "budget" if "min_keep" in setting else next(iter(setting))
    assert named in str(err.value)
