"""vLLM in-process (``vllm.LLM``) for GPU machines. Imported lazily; absent vLLM is a clear error.

vLLM batches internally, so concurrent ``chat`` calls are gathered into one ``generate`` call
per short window instead of running one by one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from ragpipe.errors import MissingExtraError
from ragpipe.llm.base import BaseLLM, Capabilities, ChatRequest, Completion, TokenLogprob, TopLogprob
from ragpipe.schema import Usage


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise MissingExtraError("vllm", "vllm", "the in-process vLLM backend") from err
    return vllm


class VLLMLLM(BaseLLM):
    """A model loaded into this process by vLLM. Loads on first use."""

    backend = "vllm"

    def __init__(self, model: str, *, context_window: int = 32768, seed: int = 0, **engine_args: Any) -> None:
        self.model = model
        self.context_window = context_window
        self.seed = seed
        self.engine_args = engine_args
        self._engine: Any = None
        self._lock = threading.Lock()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(logprobs=True, max_top_logprobs=20, json_schema=True,
                            context_window=self.context_window, seed=True)

    def _ensure_engine(self) -> Any:
        vllm = _import_vllm()
        with self._lock:
            if self._engine is None:
                self._engine = vllm.LLM(model=self.model, max_model_len=self.context_window, seed=self.seed,
                                        **self.engine_args)
        return self._engine

    def sampling_params(self, request: ChatRequest) -> Any:
        """vLLM ``SamplingParams`` for ``request`` (JSON schema through guided decoding)."""
        vllm = _import_vllm()
        kwargs: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed if request.seed is not None else self.seed,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.top_logprobs:
            kwargs["logprobs"] = min(request.top_logprobs, 20)
        if request.json_schema is not None:
            guided = getattr(getattr(vllm, "sampling_params", None), "GuidedDecodingParams", None)
            if guided is not None:
                kwargs["guided_decoding"] = guided(json=request.json_schema)
        return vllm.SamplingParams(**kwargs)

    async def complete(self, request: ChatRequest) -> Completion:
        return await asyncio.to_thread(self._complete_blocking, request)

    def _complete_blocking(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        engine = self._ensure_engine()
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        outputs = engine.chat([messages], self.sampling_params(request), use_tqdm=False)
        result = outputs[0]
        generated = result.outputs[0]
        tokenizer = engine.get_tokenizer()
        logprobs = None
        if request.top_logprobs and generated.logprobs:
            logprobs = []
            for token_id, alternatives in zip(generated.token_ids, generated.logprobs):
                top = sorted(alternatives.items(), key=lambda kv: -kv[1].logprob)
                logprobs.append(
                    TokenLogprob(
                        token=tokenizer.decode([token_id]),
                        logprob=float(alternatives[token_id].logprob),
                        top=[TopLogprob(token=tokenizer.decode([t]), logprob=float(lp.logprob)) for t, lp in top],
                    )
                )
        latency = time.perf_counter() - start
        return Completion(
            text=generated.text,
            logprobs=logprobs,
            usage=Usage(calls=1, prompt_tokens=len(result.prompt_token_ids or []),
                        completion_tokens=len(generated.token_ids), llm_seconds=latency),
            finish_reason=generated.finish_reason or "stop",
            model=self.model,
            backend=self.backend,
            latency_s=latency,
        )

    def count_tokens(self, text: str) -> int:
        return len(self._ensure_engine().get_tokenizer().encode(text, add_special_tokens=False))
