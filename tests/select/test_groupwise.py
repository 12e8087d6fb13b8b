"""Groupwise selector: grouping, fusion maths, per-group repairs and fallbacks, concurrency."""

from __future__ import annotations

import json
import re

import pytest

from ragpipe.context import RunContext
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.llm.wrappers import Limited
from ragpipe.select import get_selector
from ragpipe.select.groupwise import fuse, make_groups
from tests.select.conftest import RAW, make_candidates


def score_by_marker(request) -> str:
    """Scores each document of the group by the 'relevance=N' marker in its text."""
    body = request.messages[-1].content
    scores = {m.group(1): int(m.group(2)) for m in re.finditer(r"\[(\d+)\]\. <data[^>]*>\s*rel=(\d+)", body)}
    return json.dumps(scores)


def marked(n: int, relevance: list[int]):
    return make_candidates(n, texts=[f"rel={r} passage {i}" for i, r in enumerate(relevance)])


def test_groups_partition_each_shuffle():
    groups = make_groups(45, 20, 2, seed=3)
    assert [len(g) for g in groups] == [20, 20, 5, 20, 20, 5]
    for first in (0, 3):
        assert sorted(i for g in groups[first : first + 3] for i in g) == list(range(45))
    assert groups != make_groups(45, 20, 2, seed=4)
    assert groups == make_groups(45, 20, 2, seed=3)


def test_fusion_formula():
    fused = fuse([10.0, 5.0, 0.0], [1.0, 0.0, 0.5], alpha=0.6)
    assert fused == pytest.approx([0.6 * 1.0 + 0.4 * 1.0, 0.6 * 0.5 + 0.0, 0.0 + 0.4 * 0.5])


async def test_scores_follow_the_model_and_fuse_with_the_retriever():
    relevance = [0, 0, 9, 0, 10, 0]
    llm = ScriptedLLM(fn=score_by_marker)
    selection = await get_selector("groupwise", group_size=3, alpha=0.6, repeats=1, **RAW).select(
        "q?", marked(6, relevance), RunContext(llm=llm))
    scores = {c.id: c.score for c in selection.ranked}
    # c2: 9/10 with retriever 11.0 in [9.5, 12.0]; c4: 10/10 but retriever 10.0: the retriever decides
    assert scores["c2"] == pytest.approx(0.6 * 0.9 + 0.4 * (11.0 - 9.5) / 2.5)
    assert scores["c4"] == pytest.approx(0.6 * 1.0 + 0.4 * (10.0 - 9.5) / 2.5)
    assert [c.id for c in selection.ranked[:2]] == ["c2", "c4"]
    assert len(llm.requests) == selection.usage.calls == 2


async def test_alpha_zero_is_the_retriever_order():
    llm = ScriptedLLM(fn=score_by_marker)
    selection = await get_selector("groupwise", group_size=3, alpha=0.0).select(
        "q?", marked(6, [0, 0, 9, 0, 10, 0]), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(6)]


async def test_repeats_average_over_groupings():
    """Grouping 1 scores rel, grouping 2 rel + 2, grouping 3 rel - 2: the mean is rel."""
    llm = ScriptedLLM()

    def shifted(request):
        shift = (0, 2, -2)[(len(llm.requests) - 1) // 2]
        return json.dumps({k: v + shift for k, v in json.loads(score_by_marker(request)).items()})

    llm._fn = shifted
    selection = await get_selector("groupwise", group_size=2, repeats=3, alpha=1.0, **RAW).select(
        "q?", marked(4, [3, 8, 4, 6]), RunContext(llm=llm))
    assert len(llm.requests) == 6 == selection.usage.calls
    assert {c.id: c.score for c in selection.ranked} == pytest.approx({"c0": 0.3, "c1": 0.8, "c2": 0.4, "c3": 0.6})


async def test_a_failed_group_is_neutral_not_promoted_above_scored_groups():
    def one_group_fails(request):
        body = request.messages[-1].content
        return "I cannot score these." if "rel=7" in body else score_by_marker(request)

    llm = ScriptedLLM(fn=one_group_fails)
    relevance = [0, 1, 2, 7, 10, 3]
    selection = await get_selector("groupwise", group_size=2, repeats=1, seed=0, alpha=1.0, **RAW).select(
        "q?", marked(6, relevance), RunContext(llm=llm))
    fallbacks = [e for e in selection.trace if e.kind == "fallback"]
    assert len(fallbacks) == 1 and "neutral" in fallbacks[0].message
    failed = sorted(next(g for g in make_groups(6, 2, 1, 0) if 3 in g))
    scored = [i for i in range(6) if i not in failed]
    scores = {c.id: c.score for c in selection.ranked}
    for i in scored:  # the other groups are still scored by the model
        assert scores[f"c{i}"] == pytest.approx(relevance[i] / 10)
    neutral = sum(relevance[i] for i in scored) / len(scored) / 10
    assert all(scores[f"c{i}"] == pytest.approx(neutral) for i in failed)
    assert selection.ranked[0].id == "c4"  # a real 10/10 is not outranked by the failed group
    ids = [c.id for c in selection.ranked]
    assert ids.index(f"c{failed[0]}") < ids.index(f"c{failed[1]}")  # input order among the unscored


async def test_without_retriever_scores_a_failed_group_keeps_the_input_order():
    """Candidate lists without scores (all 0): nothing may come back shuffled by the grouping."""
    candidates = make_candidates(8, texts=[f"rel=5 passage {i}" for i in range(8)])
    candidates = [c.model_copy(update={"score": 0.0}) for c in candidates]
    failing = {candidates[i].chunk.text for i in make_groups(8, 2, 1, 0)[1]}

    def reply(request):
        body = request.messages[-1].content
        return "no idea" if any(t in body for t in failing) else score_by_marker(request)

    selection = await get_selector("groupwise", group_size=2, repeats=1, **RAW).select(
        "q?", candidates, RunContext(llm=ScriptedLLM(fn=reply)))
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(8)]


