"""Pairwise (PRP) selector: both orders per pair, all-pairs and heapsort counts, bias cancelling."""

from __future__ import annotations

import math
import re

import pytest

from ragpipe.context import RunContext
from ragpipe.llm.scripted import ScriptedLLM, logprob_reply
from ragpipe.select import get_selector
from tests.select.conftest import RAW, make_candidates


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
    selection = await get_selector("pairwise", method="allpairs", **RAW).select("q?", marked([2, 9, 5, 0]),
                                                                             RunContext(llm=llm))
    assert len(llm.requests) == 4 * 3 == selection.usage.calls
    assert [c.id for c in selection.ranked] == ["c1", "c2", "c0", "c3"]
    assert [c.score for c in selection.ranked] == [3.0, 2.0, 1.0, 0.0]


async def test_a_position_biased_model_produces_ties_not_a_ranking():
    llm = ScriptedLLM(cycle=["Passage A"])  # always picks the first slot
    selection = await get_selector("pairwise", method="allpairs", **RAW).select("q?", marked([2, 9, 5]),
                                                                             RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2"]  # input order survives
    assert {c.score for c in selection.ranked} == {1.0}


async def test_heapsort_places_the_top_k_and_keeps_the_rest_in_input_order():
    relevance = [3, 1, 8, 0, 6, 2, 9, 4]
    llm = ScriptedLLM(fn=judge)
    selection = await get_selector("pairwise", method="heapsort", top_k=3, **RAW).select(
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
    selection = await get_selector("pairwise", scoring="logprob", **RAW).select("q?", marked([1, 7]), RunContext(llm=llm))
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
    await get_selector("pairwise", method="allpairs").select("q?", marked(list(range(n))), RunContext(llm=llm))
    assert len(llm.requests) == n * (n - 1)
    assert math.comb(n, 2) * 2 == n * (n - 1)


def passage_then_letter(first: dict[str, float], letter: dict[str, float]):
    from ragpipe.llm.base import Completion, TokenLogprob, TopLogprob

    def position(dist):
        best = max(dist, key=dist.get)
        return TokenLogprob(token=best, logprob=math.log(dist[best]),
                            top=[TopLogprob(token=t, logprob=math.log(p)) for t, p in dist.items()])

    return Completion(text="Passage" + max(letter, key=letter.get), logprobs=[position(first), position(letter)])


def test_prob_a_reads_the_letter_after_passage():
    from ragpipe.select.pairwise import prob_a

    completion = passage_then_letter({"Passage": 0.97, "A": 0.02, "B": 0.01}, {" B": 0.8, " A": 0.2})
    assert prob_a(completion) == pytest.approx(0.2)


async def test_default_is_a_heapsort_top_10_with_far_fewer_calls_than_all_pairs():
    relevance = [3, 1, 8, 0, 6, 2, 9, 4, 7, 5, 11, 10, 12, 14, 13, 16, 15, 19, 18, 17]
    llm = ScriptedLLM(fn=judge)
    selection = await get_selector("pairwise").select("q?", marked(relevance), RunContext(llm=llm))
    top = sorted(range(20), key=lambda i: -relevance[i])[:10]
    assert [c.id for c in selection.ranked[:9]] == [f"c{i}" for i in top[:9]]  # fused: c0 holds 10th
    assert selection.extras["llm_order"][:10] == [f"c{i}" for i in top]
    assert len(llm.requests) <= 2 * (2 * 20 + 2 * 10 * math.ceil(math.log2(20)))  # the documented bound
    assert len(llm.requests) < 20 * 19


async def test_sliding_places_the_top_k_by_bubble_passes():
    relevance = [3, 1, 8, 0, 6, 2, 9, 4]
    llm = ScriptedLLM(fn=judge)
    selection = await get_selector("pairwise", method="sliding", top_k=3, **RAW).select(
        "q?", marked(relevance), RunContext(llm=llm))
    assert [c.id for c in selection.ranked[:3]] == ["c6", "c2", "c4"]
    comparisons = 3 * 7 - 3  # passes over 7, 6 and 5 neighbouring pairs
    assert len(llm.requests) <= 2 * comparisons  # repeated pairs come from the cache


async def test_a_position_biased_model_is_caught_by_the_self_agreement_gate():
    llm = ScriptedLLM(cycle=["Passage A"])
    selection = await get_selector("pairwise", method="heapsort", top_k=2).select(
        "q?", marked([2, 9, 5, 1]), RunContext(llm=llm))
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "input" and harm.data["self_agreement"] == 0.0
    assert "agreed with itself" in harm.message
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2", "c3"]


async def test_pairwise_prompt_fits_the_context_with_long_passages():
    from ragpipe.llm.base import Capabilities

    long = [f"rel={r} " + " ".join(["word"] * 400) for r in (1, 2)]
    llm = ScriptedLLM(fn=judge, capabilities=Capabilities(context_window=300))
    await get_selector("pairwise", **RAW).select("q?", make_candidates(2, texts=long), RunContext(llm=llm))
    for request in llm.requests:
        assert sum(llm.count_tokens(m.content) for m in request.messages) + request.max_tokens <= 300
