"""vLLM in-process (``vllm.LLM``) for GPU machines. Imported lazily; absent vLLM is a clear error.

vLLM batches internally, so calls that arrive while the engine is busy are queued and then
sent together as one ``chat`` call (one batch per engine turn) instead of one by one; the
engine itself is used by one thread at a time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ragpipe.errors import MissingExtraError
from ragpipe.llm.base import BaseLLM, Capabilities, ChatRequest, Completion, TokenLogprob
from ragpipe.llm.special_tokens import neutralise_special_tokens
from ragpipe.schema import Usage

MAX_WAITING_CALLS = 256  # threads that may wait for the engine at once (each is one queued call)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise MissingExtraError("vllm", "vllm", "the in-process vLLM backend") from err
    return vllm


@dataclass
class _Pending:
    """One queued call: filled in by whichever thread runs the batch that contains it."""

    request: ChatRequest
    done: threading.Event = field(default_factory=threading.Event)
    result: Completion | None = None
    error: BaseException | None = None


class VLLMLLM(BaseLLM):
    """A model loaded into this process by vLLM. Loads on first use."""

    backend = "vllm"

    def __init__(self, model: str, *, context_window: int = 32768, seed: int = 0, **engine_args: Any) -> None:
        self.model = model
        self.context_window = context_window
        self.seed = seed
        self.engine_args = engine_args
        self._engine: Any = None
        self._specials: tuple[str, ...] | None = None
        self._lock = threading.Lock()  # engine creation
        self._run_lock = threading.Lock()  # one batch on the engine at a time
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._executor: ThreadPoolExecutor | None = None
        self.batch_sizes: list[int] = []  # size of every batch sent to the engine

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

    def _special_texts(self, engine: Any) -> tuple[str, ...]:
        """The loaded tokenizer's special-token strings, which data must never spell out."""
        if self._specials is None:
            tokenizer = engine.get_tokenizer()
            found = set(getattr(tokenizer, "all_special_tokens", None) or [])
            added = getattr(tokenizer, "get_added_vocab", None)
            found |= set(added()) if callable(added) else set()
            self._specials = tuple(sorted(t for t in found if isinstance(t, str) and t.strip()))
        return self._specials

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
        with self._queue_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(MAX_WAITING_CALLS, thread_name_prefix="ragpipe-vllm")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._complete_blocking, request)

    def _complete_blocking(self, request: ChatRequest) -> Completion:
        pending = _Pending(request)
        with self._queue_lock:
            self._queue.append(pending)
        with self._run_lock:
            if not pending.done.is_set():  # not answered by the previous batch: run everything queued
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run_batch(batch)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _run_batch(self, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        try:
            engine = self._ensure_engine()
            specials = self._special_texts(engine)
            conversations = [[{"role": m.role, "content": neutralise_special_tokens(m.content, specials)}
                              for m in p.request.messages] for p in batch]
            params = [self.sampling_params(p.request) for p in batch]
            self.batch_sizes.append(len(batch))
            outputs = engine.chat(conversations, params, use_tqdm=False)
            latency = time.perf_counter() - start
            for pending, output in zip(batch, outputs, strict=True):
                pending.result = self._completion(engine, pending.request, output, latency, len(batch))
        except BaseException as err:  # every caller in the batch sees the failure
            for pending in batch:
                if pending.result is None:
                    pending.error = err
        finally:
            for pending in batch:
                pending.done.set()

    def _completion(
        self, engine: Any, request: ChatRequest, result: Any, latency: float, batch_size: int
    ) -> Completion:
        """One output of a batch; engine time is shared evenly between the calls of the batch."""
        generated = result.outputs[0]
        logprobs = None
        if request.top_logprobs and generated.logprobs:
            tokenizer = engine.get_tokenizer()
            logprobs = []
            for token_id, alternatives in zip(generated.token_ids, generated.logprobs):
                top = sorted(alternatives.items(), key=lambda kv: -kv[1].logprob)[: request.top_logprobs]
                pairs = [(tokenizer.decode([t]), lp.logprob) for t, lp in top]
                logprobs.append(TokenLogprob.of(tokenizer.decode([token_id]), alternatives[token_id].logprob, pairs))
        return Completion(
            text=generated.text,
            logprobs=logprobs,
            usage=Usage(calls=1, prompt_tokens=len(result.prompt_token_ids or []),
                        completion_tokens=len(generated.token_ids), llm_seconds=latency / batch_size),
            finish_reason=generated.finish_reason or "stop",
            model=self.model,
            backend=self.backend,
            latency_s=latency,
        )

    def count_tokens(self, text: str) -> int:
        return len(self._ensure_engine().get_tokenizer().encode(text, add_special_tokens=False))
