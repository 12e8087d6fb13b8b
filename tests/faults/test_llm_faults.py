"""Fault catalogue, the LLM: hung, dead, slow, rate-limited or garbage-answering servers.

A question's LLM calls share one deadline; once it has passed, or once a node has seen a hard
failure, that node's remaining calls are not tried one by one: the node falls back and the
answer's trace (and ``ragpipe ask``) says so. 429/500 retries keep working.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ragpipe.errors import LLMError, LLMTimeout, LLMUnavailable
from ragpipe.llm.deadline import CallBudget, DeadlinePassed
from ragpipe.llm.openai_compat import OpenAICompatLLM
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.llm.wrappers import Limited
from tests.faults.conftest import pipeline_over
from tests.llm.fake_openai_server import FakeOpenAIServer


def http_llm(server: FakeOpenAIServer, **options) -> OpenAICompatLLM:
    return OpenAICompatLLM(base_url=server.base_url, model="m", **{"timeout_s": 30.0, "max_retries": 0, **options})


def fallback_events(answer, node: str | None = None):
    return [e for e in answer.trace if e.kind in ("fallback", "llm_error") and (node is None or e.node == node)]


# -- the deadline ----------------------------------------------------------------------------------


def test_a_hung_server_costs_at_most_the_deadline_and_the_selector_falls_back() -> None:
    """Six pointwise calls to a server that never answers: bounded by the 2 s deadline, not 6 x 30 s."""
    with FakeOpenAIServer(default="hangforever") as server:
        pipe = pipeline_over(http_llm(server), method="pointwise_yesno", deadline_s=2.0)
        start = time.perf_counter()
        with pytest.raises(DeadlinePassed, match="2 s answer deadline passed before generate"):
            pipe.ask("How often are API keys rotated?")
        elapsed = time.perf_counter() - start
    assert elapsed < 6.0, elapsed
    assert len(server.requests) <= 6  # one per candidate, all abandoned at the deadline; the generator never called


async def test_after_the_deadline_the_node_falls_back_and_the_answer_says_so() -> None:
    """Selector calls hang past the deadline; the answer is still produced from retrieval order when
    generation is quick, and the trace names the deadline."""
    calls: list[str] = []

    class SlowSelectorLLM(ScriptedLLM):
        async def complete(self, request):
            calls.append(request.messages[-1].content[:20])
            if "Document" in request.messages[-1].content or "Passage" in request.messages[-1].content:
                await asyncio.sleep(30)
            return await super().complete(request)

    llm = SlowSelectorLLM(fn=lambda r: "Every 30 days [1].")
    pipe = pipeline_over(llm, method="pointwise_yesno", deadline_s=1.0)
    budget = CallBudget(1.0)
    start = time.perf_counter()
    with pytest.raises(DeadlinePassed):
        await pipe.aask("How often are API keys rotated?", budget=budget)
    assert time.perf_counter() - start < 4.0
    assert budget.tripped("pointwise_yesno") is not None and budget.tripped("generate") is not None


async def test_selector_fallback_names_the_deadline_in_the_trace() -> None:
    """With a generous generator budget: only the selector's calls are slow."""
    class SlowScoring(ScriptedLLM):
        async def complete(self, request):
            if "Answer the question" not in (request.messages[0].content + request.messages[-1].content):
                await asyncio.sleep(30)
            return await super().complete(request)

    llm = SlowScoring(fn=lambda r: "Every 30 days [1].")
    pipe = pipeline_over(llm, method="pointwise_yesno", deadline_s=1.0)
    budget = CallBudget(1.0)
    budget_generate = budget.run

    async def generous(node, call):  # the generator gets its own time: this test is about the selector
        if node == "generate":
            return await call()
        return await budget_generate(node, call)

    budget.run = generous  # type: ignore[method-assign]
    start = time.perf_counter()
    answer = await pipe.aask("How often are API keys rotated?", budget=budget)
    assert time.perf_counter() - start < 4.0
    reasons = [e.message for e in fallback_events(answer, "pointwise_yesno")]
    assert reasons and any("deadline" in r for r in reasons), reasons
    assert answer.text.startswith("Every 30 days")


def test_deadline_setting_is_used_by_the_pipeline() -> None:
    pipe = pipeline_over(ScriptedLLM(echo=True), deadline_s=42.0)
    assert pipe.new_budget().deadline_s == 42.0
    assert pipeline_over(ScriptedLLM(echo=True)).new_budget().deadline_s == 300.0


# -- the breaker: the first hard failure stops the node's remaining calls --------------------------


