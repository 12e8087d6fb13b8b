"""The selector base: de-duplication, fail policy, metering, stage scores and the cutoff hook."""

from __future__ import annotations

import pytest

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.llm.base import Message
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.select.base import (
    Selector,
    SelectorRun,
    dedupe,
    input_order_scores,
    minmax,
    ranked_by,
)
from tests.select.conftest import make_candidates


class LengthSelector(Selector):
    """Asks the LLM once per candidate for a number; a non-number raises (so the base falls back)."""

    name = "length_test"

    async def score(self, question, candidates, run):  # noqa: ANN001
        scores = []
        for candidate in candidates:
            completion = await run.chat([Message(role="user", content=candidate.chunk.text)], purpose="score", max_tokens=4)
            scores.append(float(completion.text))  # ValueError on prose: the base's fail policy
        return scores


class WrongLengthSelector(Selector):
    name = "wrong_length_test"
    needs_llm = False

    async def score(self, question, candidates, run):  # noqa: ANN001
        return [1.0]


def ctx(llm):  # noqa: ANN001
    return RunContext(llm=llm)


async def test_scores_rank_candidates_and_stamp_the_stage():
    cands = make_candidates(3)
    llm = ScriptedLLM(replies=["1", "9", "5"])
    selection = await LengthSelector().select("q?", cands, ctx(llm))
    assert [c.id for c in selection.ranked] == ["c1", "c2", "c0"]
    assert [c.stage_ranks["length_test"] for c in selection.ranked] == [1, 2, 3]
    assert [c.stage_scores["length_test"] for c in selection.ranked] == [9.0, 5.0, 1.0]
    assert all(c.stage_scores["bm25"] for c in selection.ranked)  # retriever history kept
    assert selection.kept == selection.ranked and selection.cutoff is None


async def test_usage_counts_the_calls_and_trace_keeps_raw_output():
    llm = ScriptedLLM(replies=["3", "2"])
    selection = await LengthSelector().select("q?", make_candidates(2), ctx(llm))
    assert selection.usage.calls == 2 == len(llm.requests)
    calls = [e for e in selection.trace if e.kind == "llm_reply"]
    assert [e.data["raw"] for e in calls] == ["3", "2"]


async def test_duplicates_are_dropped_before_scoring():
    cands = make_candidates(3)
    llm = ScriptedLLM(cycle=["1"])
    selection = await LengthSelector().select("q?", cands + [cands[0], cands[2]], ctx(llm))
    assert len(llm.requests) == 3
    assert sorted(c.id for c in selection.ranked) == ["c0", "c1", "c2"]
    assert any(e.kind == "repair" and "2 duplicate" in e.message for e in selection.trace)


async def test_fail_open_keeps_input_order_and_records_why():
    llm = ScriptedLLM(replies=["4", "I cannot rate this passage."])
    selection = await LengthSelector().select("q?", make_candidates(3), ctx(llm))
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2"]
    assert selection.kept == selection.ranked
    fallback = [e for e in selection.trace if e.kind == "fallback"]
    assert fallback and "ValueError" in fallback[0].message and "fail-open" in fallback[0].message
    assert selection.usage.calls == 2


async def test_fail_closed_keeps_nothing():
    llm = ScriptedLLM(cycle=["not a number"])
    selection = await LengthSelector(fail_policy="closed").select("q?", make_candidates(3), ctx(llm))
    assert selection.kept == [] and len(selection.ranked) == 3
    assert any("fail-closed" in e.message for e in selection.trace)


async def test_wrong_number_of_scores_falls_back():
    selection = await WrongLengthSelector().select("q?", make_candidates(3), ctx(None))
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2"]
    assert any("1 scores for 3 candidates" in e.message for e in selection.trace)


async def test_cutoff_runs_on_the_selector_scores():
    llm = ScriptedLLM(replies=["10", "9.5", "9", "1", "0.5", "0"])
    selection = await LengthSelector(cutoff="zscore_gap").select("q?", make_candidates(6), ctx(llm))
    assert [c.id for c in selection.kept] == ["c0", "c1", "c2"]
    assert selection.cutoff.keep == 3
    assert any(e.kind == "cutoff" for e in selection.trace)


async def test_max_keep_alone_bounds_the_kept_list():
    llm = ScriptedLLM(cycle=["1"])
    selection = await LengthSelector(max_keep=2).select("q?", make_candidates(5), ctx(llm))
    assert len(selection.ranked) == 5 and len(selection.kept) == 2


@pytest.mark.parametrize("config", [
    {"cutoff": "magic"}, {"min_keep": -1}, {"min_keep": 3, "max_keep": 2}, {"cutoff": "threshold"}, {"nope": 1},
])
def test_bad_config_is_a_config_error(config):
    with pytest.raises(ConfigError, match="length_test"):
        LengthSelector(**config)


def test_helpers():
    run = SelectorRun("t", RunContext(llm=None))
    cands = make_candidates(3)
    assert [c.id for c in dedupe(cands + cands[:1], run)] == ["c0", "c1", "c2"]
    assert input_order_scores(3) == [3.0, 2.0, 1.0]
    ranked = ranked_by(cands, [1.0, 2.0, 2.0], "t")
    assert [c.id for c in ranked] == ["c1", "c2", "c0"]  # ties keep input order
    assert minmax([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert minmax([5.0, 5.0]) == [0.0, 0.0] and minmax([]) == []


@pytest.mark.parametrize("bad, wording", [
    ({"max_keep": "lots"}, r"selector 'retrieval_order': setting 'max_keep': .*integer.* \(got 'lots'\)"),
    ({"max_kep": 3}, r"selector 'retrieval_order': unknown setting 'max_kep': did you mean 'max_keep'\?$"),
])
def test_a_bad_selector_setting_names_the_field_and_the_value(bad, wording):
    from ragpipe.select import get_selector

    with pytest.raises(ConfigError, match=wording):
        get_selector("retrieval_order", **bad)


def test_selection_extras_are_a_typed_contract():
    from pydantic import ValidationError

    from ragpipe.select.base import Selection

    ok = Selection(ranked=[], kept=[], extras={"llm_order": ["c1", "c0"], "elbow_index": 2})
    assert ok.extras == {"llm_order": ["c1", "c0"], "elbow_index": 2}
    with pytest.raises(ValidationError, match="llm_ordr"):  # a misspelt key is refused, not carried along
        Selection(ranked=[], kept=[], extras={"llm_ordr": ["c1"]})
    with pytest.raises(ValidationError, match="llm_order"):
        Selection(ranked=[], kept=[], extras={"llm_order": "c1 > c0"})
