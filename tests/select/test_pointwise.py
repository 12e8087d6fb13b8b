"""Pointwise selectors: yes-mass and expected 0-10 scores from logprobs, text fallback, floors."""

from __future__ import annotations

import math
import re

import pytest

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.llm.base import Capabilities, Completion, TokenLogprob, TopLogprob
from ragpipe.llm.scripted import ScriptedLLM, logprob_reply
from ragpipe.select import get_selector
from ragpipe.select.pointwise import expected_score, yes_mass
from tests.select.conftest import RAW, make_candidates

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
    selection = await get_selector("pointwise_yesno", **RAW).select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c2", "c0", "c3"]
    assert selection.ranked[0].score == pytest.approx(0.9, abs=1e-5)
    assert len(llm.requests) == 4 == selection.usage.calls
    assert all(r.top_logprobs == 20 for r in llm.requests)


async def test_yesno_reads_text_without_logprobs_and_floors_garbage():
    replies = {2: "No.", 9: "Yes, it does.", 5: "The passage is about cats."}
    llm = ScriptedLLM(fn=by_marker(lambda r: replies[r]), capabilities=NO_LOGPROBS)
    cands = make_candidates(3, texts=[f"rel={r}" for r in (2, 9, 5)])
    selection = await get_selector("pointwise_yesno", **RAW).select("q?", cands, RunContext(llm=llm))
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
    selection = await get_selector("pointwise_scale", **RAW).select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c0", "c2"]
    assert selection.ranked[0].score == pytest.approx(7.0, abs=1e-5)


async def test_scale_parses_the_integer_without_logprobs():
    replies = {1: "3", 2: "Score: 9", 3: "7/10"}
    llm = ScriptedLLM(fn=by_marker(lambda r: replies[r]), capabilities=NO_LOGPROBS)
    cands = make_candidates(3, texts=[f"rel={r}" for r in (1, 2, 3)])
    selection = await get_selector("pointwise_scale", **RAW).select("q?", cands, RunContext(llm=llm))
    assert [round(c.score) for c in selection.ranked] == [9, 7, 3]
    assert all(r.top_logprobs == 0 for r in llm.requests)


async def test_logprobs_requested_but_absent_reads_the_text():
    llm = ScriptedLLM(cycle=["8"])  # claims logprob support, returns none
    selection = await get_selector("pointwise_scale").select("q?", make_candidates(2), RunContext(llm=llm))
    assert [round(c.score) for c in selection.ranked] == [8, 8]
    assert any("none returned" in e.message for e in selection.trace)


def digits(first: dict[str, float], second: dict[str, float] | None = None) -> Completion:
    """A digit-splitting tokenizer's stream: "10" arrives as "1" then "0"."""
    def position(dist: dict[str, float]) -> TokenLogprob:
        best = max(dist, key=dist.get)
        return TokenLogprob(token=best, logprob=math.log(dist[best]),
                            top=[TopLogprob(token=t, logprob=math.log(p)) for t, p in dist.items()])

    stream = [position(first)] + ([position(second)] if second else [])
    return Completion(text="".join(p.token for p in stream), logprobs=stream, finish_reason="stop")


def test_a_split_ten_is_read_as_ten():
    completion = digits({"1": 0.7, "9": 0.2, "8": 0.1}, {"0": 0.95, "<|im_end|>": 0.05})
    expected = 0.7 * (0.95 * 10 + 0.05 * 1) + 0.2 * 9 + 0.1 * 8
    assert expected_score(completion) == pytest.approx(expected)


def test_a_plain_one_is_still_one():
    completion = digits({"1": 0.9, "2": 0.1}, {"<|im_end|>": 0.9, "0": 0.01})
    assert expected_score(completion) == pytest.approx(0.9 * (0.99 * 1 + 0.01 * 10) + 0.1 * 2)


def test_the_score_is_read_after_a_score_prefix():
    stream = digits({"Score": 0.9, "7": 0.05, "3": 0.05}, {"8": 0.8, "2": 0.2})
    assert expected_score(stream) == pytest.approx(0.8 * 8 + 0.2 * 2)


async def test_a_perfect_score_on_a_digit_splitting_tokenizer_ranks_first():
    replies = {10: digits({"1": 0.9, "9": 0.1}, {"0": 0.99, "<|im_end|>": 0.01}), 7: digits({"7": 0.9, "6": 0.1})}
    llm = ScriptedLLM(fn=by_marker(lambda r: replies[r]))
    cands = make_candidates(2, texts=["rel=7", "rel=10"])
    selection = await get_selector("pointwise_scale", **RAW).select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c0"]


