"""Response cache hits/misses, concurrency limit, usage metering, and the scripted double."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ragpipe.errors import LLMTimeout, Truncated
from ragpipe.llm.base import make_request
from ragpipe.llm.cache import Cached, cache_key
from ragpipe.llm.scripted import REFUSAL, ScriptedLLM, logprob_reply, truncated_reply
from ragpipe.llm.wrappers import CallLog, Limited, Recorded

Q = [{"role": "user", "content": "what is two plus two"}]


async def test_cache_hits_for_identical_deterministic_requests(tmp_path: Path) -> None:
    inner = ScriptedLLM(["four", "FOUR"])
    llm = Cached(inner, tmp_path / "cache")
    first = await llm.chat(Q, max_tokens=5)
    second = await llm.chat(Q, max_tokens=5)
    assert first.text == second.text == "four"
    assert (first.cached, second.cached) == (False, True)
    assert second.usage.cached_calls == 1 and second.usage.llm_seconds == 0.0
    assert len(inner.requests) == 1 and (llm.hits, llm.misses) == (1, 1)


@pytest.mark.parametrize(
    "change",
    [{"max_tokens": 6}, {"seed": 1}, {"stop": ["\n"]}, {"top_logprobs": 3}, {"json_schema": {"type": "object"}}],
)
async def test_any_parameter_change_is_a_miss(tmp_path: Path, change: dict) -> None:
    inner = ScriptedLLM(cycle=["x"])
    llm = Cached(inner, tmp_path / "cache")
    await llm.chat(Q, max_tokens=5)
    await llm.chat(Q, **{"max_tokens": 5, **change})
    assert len(inner.requests) == 2


async def test_sampled_calls_are_never_cached(tmp_path: Path) -> None:
    inner = ScriptedLLM(cycle=["x"])
    llm = Cached(inner, tmp_path / "cache")
    await llm.chat(Q, max_tokens=5, temperature=0.7)
    await llm.chat(Q, max_tokens=5, temperature=0.7)
    assert len(inner.requests) == 2 and llm.hits == 0


async def test_cache_persists_across_instances_and_keys_on_model(tmp_path: Path) -> None:
    await Cached(ScriptedLLM(["stored"]), tmp_path / "c").chat(Q, max_tokens=5)
    again = await Cached(ScriptedLLM([]), tmp_path / "c").chat(Q, max_tokens=5)
    assert again.text == "stored" and again.cached
    other = make_request(Q, max_tokens=5)
    assert cache_key("scripted", "model-a", other) != cache_key("scripted", "model-b", other)


async def test_limited_never_exceeds_its_limit_and_overlaps_up_to_it() -> None:
    inner = ScriptedLLM(cycle=["ok"], delay_s=0.05)
    llm = Limited(inner, 3)
    await asyncio.gather(*(llm.chat(Q, max_tokens=3) for _ in range(10)))
    assert inner.max_in_flight == 3


async def test_call_log_sums_usage_per_node_and_counts_failures() -> None:
    meter = CallLog()
    inner = ScriptedLLM(["one two", LLMTimeout("slow"), "three"])
    a, b = Recorded(inner, meter, "select"), Recorded(inner, meter, "verify")
    await a.chat(Q, max_tokens=5)
    with pytest.raises(LLMTimeout):
        await a.chat(Q, max_tokens=5)
    await b.chat(Q, max_tokens=5)
    usage = meter.by_node()
    assert usage["select"].calls == 2 and usage["select"].failed_calls == 1
    assert usage["select"].completion_tokens == 2 and usage["verify"].completion_tokens == 1
    assert meter.total().prompt_tokens == 3 * 5 - 5  # two answered calls of 5 prompt tokens
    assert meter.records()[0].messages is None  # without keep_text only the cost is kept


async def test_a_child_log_records_each_call_once_for_itself_and_its_parent() -> None:
    run = CallLog(keep_text=True)
    part = run.child()
    inner = ScriptedLLM(["one two", "three"])
    await Recorded(inner, part, "select").chat(Q, max_tokens=5)
    await Recorded(inner, run, "generate").chat(Q, max_tokens=5)
    assert part.total().calls == 1 and run.total().calls == 2
    events = run.events()
    assert [e.node for e in events] == ["select", "generate"] and events[0].data["raw"] == "one two"
    assert events[0].data["messages"][-1]["role"] == "user"


async def test_scripted_double_shapes_and_recording() -> None:
    llm = ScriptedLLM(["", REFUSAL, truncated_reply("[3] > [1"), logprob_reply({"A": 0.6, "B": 0.3})])
    assert (await llm.chat(Q, max_tokens=5)).text == ""
    assert "can't help" in (await llm.chat(Q, max_tokens=50)).text
    cut = await llm.chat(Q, max_tokens=50)
    with pytest.raises(Truncated) as err:
        cut.require_complete()
    assert err.value.raw == "[3] > [1"
    first = (await llm.chat(Q, max_tokens=1, top_logprobs=5)).logprobs[0]
    assert first.token == "A" and first.top_dict()["B"] == pytest.approx(-1.2039728)
    assert len(llm.requests) == 4 and llm.requests[3].top_logprobs == 5


async def test_scripted_double_cuts_long_replies_at_max_tokens() -> None:
    completion = await ScriptedLLM(["a b c d e f"]).chat(Q, max_tokens=3)
    assert completion.text == "a b c" and completion.truncated
