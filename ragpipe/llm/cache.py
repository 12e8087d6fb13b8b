"""A disk cache of LLM responses, for repeatable and cheap evaluation runs.

Keyed by backend + model + the full request (messages and every parameter). Only deterministic
calls (temperature 0) are cached: a sampled answer is a draw, and replaying it would hide the
variance a user asked for. On for ``ragpipe eval``, off by default for ``ragpipe ask``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ragpipe.llm.base import LLM, ChatRequest, Completion
from ragpipe.llm.wrappers import Wrapper


def cache_key(backend: str, model: str, request: ChatRequest) -> str:
    # An unset ``abandon_at`` stays out of the key, so the answers stored before it existed still hit.
    unset = {"abandon_at"} if request.abandon_at is None else set()
    payload = {"backend": backend, "model": model, "request": request.model_dump(mode="json", exclude=unset)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


class Cached(Wrapper):
    """Answers repeated deterministic requests from disk; counts hits and misses."""

    def __init__(self, inner: LLM, path: str | Path) -> None:
        super().__init__(inner)
        import diskcache

        self.path = Path(path).expanduser()
        self._cache = diskcache.Cache(str(self.path))
        self.hits = 0
        self.misses = 0

    async def complete(self, request: ChatRequest) -> Completion:
        if request.temperature > 0:
            return await self.inner.complete(request)  # type: ignore[attr-defined]
        key = cache_key(self.backend, self.model, request)
        stored = self._cache.get(key)
        if stored is not None:
            self.hits += 1
            completion = Completion.model_validate_json(stored)
            usage = completion.usage.model_copy(update={"llm_seconds": 0.0, "cached_calls": 1})
            return completion.model_copy(update={"cached": True, "latency_s": 0.0, "usage": usage})
        self.misses += 1
        completion = await self.inner.complete(request)  # type: ignore[attr-defined]
        self._cache.set(key, completion.model_dump_json())
        return completion

    def close(self) -> None:
        self._cache.close()


__all__ = ["Cached", "cache_key"]
