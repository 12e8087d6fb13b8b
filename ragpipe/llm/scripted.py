"""A scripted LLM double for tests and dry runs.

It answers from a script (a queue, a fixed reply, a cycle, a function of the request, or an
echo), can return realistic failure shapes (empty, prose, refusals, truncation, timeouts,
exceptions), returns canned logprobs, and records every request it receives. It also measures
how many calls were in flight at once, so tests can assert concurrency limits.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Union

from ragpipe.errors import LLMError, LLMTimeout
from ragpipe.llm.base import (
    ABANDONED,
    BaseLLM,
    Capabilities,
    ChatRequest,
    Completion,
    TokenLogprob,
    off_course,
)
from ragpipe.schema import Usage

Reply = Union[str, Completion, BaseException]
ReplyFn = Callable[[ChatRequest], Reply]


def logprob_reply(distribution: dict[str, float], text: str | None = None) -> Completion:
    """A one-token completion whose top logprobs are ``distribution`` (token -> probability)."""
    ranked = sorted(distribution.items(), key=lambda kv: -kv[1])
    top = [(t, math.log(p) if p > 0 else -100.0) for t, p in ranked]
    chosen = text if text is not None else ranked[0][0]
    chosen_lp = next((lp for t, lp in top if t == chosen), -100.0)
    return Completion(
        text=chosen,
        logprobs=[TokenLogprob.of(chosen, chosen_lp, top)],
        finish_reason="length",
    )


def truncated_reply(text: str) -> Completion:
    """A completion cut off at max_tokens."""
    return Completion(text=text, finish_reason="length")


REFUSAL = "I'm sorry, but I can't help with that request."


class ScriptedLLM(BaseLLM):
    """Deterministic stand-in for a chat model.

    Exactly one of ``replies`` (consumed in order), ``cycle`` (repeated), ``fn`` (computed per
    request) or ``echo=True`` (returns the last user message) drives the answers; ``enqueue``
    adds more replies later. An exception instance in the script is raised instead of answered.
    """

    backend = "scripted"

    def __init__(
        self,
        replies: Iterable[Reply] | None = None,
        *,
        cycle: Iterable[Reply] | None = None,
        fn: ReplyFn | None = None,
        echo: bool = False,
        model: str = "scripted-model",
        delay_s: float = 0.0,
        capabilities: Capabilities | None = None,
    ) -> None:
        self.model = model
        self._queue: deque[Reply] = deque(replies or [])
        self._cycle = itertools.cycle(list(cycle)) if cycle is not None else None
        self._fn = fn
        self._echo = echo
        self.delay_s = delay_s
        self._capabilities = capabilities or Capabilities(
            logprobs=True, max_top_logprobs=20, json_schema=False, context_window=8192, seed=True
        )
        self.requests: list[ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.call_spans: list[tuple[float, float]] = []

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def enqueue(self, *replies: Reply) -> ScriptedLLM:
        self._queue.extend(replies)
        return self

    def _next_reply(self, request: ChatRequest) -> Reply:
        if self._queue:
            return self._queue.popleft()
        if self._fn is not None:
            return self._fn(request)
        if self._cycle is not None:
            return next(self._cycle)
        if self._echo:
            users = [m.content for m in request.messages if m.role == "user"]
            return users[-1] if users else ""
        raise LLMError("ScriptedLLM has no reply left for this request; enqueue more replies")

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = time.perf_counter()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            reply = self._next_reply(request)
            if isinstance(reply, BaseException):
                raise reply
            completion = reply if isinstance(reply, Completion) else Completion(text=reply)
            completion = _cut_at_stop(completion, request.stop)
            if completion.logprobs is None and (end := off_course(completion.text, request)) is not None:
                completion = completion.model_copy(update={"text": completion.text[:end], "finish_reason": ABANDONED})
            if completion.finish_reason == "stop" and completion.logprobs is None:
                # Emulate max_tokens: a reply longer than the budget comes back cut off.
                if _words(completion.text) > request.max_tokens:
                    words = completion.text.split(" ")
                    completion = completion.model_copy(
                        update={"text": " ".join(words[: max(1, request.max_tokens)]), "finish_reason": "length"}
                    )
            prompt_tokens = sum(_words(m.content) for m in request.messages)
            return completion.model_copy(
                update={
                    "usage": Usage(
                        calls=1,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=_words(completion.text),
                        llm_seconds=time.perf_counter() - start,
                    ),
                    "model": self.model,
                    "backend": self.backend,
                    "latency_s": time.perf_counter() - start,
                }
            )
        finally:
            self.in_flight -= 1
            self.call_spans.append((start, time.perf_counter()))

    def count_tokens(self, text: str) -> int:
        """Whitespace tokens: simple and predictable for tests."""
        return _words(text)


def _cut_at_stop(completion: Completion, stop: tuple[str, ...] | None) -> Completion:
    """Emulate stop strings as real backends apply them: the reply ends before the first one."""
    cut = min((i for s in (stop or ()) if (i := completion.text.find(s)) != -1), default=-1)
    if cut == -1 or completion.logprobs is not None:
        return completion
    return completion.model_copy(update={"text": completion.text[:cut], "finish_reason": "stop"})


def _words(text: str) -> int:
    """The scripted tokenizer; usage uses it directly, so a subclass may make ``count_tokens`` slow."""
    return len(text.split()) if text.strip() else 0


def timeout_error() -> LLMTimeout:
    return LLMTimeout("scripted timeout")


__all__ = ["ScriptedLLM", "logprob_reply", "truncated_reply", "REFUSAL", "timeout_error"]