async def test_defaults_follow_the_paper_two_groupings_and_a_reasoning_block():
    llm = ScriptedLLM(fn=lambda r: "<reason>c2 answers it.</reason><answer>" + score_by_marker(r) + "</answer>")
    selection = await get_selector("groupwise").select("q?", marked(4, [1, 2, 9, 0]), RunContext(llm=llm))
    assert len(llm.requests) == 2  # two groupings of one group each
    assert "<reason>" in llm.requests[0].messages[-1].content
    assert llm.requests[0].max_tokens >= 384 and llm.requests[0].json_schema is None
    assert selection.ranked[0].id == "c2"
    assert not any(e.kind == "fallback" for e in selection.trace)


async def test_prompt_that_cannot_fit_is_not_sent():
    from ragpipe.llm.base import Capabilities

    llm = ScriptedLLM(cycle=['{"1": 3, "2": 4}'], capabilities=Capabilities(context_window=60))
    long_question = " ".join(["word"] * 80) + "?"
    selection = await get_selector("groupwise", repeats=1).select(long_question, make_candidates(2),
                                                                  RunContext(llm=llm))
    assert llm.requests == []
    assert [c.id for c in selection.ranked] == ["c0", "c1"]
    assert any("exceeds the budget" in e.message for e in selection.trace)


async def test_documents_missing_from_a_parsed_group_get_the_group_mean():
    llm = ScriptedLLM(cycle=['```json\n{"[1]": 8, "[2]": 2}\n```'])
    selection = await get_selector("groupwise", group_size=3, alpha=1.0, repeats=1, **RAW).select(
        "q?", make_candidates(3), RunContext(llm=llm))
    assert sorted(c.score for c in selection.ranked) == pytest.approx([0.2, 0.5, 0.8])
    assert any(e.kind == "repair" and "not scored" in e.message for e in selection.trace)
    assert any(e.kind == "repair" and "fenced" in e.message for e in selection.trace)


async def test_json_schema_is_requested_when_the_backend_supports_it():
    from ragpipe.llm.base import Capabilities

    llm = ScriptedLLM(cycle=['{"1": 3, "2": 4}'], capabilities=Capabilities(json_schema=True))
    await get_selector("groupwise", reasoning=False).select("q?", make_candidates(2), RunContext(llm=llm))
    schema = llm.requests[0].json_schema
    assert schema["required"] == ["1", "2"] and schema["properties"]["1"]["maximum"] == 10


async def test_groups_run_concurrently_under_the_limit():
    inner = ScriptedLLM(fn=score_by_marker, delay_s=0.2)
    llm = Limited(inner, 3)
    selection = await get_selector("groupwise", group_size=2, repeats=1).select(
        "q?", marked(12, [1] * 12), RunContext(llm=llm))
    assert len(inner.requests) == 6 == selection.usage.calls
    assert inner.max_in_flight == 3
    spans = sorted(inner.call_spans)
    overlapping = sum(1 for (s1, e1), (s2, _) in zip(spans, spans[1:]) if s2 < e1)
    assert overlapping >= 2
    total = max(e for _, e in spans) - min(s for s, _ in spans)
    assert total < 6 * 0.2  # not one after another


async def test_the_prompt_files_max_tokens_caps_the_answer(tmp_path):
    from tests.select.test_listwise import _capped_prompts

    llm = ScriptedLLM(['{"1": 2, "2": 9, "3": 1}'])
    ctx = RunContext(llm=llm, prompts=_capped_prompts(tmp_path, "groupwise.default", 5))
    await get_selector("groupwise", group_size=3, repeats=1, reasoning=False, **RAW).select(
        "q?", make_candidates(3), ctx)
    assert llm.requests[0].max_tokens == 5
