"""The harm bound: garbage or random LLMs leave the input order (nearly) intact, good ones are kept."""

from __future__ import annotations

import json
import math
import random
import re

import pytest

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.llm.scripted import ScriptedLLM, logprob_reply
from ragpipe.select import get_selector
from ragpipe.select.harm_bound import HarmBoundConfig, Reliability, bound, fuse_with_input, kendall_tau
from tests.select.conftest import make_candidates

N = 12


def ndcg10(grades: list[int]) -> float:
    dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(grades[:10]))
    ideal = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(sorted(grades, reverse=True)[:10]))
    return dcg / ideal if ideal else 0.0


def queries(count: int, seed: int = 7) -> list[list[int]]:
    """Graded relevance in a decent input order: relevant passages are likelier near the top."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        grades = [rng.choice([1, 2, 3]) if rng.random() < 0.6 - 0.04 * i else 0 for i in range(N)]
        out.append(grades if any(grades) else [1] + grades[1:])
    return out


def marked(grades: list[int]):
    return make_candidates(len(grades), texts=[f"rel={g} passage {i}" for i, g in enumerate(grades)])


def grade_in(text: str) -> int:
    return int(re.search(r"rel=(\d+)", text).group(1))


def random_listwise(rng):
    def reply(request):
        n = len(re.findall(r"^\[\d+\]", request.messages[-1].content, re.MULTILINE))
        order = list(range(1, n + 1))
        rng.shuffle(order)
        return " > ".join(f"[{i}]" for i in order)
    return reply


def random_pointwise(rng):
    return lambda request: logprob_reply({"Yes": (p := rng.uniform(0.05, 0.95)), "No": 1 - p})


def random_pairwise(rng):
    return lambda request: rng.choice(["Passage A", "Passage B"])


def random_groupwise(rng):
    def reply(request):
        n = len(re.findall(r"^\[\d+\]\.", request.messages[-1].content, re.MULTILINE))
        return json.dumps({str(i): rng.randint(0, 10) for i in range(1, n + 1)})
    return reply


RANDOM = {
    "listwise": ({}, random_listwise),
    "pointwise_yesno": ({}, random_pointwise),
    "pairwise": ({"top_k": 5}, random_pairwise),
    "groupwise": ({"reasoning": False}, random_groupwise),
}


async def mean_ndcg(name, config, make_reply, grade_sets, *, harm_bound=True):
    rng = random.Random(3)
    total_in = total_out = 0.0
    trusted = []
    for grades in grade_sets:
        llm = ScriptedLLM(fn=make_reply(rng))
        options = dict(config) if harm_bound else {**config, "harm_bound": {"enabled": False}}
        selection = await get_selector(name, **options).select("q?", marked(grades), RunContext(llm=llm))
        total_in += ndcg10(grades)
        total_out += ndcg10([grade_in(c.chunk.text) for c in selection.ranked])
        trusted += [e.data["trusted"] for e in selection.trace if e.kind == "harm_bound"]
    return total_in / len(grade_sets), total_out / len(grade_sets), trusted


@pytest.mark.parametrize("name", sorted(RANDOM))
async def test_a_random_llm_stays_within_the_margin_of_the_input_order(name):
    config, make_reply = RANDOM[name]
    grade_sets = queries(40)
    before, after, trusted = await mean_ndcg(name, config, make_reply, grade_sets)
    _, unbounded, _ = await mean_ndcg(name, config, make_reply, grade_sets, harm_bound=False)
    assert len(trusted) == len(grade_sets)  # every query went through the bound, visibly
    assert after >= before - 0.03, (before, after)
    assert after - unbounded > 0.02  # the bound is what saves it
    if name in ("pairwise", "groupwise"):  # self-agreement is measured: random answers fail it
        assert trusted.count("input") >= 0.8 * len(trusted)
        assert after >= before - 0.01


async def test_unusable_answers_keep_the_input_order_and_say_why():
    llm = ScriptedLLM(cycle=["I think passage two is nice.", "Maybe.", logprob_reply({"Yes": 0.9, "No": 0.1})])
    cands = marked([0, 0, 3, 0, 2, 0])
    selection = await get_selector("pointwise_yesno", use_logprobs=True).select("q?", cands, RunContext(llm=llm))
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "input" and "2 of 6" in harm.message
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(6)]


def oracle_listwise(request):
    body = request.messages[-1].content
    ids = re.findall(r"^\[(\d+)\] <data[^>]*>\s*rel=(\d+)", body, re.MULTILINE)
    number = {i: int(re.search(rf"^\[{i}\] <data[^>]*>\s*rel=\d+ passage (\d+)", body, re.MULTILINE).group(1))
              for i, _ in ids}
    ranked = sorted(ids, key=lambda x: (-int(x[1]), number[x[0]]))  # equals: by passage, not by slot
    return " > ".join(f"[{i}]" for i, _ in ranked)


def oracle_pairwise(request):
    """Prefers the higher grade; between equals, consistently the lower passage number."""
    a, b = request.messages[-1].content.split("Passage B:", 1)
    key_a = (grade_in(a), -int(re.search(r"passage (\d+)", a).group(1)))
    key_b = (grade_in(b), -int(re.search(r"passage (\d+)", b).group(1)))
    return "Passage A" if key_a > key_b else "Passage B"


def oracle_pointwise(request):
    grade = grade_in(request.messages[-1].content)
    return logprob_reply({"Yes": 0.1 + 0.27 * grade, "No": 0.9 - 0.27 * grade})


def oracle_groupwise(request):
    body = request.messages[-1].content
    return json.dumps({k: 3 * int(g) for k, g in re.findall(r"\[(\d+)\]\. <data[^>]*>\s*rel=(\d+)", body)})


GOOD = {
    "listwise": ({}, oracle_listwise),
    "pointwise_yesno": ({}, oracle_pointwise),
    "pairwise": ({"top_k": 10}, oracle_pairwise),
    "groupwise": ({"reasoning": False}, oracle_groupwise),
}


@pytest.mark.parametrize("name", sorted(GOOD))
async def test_a_consistent_good_llm_keeps_its_gains(name):
    config, reply = GOOD[name]
    grade_sets = queries(25, seed=11)
    before, after, trusted = await mean_ndcg(name, config, lambda rng: reply, grade_sets)
    _, unbounded, _ = await mean_ndcg(name, config, lambda rng: reply, grade_sets, harm_bound=False)
    assert after > before + 0.05
    if name in ("pairwise", "groupwise"):  # it proved itself consistent: trusted almost fully
        assert trusted.count("input") == 0
        assert after >= unbounded - 0.02
    else:  # without a self-check the input order keeps half the say
        assert trusted.count("fused") >= 0.5 * len(trusted)
        assert after - before >= 0.5 * (unbounded - before)


async def test_a_listwise_llm_that_proves_itself_consistent_keeps_its_order():
    """With reversed windows an oracle agrees with itself, so it gets the full trusted weight."""
    grades = [1, 0, 0, 3, 0, 0, 2, 0]
    plain = await get_selector("listwise").select("q?", marked(grades), RunContext(llm=ScriptedLLM(fn=oracle_listwise)))
    assert plain.ranked[0].id == "c0"  # unchecked, the input order keeps half the say
    checked = await get_selector("listwise", check_reversed=True).select(
        "q?", marked(grades), RunContext(llm=ScriptedLLM(fn=oracle_listwise)))
    assert [c.id for c in checked.ranked[:3]] == ["c3", "c6", "c0"]
    harm = next(e for e in checked.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "fused" and harm.data["self_agreement"] == 1.0
    assert harm.data["llm_weight"] == pytest.approx(0.9)


async def test_a_reversed_answer_is_caught_without_a_self_check():
    reverse = " > ".join(f"[{i}]" for i in range(8, 0, -1))
    selection = await get_selector("listwise").select("q?", make_candidates(8), RunContext(llm=ScriptedLLM([reverse])))
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(8)]
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert "Kendall tau -1.00" in harm.message


def test_kendall_tau_and_fusion():
    assert kendall_tau([0, 1, 2, 3]) == 1.0 and kendall_tau([3, 2, 1, 0]) == -1.0
    assert kendall_tau([1, 0, 2, 3]) == pytest.approx(4 / 6)
    assert fuse_with_input([[3, 2, 1, 0]], 0.5, 10.0) == [0, 3, 1, 2]  # equal weights: ties keep input order
    assert fuse_with_input([[3, 0, 1, 2]], 1.0, 10.0) == [3, 0, 1, 2]
    assert fuse_with_input([[3, 0, 1, 2]], 0.0, 10.0) == [0, 1, 2, 3]


def test_two_readings_move_a_passage_only_where_both_agree_or_one_joins_the_input():
    """Each reading votes like the input order: two readings that agree outvote it, two that disagree do not."""
    config = HarmBoundConfig()
    agree = bound([1, 0, 2, 3], Reliability(answers=4, usable=4), config, readings=[[1, 0, 2, 3], [1, 0, 2, 3]])
    assert agree.order[0] == 1 and agree.trusted == "fused"
    split = bound([1, 0, 2, 3], Reliability(answers=4, usable=4), config, readings=[[1, 0, 2, 3], [0, 2, 3, 1]])
    assert split.order[0] == 0  # one reading alone cannot lift passage 2 over the input order and the other reading
    assert split.data["reading_taus"] == [0.667, 0.333] and "2 LLM reading(s)" in split.reason


def test_a_reading_that_runs_against_the_input_order_loses_its_vote():
    config = HarmBoundConfig()
    reversed_reading, good = [3, 2, 1, 0], [1, 0, 2, 3]
    decision = bound([1, 0, 3, 2], Reliability(answers=4, usable=4), config, readings=[good, reversed_reading])
    assert decision.trusted == "fused" and decision.data["readings_dropped"] == 1
    assert decision.order == fuse_with_input([good], config.llm_weight, config.rrf_k)
    assert "did not vote" in decision.reason
    both_bad = bound([3, 2, 1, 0], Reliability(answers=4, usable=4), config, readings=[reversed_reading, [2, 3, 1, 0]])
    assert both_bad.trusted == "input" and both_bad.order == [0, 1, 2, 3]
    assert "all 2 LLM readings are unrelated" in both_bad.reason


def test_weight_grows_with_self_agreement():
    config = HarmBoundConfig()
    low = bound([1, 0, 2], Reliability(answers=4, usable=4, checks=10, weight=10, agreed=6), config)
    high = bound([1, 0, 2], Reliability(answers=4, usable=4, checks=10, weight=10, agreed=10), config)
    assert low.data["llm_weight"] < high.data["llm_weight"] == pytest.approx(config.agreed_weight)


@pytest.mark.parametrize("name", ["listwise", "pairwise", "pointwise_scale", "pointwise_yesno", "groupwise"])
def test_harm_bound_is_typed_configuration(name):
    assert get_selector(name).config.harm_bound.enabled
    with pytest.raises(ConfigError, match="harm_bound"):
        get_selector(name, harm_bound={"llm_wieght": 0.5})
    with pytest.raises(ConfigError, match="harm_bound"):
        get_selector(name, harm_bound={"llm_weight": 1.5})


@pytest.mark.parametrize("name", ["listwise", "pairwise", "pointwise_scale", "pointwise_yesno", "groupwise"])
async def test_a_single_candidate_needs_no_call(name):
    llm = ScriptedLLM()  # would raise on any call
    selection = await get_selector(name).select("q?", make_candidates(1), RunContext(llm=llm))
    assert [c.id for c in selection.kept] == ["c0"] and llm.requests == []


def test_graded_checks_weigh_by_their_weight():
    reliability = Reliability()
    reliability.check(0.9, 18.0)  # one window's graded agreement, counted by its weight
    reliability.check(False)
    reliability.check(True)
    assert reliability.checks == 3
    assert reliability.agreement == pytest.approx((0.9 * 18 + 1) / 20)
