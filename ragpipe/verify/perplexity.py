"""Perplexity signal: the baseline defence of PoisonedRAG/METEORA (flag unusually surprising text).

Perplexity = exp(mean negative log-probability of the chunk's tokens) under the local LLM; a
chunk is flagged when it exceeds min(mean + 1.5·std, 20) over the chunks being verified. It
needs a backend that scores given text (``token_logprobs``, offered by the embedded llama.cpp
backend); other backends get no perplexity signal and the trace says so. Fluent LLM-written
poison has ordinary perplexity, so expect little from this signal: it is kept as the baseline.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragpipe.verify.signals import SignalResult

PERPLEXITY = "perplexity"
CAP = 20.0
STD_FACTOR = 1.5


def scorer_of(llm: Any) -> Any | None:
    """The backend's ``token_logprobs`` callable, or None when the backend cannot score text."""
    if llm is None:
        return None
    try:
        scorer = getattr(llm, "token_logprobs", None)
    except Exception:  # a wrapper's attribute lookup must never break verification
        return None
    return scorer if callable(scorer) else None


def perplexity_of(logprobs: Sequence[float]) -> float:
    """exp(mean NLL); infinite for an empty sequence so it cannot look 'normal'."""
    if not logprobs:
        return math.inf
    return float(math.exp(-float(np.mean(logprobs))))


def threshold_of(values: Sequence[float], *, cap: float = CAP, std_factor: float = STD_FACTOR) -> float:
    """min(mean + k·std, cap) over the finite perplexities (population std, as METEORA)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return cap
    return float(min(np.mean(finite) + std_factor * np.std(finite), cap))


async def perplexity_signal(texts: Sequence[str], scorer: Any, *, cap: float = CAP) -> SignalResult:
    """Score every text with ``scorer(text) -> list[float]`` (sync or async) and flag outliers."""
    values = []
    for text in texts:
        result = scorer(text)
        if inspect.isawaitable(result):
            result = await result
        values.append(perplexity_of(list(result)))
    limit = threshold_of(values, cap=cap)
    flagged = [v > limit for v in values]
    scores = [round(v, 3) if math.isfinite(v) else -1.0 for v in values]
    details = [f"ppl {v:.1f} vs threshold {limit:.1f}" for v in values]
    return SignalResult(PERPLEXITY, flagged, scores, details)
