"""The one LLM protocol every backend implements, and the value types it speaks.

Async first: ``await llm.chat(messages, ...)``. Callers that are not async use
``llm.chat_sync(...)``. Selectors branch on ``llm.capabilities``, never on model names.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import Required, TypedDict, Unpack

from ragpipe.errors import Truncated
from ragpipe.schema import Usage

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat message (OpenAI shape)."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


def as_messages(messages: Sequence[Message | dict[str, str]]) -> list[Message]:
    """Accept ``Message`` objects or plain ``{"role", "content"}`` dicts."""
    return [m if isinstance(m, Message) else Message(**m) for m in messages]


class TopLogprob(BaseModel):
    token: str
    logprob: float


class TokenLogprob(BaseModel):
    """The generated token, its log-probability, and the most likely alternatives at that position."""

    token: str
    logprob: float
    top: list[TopLogprob] = Field(default_factory=list)

    @classmethod
    def of(cls, token: str, logprob: float, alternatives: Iterable[tuple[str, float]] = ()) -> TokenLogprob:
        """Build from plain ``(token, logprob)`` pairs, the shape every backend's output comes in."""
        top = [TopLogprob(token=t, logprob=float(lp)) for t, lp in alternatives]
        return cls(token=token, logprob=float(logprob), top=top)

    def top_dict(self) -> dict[str, float]:
        """Token -> best logprob among the alternatives (including the chosen token)."""
        best: dict[str, float] = {self.token: self.logprob}
        for alt in self.top:
            if alt.logprob > best.get(alt.token, -math.inf):
                best[alt.token] = alt.logprob
        return best


class ChatRequest(BaseModel):
    """Everything that determines a completion: used for caching, recording and tracing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float = 0.0
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    top_logprobs: int = 0
    # Regular expressions that mark a reply gone off course (prose where JSON was asked for, a
    # question of the model's own after its answer). The embedded backend, where each token costs
    # a CPU, stops as soon as one matches and keeps the matched text, so the caller sees why;
    # others return the whole reply, which holds the same match.
    abandon_at: tuple[str, ...] | None = None

    @field_validator("abandon_at")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        check_patterns(value or ())
        return value


def check_patterns(patterns: Sequence[str]) -> Sequence[str]:
    """``patterns`` when each compiles; else a ValueError naming the one that does not."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"{pattern!r} is not a regular expression ({err}); fix or remove it") from err
    return patterns


ABANDONED = "abandoned"  # the finish reason of a reply stopped at an ``abandon_at`` match


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


def off_course(text: str, request: ChatRequest) -> int | None:
    """Where the first ``abandon_at`` match in ``text`` ends (the reply is cut there), or None."""
    if not request.abandon_at:
        return None
    ends = [m.end() for p in _compiled(request.abandon_at) if (m := p.search(text))]
    return min(ends) if ends else None


class Completion(BaseModel):
    """What a backend returns for one chat call."""

    text: str
    logprobs: list[TokenLogprob] | None = None
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str = "stop"
    model: str = ""
    backend: str = ""
    latency_s: float = 0.0
    cached: bool = False
    usage_estimated: bool = False  # the server reported no token counts; ``usage`` holds estimates

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def require_complete(self) -> Completion:
        """Raise ``Truncated`` (carrying the partial text) if the model hit max_tokens."""
        if self.truncated:
            raise Truncated(
                f"{self.backend}:{self.model} stopped at max_tokens; raise max_tokens or shorten the prompt",
                raw=self.text,
            )
        return self


class Capabilities(BaseModel):
    """What a backend can do; probed once per backend."""

    logprobs: bool = False
    max_top_logprobs: int = 0
    json_schema: bool = False
    context_window: int = 4096
    seed: bool = False


@runtime_checkable
class LLM(Protocol):
    """The protocol of every backend and wrapper."""

    backend: str
    model: str

    @property
    def capabilities(self) -> Capabilities: ...

    async def chat(
        self,
        messages: Sequence[Message | dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        top_logprobs: int = 0,
        abandon_at: Sequence[str] | None = None,
    ) -> Completion: ...

    def count_tokens(self, text: str) -> int: ...


class ChatOptions(TypedDict, total=False):
    """The options of one chat call besides its messages; the protocol's ``chat`` spells out the defaults."""

    max_tokens: Required[int]
    temperature: float
    stop: Sequence[str] | None
    seed: int | None
    json_schema: dict[str, Any] | None
    top_logprobs: int
    abandon_at: Sequence[str] | None


def make_request(messages: Sequence[Message | dict[str, str]], **options: Unpack[ChatOptions]) -> ChatRequest:
    """Normalise chat() arguments into a hashable request."""
    stop = options.pop("stop", None)
    abandon_at = options.pop("abandon_at", None)
    return ChatRequest(messages=tuple(as_messages(messages)), stop=tuple(stop) if stop else None,
                       abandon_at=tuple(abandon_at) if abandon_at else None, **options)


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate for backends without a tokenizer (about 3 characters a token)."""
    return max(1, math.ceil(len(text) / 3))


def run_sync(coro_factory: Callable[[], Any]) -> Any:
    """Run a coroutine from sync code on the one background event loop of this process.

    Every sync call from every thread shares that loop, so per-loop resources (HTTP clients,
    concurrency limits) are made once and hold across threads. Called from a coroutine running
    on that loop itself, the coroutine runs on a private loop in a worker thread instead: blocking
    the shared loop on its own work would deadlock.
    """
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(lambda: asyncio.run(coro_factory())).result()
    future = asyncio.run_coroutine_threadsafe(coro_factory(), loop)
    try:
        return future.result()
    except BaseException:  # KeyboardInterrupt in the caller: stop the work too
        future.cancel()
        raise


_BACKGROUND: asyncio.AbstractEventLoop | None = None
_BACKGROUND_LOCK = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """The process's background event loop, started on first use in a daemon thread."""
    global _BACKGROUND
    with _BACKGROUND_LOCK:
        if _BACKGROUND is None or _BACKGROUND.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="ragpipe-loop", daemon=True).start()
            _BACKGROUND = loop
        return _BACKGROUND


class BaseLLM:
    """Shared plumbing for backends: request normalisation and the sync wrapper.

    Subclasses implement ``_chat(request) -> Completion`` and ``capabilities``.
    """

    backend: str = "base"
    model: str = ""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def chat(self, messages: Sequence[Message | dict[str, str]], **options: Unpack[ChatOptions]) -> Completion:
        return await self.complete(make_request(messages, **options))

    async def complete(self, request: ChatRequest) -> Completion:
        """Run one normalised request. Wrappers (cache, limiter, meter) override this."""
        raise NotImplementedError

    def chat_sync(self, messages: Sequence[Message | dict[str, str]], **options: Unpack[ChatOptions]) -> Completion:
        return run_sync(lambda: self.chat(messages, **options))

    async def chat_stream(
        self, messages: Sequence[Message | dict[str, str]], **options: Unpack[ChatOptions]
    ) -> AsyncIterator[str]:
        """Text pieces as they are generated. Backends without streaming yield the whole text once."""
        async for piece in self.stream(make_request(messages, **options)):
            yield piece

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Stream one normalised request; the default runs ``complete`` and yields its text."""
        completion = await self.complete(request)
        yield completion.text

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)