@pytest.mark.parametrize("action, error", [("500", LLMUnavailable), ("hang", LLMTimeout)])
def test_after_a_hard_failure_the_rest_of_the_node_is_not_tried_one_by_one(action: str, error) -> None:
    with FakeOpenAIServer(default=action) as server:
        llm = Limited(http_llm(server, timeout_s=0.5, max_retries=1), 1)  # calls one by one
        pipe = pipeline_over(llm, method="pointwise_yesno", deadline_s=60.0)
        start = time.perf_counter()
        with pytest.raises(error):
            pipe.ask("How often are API keys rotated?")  # the generator's own call fails the same way
        elapsed = time.perf_counter() - start
    # 6 pointwise candidates one at a time: only the first (x 2 attempts) reaches the server, then the
    # generator's call (x 2 attempts); without the breaker it would be 7 x 2 requests.
    assert len(server.requests) == 2 + 2, len(server.requests)
    assert elapsed < 8.0, elapsed


def test_connection_refused_falls_back_quickly() -> None:
    llm = OpenAICompatLLM(base_url="http://127.0.0.1:9/v1", model="m", max_retries=1, timeout_s=2)
    pipe = pipeline_over(llm, method="listwise")
    start = time.perf_counter()
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        pipe.ask("How often are API keys rotated?")
    assert time.perf_counter() - start < 10.0


async def test_skipped_calls_say_why_and_make_no_request() -> None:
    llm = ScriptedLLM(cycle=[LLMUnavailable("cannot reach http://x/v1: is the server running?")])
    budget = CallBudget(60)
    from ragpipe.llm.deadline import Budgeted

    guarded = Budgeted(llm, budget, "listwise")
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        await guarded.chat([{"role": "user", "content": "q"}], max_tokens=3)
    with pytest.raises(LLMUnavailable, match="not called: an earlier listwise call failed"):
        await guarded.chat([{"role": "user", "content": "q"}], max_tokens=3)
    assert len(llm.requests) == 1
    other = Budgeted(ScriptedLLM(["fine"]), budget, "verify")  # other nodes still try
    assert (await other.chat([{"role": "user", "content": "q"}], max_tokens=3)).text == "fine"


async def test_a_soft_failure_does_not_trip_the_node() -> None:
    """A parse failure or a bad request is about one call; the next call is still made."""
    llm = ScriptedLLM([LLMError("rejected the request: bad schema"), "ok"])
    from ragpipe.llm.deadline import Budgeted

    guarded = Budgeted(llm, CallBudget(60), "listwise")
    with pytest.raises(LLMError):
        await guarded.chat([{"role": "user", "content": "q"}], max_tokens=3)
    assert (await guarded.chat([{"role": "user", "content": "q"}], max_tokens=3)).text == "ok"


async def test_when_one_call_trips_the_node_its_calls_in_flight_end_too() -> None:
    class Mixed(ScriptedLLM):
        async def complete(self, request):
            if request.messages[-1].content == "fail":
                await asyncio.sleep(0.1)
                raise LLMUnavailable("cannot reach http://x/v1")
            await asyncio.sleep(30)
            return await super().complete(request)

    from ragpipe.llm.deadline import Budgeted

    guarded = Budgeted(Mixed(echo=True), CallBudget(60), "pointwise")
    start = time.perf_counter()
    results = await asyncio.gather(
        *(guarded.chat([{"role": "user", "content": c}], max_tokens=3) for c in ("slow", "fail", "slow")),
        return_exceptions=True)
    assert time.perf_counter() - start < 2.0
    assert all(isinstance(r, LLMUnavailable) for r in results)


# -- keeps holding: retries on 429 and 500 ----------------------------------------------------------


@pytest.mark.parametrize("action", ["429", "500"])
async def test_transient_errors_are_retried_and_then_answer(action: str) -> None:
    with FakeOpenAIServer([action, action, "ok"]) as server:
        completion = await http_llm(server, max_retries=3).chat([{"role": "user", "content": "q"}], max_tokens=5)
    assert completion.text == "ok" and len(server.requests) == 3


async def test_garbage_from_the_selector_falls_back_with_a_reason() -> None:
    with FakeOpenAIServer(default="text:I refuse to rank anything.") as server:
        answer = await pipeline_over(http_llm(server), method="listwise").aask("How often are API keys rotated?")
    reasons = [e.message for e in fallback_events(answer, "listwise")]
    assert reasons and any("kept its order" in r or "input order" in r for r in reasons)
    assert [e.id for e in answer.evidence][:1]  # retrieval order is used, the query still answers
