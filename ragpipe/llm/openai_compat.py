"""Any OpenAI-compatible chat server through the ``openai`` client: OpenAI, vLLM, llama.cpp, Ollama.

Retries with exponential backoff on 429, 5xx and connection errors are the client's own
(``max_retries``); every call has a timeout. Failures become one-line ``ragpipe.errors`` that
say what to do, with no parser internals. The API key is read from the environment variable a
connector names, only here; it is registered for redaction, so it never appears in a message,
a log or a trace, even when a server echoes it back. Message contents are sent with
special-token strings defused, so a document cannot open a chat turn on the server.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, Literal

from ragpipe.errors import (
    ContextOverflow,
    LLMAuthError,
    LLMError,
    LLMModelNotFound,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
    register_secret,
)
from ragpipe.llm.base import (
    BaseLLM,
    Capabilities,
    ChatRequest,
    Completion,
    TokenLogprob,
    estimate_tokens,
)
from ragpipe.llm.special_tokens import neutralise_special_tokens
from ragpipe.schema import Usage

JsonMode = Literal["json_schema", "json_object", "guided_json", "none"]
OPENAI_HOST = "api.openai.com"
PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the client insists on one
ENDPOINT_HINT = "check that llm.base_url points at an OpenAI-compatible /v1 endpoint"


class OpenAICompatLLM(BaseLLM):
    """Chat completions against ``base_url``.

    ``json_mode`` says how a JSON schema is passed: ``json_schema`` (OpenAI, vLLM, Ollama,
    llama.cpp's C++ server), ``json_object`` (llama-cpp-python's server: ``{"type":
    "json_object", "schema": ...}``), ``guided_json`` (older vLLM ``extra_body``) or ``none``.
    """

    backend = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        context_window: int = 8192,
        json_mode: JsonMode = "json_schema",
        logprobs: bool = True,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.context_window = context_window
        self.json_mode = json_mode
        self.supports_logprobs = logprobs
        self.extra_body = dict(extra_body or {})
        self._api_key = self._read_key()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAICompatLLM(base_url={self.base_url!r}, model={self.model!r})"

    def _read_key(self) -> str:
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if not key and OPENAI_HOST in self.base_url:
            env = self.api_key_env or "OPENAI_API_KEY"
            raise LLMAuthError(f"{self.base_url} needs an API key: set the {env} environment variable")
        register_secret(key)
        return key or PLACEHOLDER_KEY

    def _client(self) -> Any:
        """One ``AsyncOpenAI`` per event loop (its HTTP pool is bound to the loop that made it).

        Sync calls all run on the one background loop, so they share one client; a finished
        loop's client goes with the loop (weak keys), and a new loop never inherits it.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if loop not in self._clients:
                from openai import AsyncOpenAI

                self._clients[loop] = AsyncOpenAI(
                    base_url=self.base_url,
                    api_key=self._api_key,
                    timeout=self.timeout_s,
                    max_retries=self.max_retries,
                )
            return self._clients[loop]

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            logprobs=self.supports_logprobs,
            max_top_logprobs=20 if self.supports_logprobs else 0,
            json_schema=self.json_mode != "none",
            context_window=self.context_window,
            seed=True,
        )

    # -- request mapping -----------------------------------------------------------------
    def request_kwargs(self, request: ChatRequest) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for ``request``."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": neutralise_special_tokens(m.content)} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.top_logprobs and self.supports_logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = min(request.top_logprobs, 20)
        extra = dict(self.extra_body)
        if request.json_schema is not None:
            if self.json_mode == "json_schema":
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": request.json_schema},
                }
            elif self.json_mode == "json_object":
                kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
            elif self.json_mode == "guided_json":
                extra["guided_json"] = request.json_schema
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    # -- calls ---------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        try:
            response = await self._client().chat.completions.create(**self.request_kwargs(request))
        except Exception as err:
            raise await self._translate(err) from err
        latency = time.perf_counter() - start
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
        except (AttributeError, IndexError, TypeError) as err:
            raise LLMError(f"{self.base_url} answered with JSON that is not a chat completion (no "
                           f"choices[0].message); {ENDPOINT_HINT}") from err
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        estimated = prompt_tokens is None or completion_tokens is None
        if prompt_tokens is None:  # servers that report no usage: estimate, erring high
            prompt_tokens = sum(estimate_tokens(m.content) for m in request.messages)
        if completion_tokens is None:
            completion_tokens = estimate_tokens(text) if text else 0
        return Completion(
            text=text,
            logprobs=_map_logprobs(getattr(choice, "logprobs", None)) if request.top_logprobs else None,
            usage=Usage(calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, llm_seconds=latency),
            finish_reason=choice.finish_reason or "stop",
            model=getattr(response, "model", None) or self.model,
            backend=self.backend,
            latency_s=latency,
            usage_estimated=estimated,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        kwargs = self.request_kwargs(request)
        kwargs.pop("logprobs", None)
        kwargs.pop("top_logprobs", None)
        try:
            chunks = await self._client().chat.completions.create(stream=True, **kwargs)
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except LLMError:
            raise
        except Exception as err:
            raise await self._translate(err) from err

    async def _translate(self, err: Exception) -> LLMError:
        """Map an ``openai`` exception to a one-line ragpipe error."""
        import openai

        where = self.base_url
        attempts = self.max_retries + 1
        if isinstance(err, openai.APITimeoutError):
            return LLMTimeout(f"{where} did not answer within {self.timeout_s:g} s ({attempts} attempts)", attempts=attempts)
        if isinstance(err, openai.APIConnectionError):
            return LLMUnavailable(f"cannot reach {where}: is the server running? ({attempts} attempts)", attempts=attempts)
        if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
            env = self.api_key_env or "the API key variable"
            return LLMAuthError(f"{where} rejected the API key: check {env}")
        if isinstance(err, openai.NotFoundError):
            served = await self._served_models()
            hint = f"; it serves: {', '.join(served)}" if served else ""
            return LLMModelNotFound(f"model '{self.model}' is not served by {where}{hint}")
        if isinstance(err, openai.RateLimitError):
            return LLMRateLimited(f"{where} kept answering 429 (rate limited) after {attempts} attempts", attempts=attempts)
        if isinstance(err, openai.BadRequestError):
            message = _server_message(err)
            if any(word in message.lower() for word in ("context", "too long", "maximum", "exceed")):
                return ContextOverflow(f"the prompt does not fit {self.model}'s context on {where}: {message[:200]}")
            return LLMError(f"{where} rejected the request: {message[:200]}")
        if isinstance(err, openai.APIStatusError):
            return LLMUnavailable(
                f"{where} answered HTTP {err.status_code} after {attempts} attempts", attempts=attempts
            )
        if isinstance(err, (ValueError, openai.APIResponseValidationError)):  # a body that is not JSON
            return LLMError(f"{where} answered with a body that is not valid JSON; {ENDPOINT_HINT}")
        return LLMError(f"{where} returned an unusable response ({type(err).__name__}); {ENDPOINT_HINT}")

    async def _served_models(self) -> list[str]:
        try:
            page = await asyncio.wait_for(self._client().with_options(max_retries=0).models.list(), timeout=3)
            return [m.id for m in page.data][:10]
        except Exception:
            return []


def _server_message(err: Any) -> str:
    """The server's own error text, without the client's ``Error code: 400 -`` prefix."""
    message = str(getattr(err, "message", err))
    return re.sub(r"^Error code: \d+ - ", "", message)


def _map_logprobs(raw: Any) -> list[TokenLogprob] | None:
    """OpenAI ``choice.logprobs.content`` -> ``TokenLogprob``s; None when the server sent none."""
    content = getattr(raw, "content", None) if raw is not None else None
    if not content:
        return None
    return [
        TokenLogprob.of(item.token, item.logprob, ((t.token, t.logprob) for t in item.top_logprobs or ()))
        for item in content
    ]
