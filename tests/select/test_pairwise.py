"""Pairwise (PRP) selector: both orders per pair, all-pairs and heapsort counts, bias cancelling."""

from __future__ import annotations

import math
import re

import pytest

from ragpipe.context import RunContext
from ragpipe.llm.scripted import ScriptedLLM, logprob_reply
from ragpipe.select import get_selector
from tests.select.conftest import make_candidates


def relevance_of(text: str) -> int:
    return int(re.search(r"rel=(\d+)", text).group(1))


def judge(request) -> str:
    """Prefers the passage with the higher 'rel=N' marker."""
    body = request.messages[-1].content
    a, b = body.split("Passage B:", 1)
    return "Passage A" if relevance_of(a) > relevance_of(b) else "Passage B"


def marked(relevance: list[int]):
    return make_candidates(len(relevance), texts=[f"rel={r} passage" for r in relevance])


async def test_allpairs_asks_both_orders_of_every_pair_and_ranks_by_wins():
    llm = ScriptedLLM(fn=judge)
    selection = await get_selector("pairwise").select("q?", marked([2, 9, 5, 0]), RunContext(llm=llm))
    assert len(llm.requests) == 4 * 3 == selection.usage.calls
    assert [c.id for c in selection.ranked] == ["c1", "c2", "c0", "c3"]
    assert [c.score for c in selection.ranked] == [3.0, 2.0, 1.0, 0.0]


async def test_a_position_biased_model_produces_ties_not_a_ranking():
    llm = ScriptedLLM(cycle=["Passage A"])  # always picks the first slot
    selection = await get_selector("pairwise").select("q?", marked([2, 9, 5]), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2"]  # input order survives
    assert {c.score for c in selection.ranked} == {1.0}


async def test_heapsort_places_the_top_k_and_keeps_the_rest_in_input_order():
    relevance = [3, 1, 8, 0, 6, 2, 9, 4]
    llm = ScriptedLLM(fn=judge)
    selection = await get_selector("pairwise", method="heapsort", top_k=3).select(
        "q?", marked(relevance), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c6", "c2", "c4", "c0", "c1", "c3", "c5", "c7"]
    n_pairs = len({frozenset((r.messages[-1].content.split("Passage B:")[0],)) for r in llm.requests})
    assert n_pairs >= 1
    assert len(llm.requests) < 8 * 7  # fewer prompts than all pairs
    assert len(llm.requests) % 2 == 0  # every comparison in both orders


async def test_logprob_scoring_compares_the_two_orders():
    def biased(request):
        body = request.messages[-1].content
        a, b = body.split("Passage B:", 1)
        p = 0.8 if relevance_of(a) > relevance_of(b) else 0.6  # prefers A, but less for the worse passage
        return logprob_reply({"A": p, "B": 1 - p})

    llm = ScriptedLLM(fn=biased)
    selection = await get_selector("pairwise", scoring="logprob").select("q?", marked([1, 7]), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c0"]
    assert llm.requests[0].top_logprobs == 20


async def test_unreadable_answers_count_as_ties_and_are_traced():
    llm = ScriptedLLM(cycle=["Both are relevant."])
    selection = await get_selector("pairwise").select("q?", marked([1, 7, 3]), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2"]
    assert any(e.kind == "fallback" for e in selection.trace)
    assert any("every pairwise comparison failed" in e.message for e in selection.trace)


@pytest.mark.parametrize("n", [2, 5])
async def test_allpairs_call_count(n):
    llm = ScriptedLLM(fn=judge)
    await get_selector("pairwise").select("q?", marked(list(range(n))), RunContext(llm=llm))
    assert len(llm.requests) == n * (n - 1)
    assert math.comb(n, 2) * 2 == n * (n - 1)