def test_yes_is_read_after_an_answer_prefix():
    stream = digits({"Answer": 0.9, "No": 0.05, "Yes": 0.05}, {" Yes": 0.8, " No": 0.2})
    assert yes_mass(stream) == pytest.approx(0.8)


async def test_ties_keep_the_input_order_without_retriever_scores():
    cands = [c.model_copy(update={"score": 0.0}) for c in make_candidates(4)]
    llm = ScriptedLLM(cycle=[logprob_reply({"Yes": 0.5, "No": 0.5})])
    selection = await get_selector("pointwise_yesno", **RAW).select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2", "c3"]


async def test_a_prompt_that_cannot_fit_is_not_sent():
    llm = ScriptedLLM(cycle=["7"], capabilities=Capabilities(context_window=40))
    question = " ".join(["word"] * 60) + "?"
    selection = await get_selector("pointwise_scale").select(question, make_candidates(3), RunContext(llm=llm))
    assert llm.requests == []
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2"]
    assert any("exceeds the budget" in e.message for e in selection.trace)


async def test_the_ensemble_averages_both_readings_as_shares() -> None:
    """Two calls per candidate (one per prompt); the yes-mass and the split-digit 0-10 score are averaged."""
    yes = {0: 0.2, 1: 0.9}
    scale = {0: digits({"1": 0.9, "9": 0.1}, {"0": 0.99, "<|im_end|>": 0.01}), 1: digits({"2": 0.8, "3": 0.2})}
    prompts = {}

    def reply(request):
        k = int(re.search(r"rel=(\d+)", request.messages[-1].content).group(1))
        content = request.messages[-1].content
        kind = "scale" if re.search(r"\b10\b", content) else "yesno"
        prompts.setdefault(kind, 0)
        prompts[kind] += 1
        return scale[k] if kind == "scale" else logprob_reply({"Yes": yes[k], "No": 1 - yes[k]})

    llm = ScriptedLLM(fn=reply)
    cands = make_candidates(2, texts=["rel=0", "rel=1"])
    selection = await get_selector("pointwise_ensemble", **RAW).select("q?", cands, RunContext(llm=llm))
    assert prompts == {"yesno": 2, "scale": 2} and selection.usage.calls == 4
    ten = 0.9 * (0.99 * 10 + 0.01 * 1) + 0.1 * 9
    scores = {c.id: c.score for c in selection.ranked}
    assert scores["c0"] == pytest.approx((0.2 + ten / 10) / 2, abs=1e-4)
    assert scores["c1"] == pytest.approx((0.9 + 2.2 / 10) / 2, abs=1e-4)
    assert [c.id for c in selection.ranked] == ["c0", "c1"]  # the perfect score outweighs the lower yes-mass


async def test_the_ensemble_keeps_the_reading_that_worked() -> None:
    def reply(request):
        if re.search(r"\b10\b", request.messages[-1].content):
            return "The passage discusses the topic."  # no score in logprobs or text
        return logprob_reply({"Yes": 0.8, "No": 0.2})

    selection = await get_selector("pointwise_ensemble", **RAW).select("q?", make_candidates(2),
                                                                      RunContext(llm=ScriptedLLM(fn=reply)))
    assert all(c.score == pytest.approx(0.8, abs=1e-4) for c in selection.ranked)


def test_the_ensemble_refuses_a_single_prompt_setting() -> None:
    with pytest.raises(ConfigError, match="asks 2 prompts"):
        get_selector("pointwise_ensemble", prompt="pointwise.yesno")
    assert get_selector("pointwise_yesno", prompt="pointwise.scale")  # one prompt: the setting chooses it


async def test_the_ensemble_bound_takes_each_reading_as_its_own_vote() -> None:
    """A yes/no reading that runs against the input order loses its vote; the 0-10 reading keeps its own."""
    def reply(request):
        r = int(re.search(r"rel=(\d+)", request.messages[-1].content).group(1))
        if re.search(r"\b10\b", request.messages[-1].content):
            return digits({str(9 - r): 0.9, "0": 0.1})  # agrees with the input order
        return logprob_reply({"Yes": 0.05 + r / 10, "No": 0.95 - r / 10})  # the input order reversed

    cands = make_candidates(4, texts=[f"rel={r}" for r in (0, 3, 6, 9)])
    llm = ScriptedLLM(fn=reply)
    selection = await get_selector("pointwise_ensemble").select("q?", cands, RunContext(llm=llm))
    (harm,) = [e for e in selection.trace if e.kind == "harm_bound"]
    assert harm.data["readings_dropped"] == 1 and "did not vote" in harm.message
    assert len(harm.data["reading_taus"]) == 2
