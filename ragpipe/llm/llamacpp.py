"""The embedded default backend: llama.cpp in-process (llama-cpp-python) with a GGUF model.

Generation runs its own token loop over the last position's logits, so per-token logprobs and
top alternatives are available without ``logits_all`` (which would keep a full vocabulary row
for every prompt token). Prompts are formatted with the model's own chat template from the GGUF
metadata, exactly as llama.cpp's OpenAI-compatible server does, and the KV cache is reused for a
shared prompt prefix. One lock serialises access to the model; work runs in a thread, so many
coroutines can await the backend safely.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragpipe.errors import ContextOverflow, LLMTimeout, LLMUnavailable, MissingExtraError
from ragpipe.llm.base import ABANDONED, BaseLLM, Capabilities, ChatRequest, Completion, TokenLogprob, off_course
from ragpipe.llm.special_tokens import neutralise_special_tokens
from ragpipe.schema import Usage

MAX_TOP_LOGPROBS = 20
# The KV cache first allocated, in tokens; it grows (up to ``n_ctx``) when a prompt and its output
# need more. The cache is written in full when allocated (SmolLM2: about 23 KB a token, so 47 MB
# here), and an ask's prompts stay under 1500 tokens.
INITIAL_CONTEXT = 2048
CONTEXT_STEP = 1024
SCORER_CONTEXT = 512  # tokens of text scored by ``token_logprobs`` (perplexity); longer text is cut


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as err:
        raise MissingExtraError("llama-cpp-python", "local", "the embedded llama.cpp backend") from err
    return llama_cpp


def _special_token_texts(llama: Any) -> tuple[str, ...]:
    """The text of every control or user-defined token of the loaded vocabulary."""
    llama_cpp = _import_llama_cpp()
    vocab = llama._model.vocab
    special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    texts = set()
    for token in range(llama.n_vocab()):
        if llama_cpp.llama_vocab_get_attr(vocab, token) & special:
            text = llama._model.token_get_text(token)
            if text.strip():
                texts.add(text)
    return tuple(sorted(texts))


class LlamaCppLLM(BaseLLM):
    """llama.cpp in-process. The model loads on first use, not at construction."""

    backend = "llamacpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        model: str = "smollm2-135m-instruct",
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
        initial_context: int = INITIAL_CONTEXT,
    ) -> None:
        self.model = model
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx  # the most the context may grow to (what ``capabilities`` reports)
        self.initial_context = min(initial_context, n_ctx)
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.seed = seed
        self._llama: Any = None
        self._scorer: Any = None
        self._formatter: Any = None
        self._special_texts: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._scorer_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------
    def _new_llama(self, n_ctx: int, logits_all: bool) -> Any:
        llama_cpp = _import_llama_cpp()
        if not self.model_path.is_file():
            raise LLMUnavailable(f"GGUF model file {self.model_path} does not exist")
        try:
            return llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_batch=min(self.n_batch, n_ctx),
                n_threads=self.n_threads,
                seed=self.seed,
                logits_all=logits_all,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise LLMUnavailable(f"llama.cpp could not load {self.model_path}: {err}") from err

    def _ensure_loaded(self, need: int = 0) -> Any:
        """The model, with a context of at least ``need`` tokens (reloaded larger when it is smaller)."""
        if self._llama is not None and need > self._llama.n_ctx():
            size = min(self.n_ctx, -(-need // CONTEXT_STEP) * CONTEXT_STEP)
            if size > self._llama.n_ctx():
                self._llama = None  # free the small context before allocating the larger one
                self._llama = self._new_llama(size, logits_all=False)
        if self._llama is None:
            llama = self._new_llama(max(self.initial_context, min(self.n_ctx, need)), logits_all=False)
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = llama.metadata.get("tokenizer.chat_template")
            if not template:
                raise LLMUnavailable(f"{self.model_path} has no chat template in its metadata")
            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "",
            )
            self._special_texts = _special_token_texts(llama)
            self._llama = llama
        return self._llama

    def preload(self) -> threading.Thread:
        """Load the model in a background thread (returned), so the first call need not wait for it.

        Meant to overlap the load with work before the first call (retrieval); a failure is left
        for that call to report.
        """

        def load() -> None:
            with self._lock:
                try:
                    self._ensure_loaded()
                except Exception:  # noqa: BLE001 - the first real call raises it with its context
                    pass

        thread = threading.Thread(target=load, name="ragpipe-llm-load", daemon=True)
        thread.start()
        return thread

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            logprobs=True, max_top_logprobs=MAX_TOP_LOGPROBS, json_schema=True, context_window=self.n_ctx, seed=True
        )

    # -- tokens ----------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` by the model's vocabulary alone.

        Tokenizing reads only the vocabulary, never the context, so it does not wait for a running
        generation; a first call loads the model, which the next generation needs anyway.
        """
        llama = self._llama
        if llama is None:
            with self._lock:
                llama = self._ensure_loaded()
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[Any]) -> list[int]:
        """The token ids the model sees for ``messages`` (chat template applied)."""
        with self._lock:
            return self._prompt_tokens(self._ensure_loaded(), messages)

    def _safe_messages(self, messages: Sequence[Any]) -> list[dict[str, str]]:
        """Messages whose contents hold no string of this model's special tokens (nor the common ones).

        The template's own markers still become control tokens when the formatted prompt is
        tokenised with specials on; a document or question holding ``<|im_start|>`` does not.
        """
        return [{"role": m.role, "content": neutralise_special_tokens(m.content, self._special_texts)}
                for m in messages]

    def _prompt_tokens(self, llama: Any, messages: Sequence[Any]) -> list[int]:
        formatted = self._formatter(messages=self._safe_messages(messages))
        return llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)

    def _piece(self, llama: Any, token: int) -> str:
        return llama.detokenize([token]).decode("utf-8", errors="ignore")

    # -- generation ------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> Completion:
        cancelled = threading.Event()  # set when the caller gives up (deadline): the token loop stops
        try:
            return await asyncio.to_thread(self._complete_blocking, request, None, cancelled)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()

        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, piece)

        def work() -> None:
            try:
                self._complete_blocking(request, emit)
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except BaseException as err:  # handed to the consumer below
                loop.call_soon_threadsafe(queue.put_nowait, err)

        worker = loop.run_in_executor(None, work)
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        await worker

    def _complete_blocking(self, request: ChatRequest, emit: Any, cancelled: threading.Event | None = None
                           ) -> Completion:
        start = time.perf_counter()
        with self._lock:
            if cancelled is not None and cancelled.is_set():
                raise LLMTimeout("the call was abandoned before it started", attempts=0)
            tokens = self._prompt_tokens(self._ensure_loaded(), request.messages)
            if len(tokens) >= self.n_ctx:
                raise ContextOverflow(
                    f"prompt of {len(tokens)} tokens does not fit the {self.n_ctx}-token context of {self.model}"
                )
            llama = self._ensure_loaded(len(tokens) + request.max_tokens)
            if request.json_schema is not None and not request.top_logprobs and emit is None:
                return self._complete_with_grammar(llama, request, start)
            text, generated, logprobs, finish = self._generate(llama, tokens, request, emit, cancelled)
        return Completion(
            text=text,
            logprobs=logprobs if request.top_logprobs else None,
            usage=Usage(calls=1, prompt_tokens=len(tokens), completion_tokens=generated,
                        llm_seconds=time.perf_counter() - start),
            finish_reason=finish,
            model=self.model,
            backend=self.backend,
            latency_s=time.perf_counter() - start,
        )

    def _prefill(self, llama: Any, tokens: list[int]) -> None:
        """Evaluate ``tokens``, reusing the KV cache for the prefix shared with the last prompt."""
        cached = llama.input_ids[: llama.n_tokens].tolist()
        shared = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(tokens) - 1)  # re-evaluate at least one token for fresh logits
        llama.n_tokens = shared
        llama.eval(tokens[shared:])

    def _last_logits(self, llama: Any) -> np.ndarray:
        llama_cpp = _import_llama_cpp()
        pointer = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(llama.n_vocab(),)).astype(np.float64)

    def _generate(
        self, llama: Any, tokens: list[int], request: ChatRequest, emit: Any, cancelled: threading.Event | None = None
    ) -> tuple[str, int, list[TokenLogprob], str]:
        llama_cpp = _import_llama_cpp()
        vocab = llama._model.vocab
        budget = min(request.max_tokens, llama.n_ctx() - len(tokens))
        rng = np.random.default_rng(request.seed if request.seed is not None else self.seed)
        top_k = min(request.top_logprobs, MAX_TOP_LOGPROBS)
        self._prefill(llama, tokens)
        out: list[int] = []
        logprobs: list[TokenLogprob] = []
        text, emitted, finish = "", 0, "length"
        for step in range(budget):
            if cancelled is not None and cancelled.is_set():
                break
            logits = self._last_logits(llama)
            if request.temperature <= 0:
                token = int(np.argmax(logits))
            else:
                scaled = np.exp((logits - logits.max()) / request.temperature)
                token = int(rng.choice(len(scaled), p=scaled / scaled.sum()))
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            if top_k:  # a log-softmax over the vocabulary costs per token: only when logprobs were asked for
                shifted = logits - logits.max()
                log_probs = shifted - np.log(np.exp(shifted).sum())
                best = np.argpartition(-log_probs, top_k)[:top_k]
                best = best[np.argsort(-log_probs[best])]
                alternatives = [(self._piece(llama, int(t)), log_probs[t]) for t in best]
                logprobs.append(TokenLogprob.of(self._piece(llama, token), log_probs[token], alternatives))
            out.append(token)
            text = llama.detokenize(out).decode("utf-8", errors="ignore")
            stop_at = min((i for s in (request.stop or ()) if (i := text.find(s)) != -1), default=-1)
            if stop_at != -1:
                text, finish = text[:stop_at], "stop"
                break
            if (end := off_course(text, request)) is not None:
                text, finish = text[:end], ABANDONED
                break
            if text.endswith("\n") and looping(text):
                finish = "stop"  # the rest would be the same line again, at seconds per line on a CPU
                break
            shown = len(text) - pending_stop(text, request.stop)
            if emit is not None and shown > emitted:
                emit(text[emitted:shown])
                emitted = shown
            if step + 1 < budget:
                llama.eval([token])
        if emit is not None and len(text) > emitted:
            emit(text[emitted:])
        return text, len(out), logprobs, finish

    def _complete_with_grammar(self, llama: Any, request: ChatRequest, start: float) -> Completion:
        """JSON-schema-constrained output through llama.cpp's grammar sampler."""
        response = llama.create_chat_completion(
            messages=self._safe_messages(request.messages),
            response_format={"type": "json_object", "schema": request.json_schema},
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed if request.seed is not None else self.seed,
            stop=list(request.stop) if request.stop else None,
        )
        choice, usage = response["choices"][0], response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            usage=Usage(calls=1, prompt_tokens=usage.get("prompt_tokens", 0),
                        completion_tokens=usage.get("completion_tokens", 0),
                        llm_seconds=time.perf_counter() - start),
            finish_reason=choice.get("finish_reason") or "stop",
            model=self.model,
            backend=self.backend,
            latency_s=time.perf_counter() - start,
        )

    # -- scoring text (perplexity) -----------------------------------------------------------
    async def token_logprobs(self, text: str) -> list[float]:
        """Log-probability of each token of ``text`` given the ones before it (first token: given BOS).

        Uses a second, small-context model instance with ``logits_all`` so the whole text is scored
        in one pass; text beyond ``SCORER_CONTEXT`` tokens is not scored.
        """
        return await asyncio.to_thread(self._token_logprobs_blocking, text)

    def _token_logprobs_blocking(self, text: str) -> list[float]:
        with self._scorer_lock:
            if self._scorer is None:
                self._scorer = self._new_llama(SCORER_CONTEXT, logits_all=True)
            scorer = self._scorer
            bos = scorer.token_bos()
            tokens = scorer.tokenize(text.encode("utf-8"), add_bos=False, special=False)[: SCORER_CONTEXT - 1]
            if not tokens:
                return []
            sequence = ([bos] if bos != -1 else []) + tokens
            scorer.reset()
            scorer.eval(sequence)
            scores = np.asarray(scorer.scores[: len(sequence)], dtype=np.float64)
        offset = len(sequence) - len(tokens)
        result = []
        for i, token in enumerate(tokens):
            row = scores[i + offset - 1] if i + offset - 1 >= 0 else None
            if row is None:
                continue
            shifted = row - row.max()
            result.append(float(shifted[token] - np.log(np.exp(shifted).sum())))
        return result


LOOP_LINES = 3  # identical lines in a row that end a generation
LOOP_MIN_CHARS = 20  # shorter lines (rules, table rows, blank markup) may repeat on purpose


def pending_stop(text: str, stop: Sequence[str] | None) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string: streamed
    text holds them back, so a reply cut at "\nQuestion:" never shows "\nQues" on the screen."""
    return max((k for s in (stop or ()) for k in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:k])),
               default=0)


def looping(text: str) -> bool:
    """Whether the last finished lines of ``text`` are one line repeated: small models, once they
    repeat a line, repeat it until max_tokens."""
    finished = [line.strip() for line in text.split("\n")[:-1]]
    finished = [line for line in finished if line]
    last = finished[-LOOP_LINES:]
    return len(last) == LOOP_LINES and len(set(last)) == 1 and len(last[0]) >= LOOP_MIN_CHARS
