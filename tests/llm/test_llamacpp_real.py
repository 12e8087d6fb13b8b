"""The embedded llama.cpp backend and llama.cpp's OpenAI-compatible server, with the packaged SmolLM2."""

from __future__ import annotations

import asyncio
import json

import pytest

from ragpipe.errors import ContextOverflow
from ragpipe.llm.llamacpp import LlamaCppLLM
from ragpipe.llm.llamacpp_server import LlamaCppServer
from ragpipe.llm.openai_compat import OpenAICompatLLM
from ragpipe.models import packaged_smollm2

pytestmark = pytest.mark.integration

PROMPT = [
    {"role": "system", "content": "You answer with one word."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def embedded() -> LlamaCppLLM:
    return LlamaCppLLM(packaged_smollm2(), n_ctx=2048, n_threads=1)


@pytest.fixture(scope="module")
def server():
    with LlamaCppServer(n_ctx=2048, n_threads=1) as running:
        yield running


async def test_first_token_logprobs_agree_between_embedded_and_server(embedded: LlamaCppLLM, server) -> None:
    """Same model, same chat template: the server's top-5 and ours agree on tokens and values."""
    remote = OpenAICompatLLM(base_url=server.base_url, model=server.model_alias, json_mode="json_object")
    ours = await embedded.chat(PROMPT, max_tokens=1, top_logprobs=5)
    theirs = await remote.chat(PROMPT, max_tokens=1, top_logprobs=5)
    assert ours.logprobs and theirs.logprobs, "both paths must return logprobs"
    mine, served = ours.logprobs[0].top_dict(), theirs.logprobs[0].top_dict()
    assert ours.text == theirs.text
    shared = set(mine) & set(served)
    assert len(shared) >= 4, (mine, served)
    for token in shared:
        assert abs(mine[token] - served[token]) < 0.05, (token, mine[token], served[token])
    assert ours.usage.prompt_tokens == theirs.usage.prompt_tokens


async def test_embedded_generation_logprobs_and_usage(embedded: LlamaCppLLM) -> None:
    completion = await embedded.chat(PROMPT, max_tokens=12, top_logprobs=3)
    assert completion.text.strip() and completion.backend == "llamacpp"
    assert completion.usage.completion_tokens == len(completion.logprobs)
    assert all(len(t.top) == 3 and t.top[0].logprob >= t.top[-1].logprob for t in completion.logprobs)
    assert completion.finish_reason in {"stop", "length"}
    assert embedded.count_tokens("Paris") >= 1


async def test_embedded_stop_sequences_and_max_tokens(embedded: LlamaCppLLM) -> None:
    long = [{"role": "user", "content": "Count from 1 to 30, separated by commas."}]
    cut = await embedded.chat(long, max_tokens=6, top_logprobs=1)
    assert cut.finish_reason == "length" and cut.usage.completion_tokens == 6
    stop = cut.logprobs[3].token  # a piece the model is known to produce
    prefix = cut.text[: cut.text.find(stop)]
    stopped = await embedded.chat(long, max_tokens=6, stop=[stop])
    assert stopped.text == prefix and stopped.finish_reason == "stop"


async def test_embedded_abandons_a_reply_at_its_first_off_course_match(embedded: LlamaCppLLM) -> None:
    """Generation stops as soon as the reply matches, and the match stays in the text."""
    long = [{"role": "user", "content": "Count from 1 to 30, separated by commas."}]
    whole = await embedded.chat(long, max_tokens=40)
    assert "\n5. 5" in whole.text, whole.text  # SmolLM2 numbers the lines: what the pattern below meets
    abandoned = await embedded.chat(long, max_tokens=40, abandon_at=[r"(?m)^5\."])
    assert abandoned.finish_reason == "abandoned"
    assert abandoned.text.endswith("\n5.") and whole.text.startswith(abandoned.text)
    assert abandoned.usage.completion_tokens < whole.usage.completion_tokens


async def test_embedded_is_safe_under_many_coroutines(embedded: LlamaCppLLM) -> None:
    prompts = [[{"role": "user", "content": f"Say the number {i}."}] for i in range(3)]
    results = await asyncio.gather(*(embedded.chat(p, max_tokens=2) for p in prompts))
    sequential = [await embedded.chat(p, max_tokens=2) for p in prompts]
    assert [r.text for r in results] == [s.text for s in sequential]  # greedy and isolated


@pytest.mark.slow  # compiles a grammar and samples under it: 10-25 s on a busy 2-core machine
async def test_embedded_json_schema_output_parses(embedded: LlamaCppLLM) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    completion = await embedded.chat(PROMPT, max_tokens=40, json_schema=schema)
    assert isinstance(json.loads(completion.text)["city"], str)


async def test_embedded_streams_the_same_text(embedded: LlamaCppLLM) -> None:
    pieces = [p async for p in embedded.chat_stream(PROMPT, max_tokens=6)]
    whole = await embedded.chat(PROMPT, max_tokens=6)
    assert len(pieces) >= 1 and "".join(pieces) == whole.text


async def test_embedded_context_overflow_is_an_error(embedded: LlamaCppLLM) -> None:
    with pytest.raises(ContextOverflow, match="does not fit"):
        await embedded.chat([{"role": "user", "content": "word " * 5000}], max_tokens=5)


async def test_token_logprobs_prefer_fluent_text(embedded: LlamaCppLLM) -> None:
    fluent = await embedded.token_logprobs("The cat sat on the mat and looked out of the window.")
    garbled = await embedded.token_logprobs("mat window cat the out sat looked the of on and.")
    assert len(fluent) == embedded.count_tokens("The cat sat on the mat and looked out of the window.")
    assert sum(fluent) / len(fluent) > sum(garbled) / len(garbled)


async def test_the_context_starts_small_and_grows_for_a_long_prompt() -> None:
    llm = LlamaCppLLM(packaged_smollm2(), n_ctx=2048, n_threads=1, initial_context=512)
    short = await llm.chat(PROMPT, max_tokens=4)
    assert short.text and llm._llama.n_ctx() == 512  # no KV cache beyond what the call needed
    notes = "The archive opens at nine and closes at five on weekdays. " * 60  # about 800 tokens
    long = await llm.chat([{"role": "user", "content": notes + "When does the archive open?"}], max_tokens=8)
    assert long.usage.prompt_tokens > 512 and long.usage.completion_tokens >= 1
    assert 512 < llm._llama.n_ctx() <= 2048 and llm.capabilities.context_window == 2048
    again = await llm.chat(PROMPT, max_tokens=4)
    assert again.text == short.text  # the same greedy answer from the larger context


def test_token_counts_use_the_one_loaded_model(monkeypatch) -> None:
    import llama_cpp

    loads: list[dict] = []
    real = llama_cpp.Llama

    def counting(*args, **kwargs):
        loads.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", counting)
    llm = LlamaCppLLM(packaged_smollm2(), n_threads=1)
    words = "The archive opens at nine and closes at five on weekdays."
    counted = llm.count_tokens(words)
    assert counted == len(llm._llama.tokenize(words.encode(), add_bos=False, special=False)) > 5
    assert llm.count_tokens("Paris") >= 1 and llm.count_tokens("") == 0
    assert len(loads) == 1 and not loads[0].get("vocab_only")  # no second, vocabulary-only copy
    assert llm._llama.n_ctx() == 2048  # the context an ask's prompts fit in, not n_ctx's 8192 default


async def test_a_preloaded_model_is_the_one_the_first_call_uses() -> None:
    llm = LlamaCppLLM(packaged_smollm2(), n_ctx=2048, n_threads=1)
    llm.preload().join(timeout=30)
    loaded = llm._llama
    assert loaded is not None
    reply = await llm.chat(PROMPT, max_tokens=2)
    assert reply.text and llm._llama is loaded


def test_preloading_a_missing_model_leaves_the_error_to_the_first_call(tmp_path) -> None:
    from ragpipe.errors import LLMUnavailable

    llm = LlamaCppLLM(tmp_path / "missing.gguf")
    llm.preload()
    with pytest.raises(LLMUnavailable, match="does not exist"):
        llm.count_tokens("Paris")
