"""The OpenAI-compatible backend against a scripted HTTP server: mapping, retries, timeouts, errors."""

from __future__ import annotations

import time

import pytest

from ragpipe.errors import (
    ContextOverflow,
    LLMAuthError,
    LLMError,
    LLMModelNotFound,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)
from ragpipe.llm.openai_compat import OpenAICompatLLM
from tests.llm.fake_openai_server import FakeOpenAIServer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Rank these."}]


def backend(server: FakeOpenAIServer, **kwargs) -> OpenAICompatLLM:
    options = {"timeout_s": 10.0, "max_retries": 2, **kwargs}
    return OpenAICompatLLM(base_url=server.base_url, model="served-model", **options)


async def test_request_and_response_mapping() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    with FakeOpenAIServer(["logprobs"]) as server:
        completion = await backend(server).chat(
            MESSAGES, max_tokens=7, temperature=0.0, stop=["\n\n"], seed=42, json_schema=schema, top_logprobs=5
        )
    sent = server.requests[0]
    assert sent["model"] == "served-model" and sent["max_tokens"] == 7 and sent["temperature"] == 0.0
    assert sent["messages"] == MESSAGES and sent["stop"] == ["\n\n"] and sent["seed"] == 42
    assert sent["logprobs"] is True and sent["top_logprobs"] == 5
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert completion.text == "A" and completion.finish_reason == "length" and completion.truncated
    assert completion.usage.prompt_tokens == 11 and completion.usage.completion_tokens == 2
    assert completion.backend == "openai" and completion.model == "served-model"
    assert completion.logprobs[0].top_dict() == {"A": -0.1, "B": -2.5}


@pytest.mark.parametrize(
    "mode, key, expected",
    [
        ("json_object", "response_format", {"type": "json_object", "schema": {"type": "object"}}),
        ("guided_json", "guided_json", {"type": "object"}),
    ],
)
async def test_json_schema_styles(mode: str, key: str, expected: dict) -> None:
    with FakeOpenAIServer(["ok"]) as server:
        await backend(server, json_mode=mode).chat(MESSAGES, max_tokens=5, json_schema={"type": "object"})
    assert server.requests[0][key] == expected


async def test_logprobs_not_requested_from_servers_without_them() -> None:
    with FakeOpenAIServer(["ok"]) as server:
        llm = backend(server, logprobs=False)
        completion = await llm.chat(MESSAGES, max_tokens=5, top_logprobs=5)
    assert "logprobs" not in server.requests[0]
    assert completion.logprobs is None and llm.capabilities.logprobs is False


@pytest.mark.parametrize("failure", ["429", "500"])
async def test_retries_then_succeeds(failure: str) -> None:
    with FakeOpenAIServer([failure, failure, "ok"]) as server:
        completion = await backend(server, max_retries=2).chat(MESSAGES, max_tokens=5)
    assert completion.text == "ok"
    assert len(server.requests) == 3


async def test_rate_limited_after_all_retries() -> None:
    with FakeOpenAIServer(["429"] * 3) as server:
        with pytest.raises(LLMRateLimited, match="429") as err:
            await backend(server, max_retries=2).chat(MESSAGES, max_tokens=5)
    assert len(server.requests) == 3 and err.value.attempts == 3


async def test_server_error_after_all_retries() -> None:
    with FakeOpenAIServer(["500"] * 2) as server:
        with pytest.raises(LLMUnavailable, match="HTTP 500"):
            await backend(server, max_retries=1).chat(MESSAGES, max_tokens=5)


async def test_hanging_server_times_out_quickly() -> None:
    with FakeOpenAIServer(["hang"]) as server:
        start = time.perf_counter()
        with pytest.raises(LLMTimeout, match="did not answer within 0.3 s"):
            await backend(server, timeout_s=0.3, max_retries=0).chat(MESSAGES, max_tokens=5)
        assert time.perf_counter() - start < 2.5


async def test_garbage_response_is_an_llm_error() -> None:
    with FakeOpenAIServer(["garbage"]) as server:
        with pytest.raises(LLMError, match="not valid JSON"):
            await backend(server, max_retries=0).chat(MESSAGES, max_tokens=5)


async def test_reply_without_choices_is_an_llm_error() -> None:
    with FakeOpenAIServer(["nochoices"]) as server:
        with pytest.raises(LLMError, match="not a chat completion"):
            await backend(server, max_retries=0).chat(MESSAGES, max_tokens=5)


async def test_missing_usage_is_estimated_and_marked() -> None:
    with FakeOpenAIServer(["nousage", "ok"]) as server:
        estimated = await backend(server).chat(MESSAGES, max_tokens=5)
        reported = await backend(server).chat(MESSAGES, max_tokens=5)
    assert estimated.usage_estimated and not reported.usage_estimated
    assert estimated.usage.prompt_tokens > 0 and estimated.usage.completion_tokens > 0
    assert estimated.text == "a short answer"


async def test_bad_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", "sk-secret-123")
    with FakeOpenAIServer(["401"]) as server:
        with pytest.raises(LLMAuthError) as err:
            await backend(server, api_key_env="MY_SERVER_KEY").chat(MESSAGES, max_tokens=5)
    assert "MY_SERVER_KEY" in str(err.value) and "sk-secret-123" not in str(err.value)


async def test_unknown_model_lists_what_is_served() -> None:
    with FakeOpenAIServer(["404"]) as server:
        with pytest.raises(LLMModelNotFound, match="model 'served-model' is not served .* it serves: served-model"):
            await backend(server).chat(MESSAGES, max_tokens=5)


async def test_context_overflow() -> None:
    with FakeOpenAIServer(["400ctx"]) as server:
        with pytest.raises(ContextOverflow):
            await backend(server).chat(MESSAGES, max_tokens=5)


async def test_unreachable_server_is_one_clear_line() -> None:
    llm = OpenAICompatLLM(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, timeout_s=2)
    with pytest.raises(LLMUnavailable, match=r"cannot reach http://127.0.0.1:9/v1: is the server running\?"):
        await llm.chat(MESSAGES, max_tokens=5)


def test_openai_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMAuthError, match="set the OPENAI_API_KEY environment variable"):
        OpenAICompatLLM(base_url="https://api.openai.com/v1", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY")


def test_key_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-456")
    llm = OpenAICompatLLM(base_url="https://api.openai.com/v1", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY")
    assert "sk-secret-456" not in repr(llm) + str(vars(llm).get("base_url"))


def test_sync_wrapper_works_outside_and_inside_an_event_loop() -> None:
    import asyncio

    with FakeOpenAIServer(["ok", "ok"]) as server:
        llm = backend(server)
        assert llm.chat_sync(MESSAGES, max_tokens=5).text == "ok"

        async def inside() -> str:
            return llm.chat_sync(MESSAGES, max_tokens=5).text

        assert asyncio.run(inside()) == "ok"
