"""Pointwise selectors: yes-mass and expected 0-10 scores from logprobs, text fallback, floors."""

from __future__ import annotations

import re

import pytest

from ragpipe.context import RunContext
from ragpipe.llm.base import Capabilities
from ragpipe.llm.scripted import ScriptedLLM, logprob_reply
from ragpipe.select import get_selector
from ragpipe.select.pointwise import expected_score, yes_mass
from tests.select.conftest import make_candidates

NO_LOGPROBS = Capabilities(logprobs=False)


def test_yes_mass_sums_spellings_and_normalises():
    completion = logprob_reply({"Yes": 0.5, " yes": 0.1, "No": 0.2, "Maybe": 0.2})
    assert yes_mass(completion) == pytest.approx(0.6 / 0.8)
    assert yes_mass(logprob_reply({"Maybe": 0.9, "Perhaps": 0.1})) is None


def test_expected_score_over_score_tokens():
    completion = logprob_reply({"7": 0.5, "9": 0.25, "3": 0.25})
    assert expected_score(completion) == pytest.approx(0.5 * 7 + 0.25 * 9 + 0.25 * 3)
    assert expected_score(logprob_reply({"7": 0.4, " 8": 0.4, "x": 0.2})) == pytest.approx(7.5)
    assert expected_score(logprob_reply({"high": 1.0})) is None


def by_marker(fn):
    def reply(request):
        return fn(int(re.search(r"rel=(\d+)", request.messages[-1].content).group(1)))
    return reply


async def test_yesno_ranks_by_yes_probability():
    llm = ScriptedLLM(fn=by_marker(lambda r: logprob_reply({"Yes": r / 10, "No": 1 - r / 10})))
    cands = make_candidates(4, texts=[f"rel={r}" for r in (2, 9, 5, 1)])
    selection = await get_selector("pointwise_yesno").select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c2", "c0", "c3"]
    assert selection.ranked[0].score == pytest.approx(0.9, abs=1e-5)
    assert len(llm.requests) == 4 == selection.usage.calls
    assert all(r.top_logprobs == 20 for r in llm.requests)


async def test_yesno_reads_text_without_logprobs_and_floors_garbage():
    replies = {2: "No.", 9: "Yes, it does.", 5: "The passage is about cats."}
    llm = ScriptedLLM(fn=by_marker(lambda r: replies[r]), capabilities=NO_LOGPROBS)
    cands = make_candidates(3, texts=[f"rel={r}" for r in (2, 9, 5)])
    selection = await get_selector("pointwise_yesno").select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c0", "c2"]  # tie at 0: retriever order
    assert any(e.kind == "fallback" and "floor" in e.message for e in selection.trace)


async def test_missing_yes_no_tokens_fall_back_to_text_and_are_traced():
    llm = ScriptedLLM(cycle=[logprob_reply({"Maybe": 1.0})])
    selection = await get_selector("pointwise_yesno").select("q?", make_candidates(2), RunContext(llm=llm))
    assert any("no score token" in e.message for e in selection.trace)
    assert [c.id for c in selection.ranked] == ["c0", "c1"]


async def test_scale_uses_expected_value_and_breaks_ties_by_retriever():
    dist = {1: {"6": 1.0}, 2: {"6": 0.5, "8": 0.5}, 3: {"6": 1.0}}
    llm = ScriptedLLM(fn=by_marker(lambda r: logprob_reply(dist[r])))
    cands = make_candidates(3, texts=[f"rel={r}" for r in (1, 2, 3)])
    selection = await get_selector("pointwise_scale").select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c0", "c2"]
    assert selection.ranked[0].score == pytest.approx(7.0, abs=1e-5)


async def test_scale_parses_the_integer_without_logprobs():
    replies = {1: "3", 2: "Score: 9", 3: "7/10"}
    llm = ScriptedLLM(fn=by_marker(lambda r: replies[r]), capabilities=NO_LOGPROBS)
    cands = make_candidates(3, texts=[f"rel={r}" for r in (1, 2, 3)])
    selection = await get_selector("pointwise_scale").select("q?", cands, RunContext(llm=llm))
    assert [round(c.score) for c in selection.ranked] == [9, 7, 3]
    assert all(r.top_logprobs == 0 for r in llm.requests)


async def test_logprobs_requested_but_absent_reads_the_text():
    llm = ScriptedLLM(cycle=["8"])  # claims logprob support, returns none
    selection = await get_selector("pointwise_scale").select("q?", make_candidates(2), RunContext(llm=llm))
    assert [round(c.score) for c in selection.ranked] == [8, 8]
    assert any("none returned" in e.message for e in selection.trace)
