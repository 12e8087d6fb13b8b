"""Build the configured LLM: backend, then the response cache (if on), then the concurrency limit."""

from __future__ import annotations

from ragpipe.config import LLMSettings, Settings
from ragpipe.errors import ConfigError
from ragpipe.llm.base import LLM
from ragpipe.llm.wrappers import Limited


def build_backend(llm: LLMSettings) -> LLM:
    """The bare backend named by ``llm.backend`` (no cache, no limiter)."""
    if llm.backend == "llamacpp":
        from ragpipe.llm.llamacpp import LlamaCppLLM
        from ragpipe.models import gguf_label, resolve_gguf

        return LlamaCppLLM(
            resolve_gguf(llm.model, llm.model_path), model=gguf_label(llm.model, llm.model_path), n_ctx=llm.context_window,
            n_threads=llm.n_threads, seed=llm.seed,
        )
    if llm.backend == "openai":
        from ragpipe.llm.openai_compat import OpenAICompatLLM

        if not llm.base_url:
            raise ConfigError("llm.base_url is required for the openai backend (e.g. http://127.0.0.1:8000/v1)")
        return OpenAICompatLLM(
            base_url=llm.base_url, model=llm.model, api_key_env=llm.api_key_env, timeout_s=llm.timeout_s,
            max_retries=llm.max_retries, context_window=llm.context_window, json_mode=llm.json_mode,
            logprobs=llm.logprobs, extra_body=llm.extra_body,
        )
    if llm.backend == "vllm":
        from ragpipe.llm.vllm_backend import VLLMLLM

        return VLLMLLM(llm.model_path or llm.model, context_window=llm.context_window, seed=llm.seed)
    if llm.backend == "scripted":
        from ragpipe.llm.scripted import ScriptedLLM

        return ScriptedLLM(echo=True)
    raise ConfigError(f"unknown llm.backend '{llm.backend}'")


def build_llm(settings: Settings) -> LLM:
    """The LLM a pipeline uses: backend, wrapped in the disk cache when enabled, then limited."""
    llm = build_backend(settings.llm)
    if settings.cache.enabled:
        from ragpipe.llm.cache import Cached

        llm = Cached(llm, settings.cache.path)
    return Limited(llm, settings.llm.max_concurrency)
