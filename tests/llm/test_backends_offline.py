"""Backends that need no server: factory choices, vLLM's absence and request mapping, llama.cpp errors."""

from __future__ import annotations

import asyncio
import sys
import time
import types

import pytest

from ragpipe.config import load_settings
from ragpipe.errors import ConfigError, MissingExtraError
from ragpipe.llm.base import make_request
from ragpipe.llm.cache import Cached
from ragpipe.llm.factory import build_llm
from ragpipe.llm.wrappers import Limited


def test_factory_builds_each_backend(tmp_path) -> None:
    local = build_llm(load_settings())
    assert isinstance(local, Limited) and local.inner.backend == "llamacpp"
    server = build_llm(load_settings(connector="llamacpp-server"))
    assert server.inner.backend == "openai" and server.inner.json_mode == "json_object"
    cached = build_llm(load_settings(cache__enabled=True, cache__path=str(tmp_path / "c")))
    assert isinstance(cached.inner, Cached)
    assert build_llm(load_settings(connector="vllm-local")).inner.backend == "vllm"


def test_factory_rejects_openai_backend_without_url() -> None:
    with pytest.raises(ConfigError, match="llm.base_url is required"):
        build_llm(load_settings(llm__backend="openai", llm__base_url=None))


def test_unknown_gguf_model_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="set llm.model_path to a .gguf file"):
        build_llm(load_settings(llm__model="mystery-7b"))


async def test_vllm_absent_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    llm = build_llm(load_settings(connector="vllm-local"))
    with pytest.raises(MissingExtraError, match=r"pip install 'ragpipe\[vllm\]'"):
        await llm.chat([{"role": "user", "content": "hi"}], max_tokens=3)


def test_vllm_sampling_params_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

    class GuidedDecodingParams:
        def __init__(self, json) -> None:
            self.json = json

    fake.SamplingParams = SamplingParams
    fake.sampling_params = types.SimpleNamespace(GuidedDecodingParams=GuidedDecodingParams)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from ragpipe.llm.vllm_backend import VLLMLLM

    request = make_request([{"role": "user", "content": "x"}], max_tokens=9, seed=3, stop=["]"], top_logprobs=30,
                           json_schema={"type": "object"})
    params = VLLMLLM("some/model").sampling_params(request)
    assert params.kwargs["max_tokens"] == 9 and params.kwargs["seed"] == 3 and params.kwargs["stop"] == ["]"]
    assert params.kwargs["logprobs"] == 20
    assert params.kwargs["guided_decoding"].json == {"type": "object"}


def fake_vllm_module(delay_s: float = 0.2) -> types.ModuleType:
    """A stand-in ``vllm`` whose engine answers each conversation with its last user message reversed."""
    fake = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

    class Tokenizer:
        def decode(self, ids: list[int]) -> str:
            return f"<{ids[0]}>"

    class Engine:
        batches: list[int] = []

        def __init__(self, **kwargs) -> None:
            self.kwargs = kwargs

        def get_tokenizer(self) -> Tokenizer:
            return Tokenizer()

        def chat(self, conversations, params, use_tqdm=False):
            assert len(conversations) == len(params) and use_tqdm is False
            Engine.batches.append(len(conversations))
            time.sleep(delay_s)
            outputs = []
            for messages, sampling in zip(conversations, params):
                text = messages[-1]["content"][::-1]
                logprobs = None
                if sampling.kwargs.get("logprobs"):
                    logprobs = [{7: types.SimpleNamespace(logprob=-0.2), 9: types.SimpleNamespace(logprob=-1.9)}]
                generated = types.SimpleNamespace(text=text, token_ids=[7], logprobs=logprobs, finish_reason="length")
                outputs.append(types.SimpleNamespace(prompt_token_ids=[1, 2, 3], outputs=[generated]))
            return outputs

    fake.SamplingParams = SamplingParams
    fake.LLM = Engine
    return fake


async def test_vllm_concurrent_calls_are_batched_and_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_vllm_module()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from ragpipe.llm.vllm_backend import VLLMLLM

    llm = VLLMLLM("some/model", context_window=4096)
    prompts = [f"question {i}" for i in range(8)]
    results = await asyncio.gather(
        *(llm.chat([{"role": "user", "content": p}], max_tokens=1, top_logprobs=2) for p in prompts)
    )
    assert [r.text for r in results] == [p[::-1] for p in prompts]  # each caller gets its own output
    assert sum(fake.LLM.batches) == 8 and len(fake.LLM.batches) < 8  # queued calls shared engine turns
    first = results[0]
    assert first.backend == "vllm" and first.finish_reason == "length" and first.truncated
    assert first.usage.prompt_tokens == 3 and first.usage.completion_tokens == 1
    assert first.logprobs[0].token == "<7>" and first.logprobs[0].top_dict() == {"<7>": -0.2, "<9>": -1.9}


async def test_vllm_engine_failure_reaches_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_vllm_module()

    def broken_chat(self, conversations, params, use_tqdm=False):
        raise RuntimeError("CUDA out of memory")

    fake.LLM.chat = broken_chat
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from ragpipe.llm.vllm_backend import VLLMLLM

    llm = VLLMLLM("some/model")
    outcomes = await asyncio.gather(
        *(llm.chat([{"role": "user", "content": "x"}], max_tokens=2) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, RuntimeError) and "out of memory" in str(o) for o in outcomes)
