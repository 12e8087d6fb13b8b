"""Backends that need no server: factory choices, vLLM's absence and request mapping, llama.cpp errors."""

from __future__ import annotations

import sys
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
