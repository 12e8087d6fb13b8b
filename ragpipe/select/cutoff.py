"""Adaptive cutoffs: decide how many of a scored list to keep, instead of a fixed top-k.

The default is METEORA's elbow rule: the first gap between consecutive sorted
scores whose z-score exceeds a threshold marks the elbow; if no gap stands out, the largest
second difference does. Kneedle (through ``kneed``), the largest gap, the point farthest from
the chord, and a plain score threshold are the alternatives. Every result says why it cut there.

``guarded_cutoff`` is the recall guard on top of any of them. The first gap of a sorted score
list is nearly always its largest (the top of a sample spreads out), so an elbow rule alone
often keeps one chunk of thirty and loses evidence a plain top-k would have kept. The guard
trusts an elbow only when its knee is pronounced (the gap is a large share of the whole score
range); otherwise it keeps a budgeted top-k. Either way the count stays within
[``min_keep``, ``budget``], so it never keeps fewer than the floor nor more than the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ragpipe.errors import ConfigError

CutoffMethod = Literal["zscore_gap", "kneedle", "max_gap", "chord_distance", "threshold", "none"]
_FLAT = 1e-9
METHODS: tuple[str, ...] = ("zscore_gap", "kneedle", "max_gap", "chord_distance", "threshold", "none")


ELBOW_METHODS: tuple[str, ...] = ("zscore_gap", "kneedle", "max_gap", "chord_distance")


class CutoffConfig(BaseModel):
    """Options of the no-LLM cutoff (the ``fast`` method): which rule, and the recall guard's bounds."""

    model_config = ConfigDict(extra="forbid")

    method: CutoffMethod = "zscore_gap"
    recall_guard: bool = True  # follow the elbow only at a pronounced knee, else keep ``budget``
    budget: int = Field(5, ge=1, le=1000)
    min_keep: int | None = Field(None, ge=0, le=1000)  # None: 2 with the recall guard, else 1
    knee_prominence_min: float = Field(0.8, ge=0.0, le=1.0)
    z_threshold: float = Field(1.0, gt=0.0, le=100.0)
    threshold: float | None = None  # for method = "threshold"

    @model_validator(mode="after")
    def _bounds_consistent(self) -> CutoffConfig:
        if self.min_keep is not None and self.min_keep > self.budget:
            raise ValueError(f"min_keep ({self.min_keep}) must not exceed budget ({self.budget})")
        if self.method == "threshold" and self.threshold is None:
            raise ValueError("method 'threshold' needs a threshold value")
        return self

    def keep(self, scores: Sequence[float]) -> CutoffResult:
        """How many of ``scores`` to keep under these options."""
        if self.recall_guard:
            return guarded_cutoff(scores, self.method, budget=self.budget, min_keep=_or(self.min_keep, 2),
                                  knee_prominence_min=self.knee_prominence_min, z_threshold=self.z_threshold,
                                  threshold=self.threshold)
        return apply_cutoff(scores, self.method, min_keep=_or(self.min_keep, 1), z_threshold=self.z_threshold,
                            threshold=self.threshold)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


class CutoffResult(BaseModel):
    """Keep the ``keep`` best-scored items; ``elbow_index`` is the last kept position before bounds.

    The guard's fields are set by ``guarded_cutoff`` only: ``elbow_keep`` is what the elbow alone
    would keep, ``prominence`` its gap as a share of the score range, ``trusted`` whether the
    guard followed it, ``budget`` the most it allows.
    """

    keep: int
    n: int
    elbow_index: int | None
    method: str
    reason: str
    elbow_keep: int | None = None
    prominence: float | None = None
    trusted: bool | None = None
    budget: int | None = None


def _zscore_gap(s: np.ndarray, z_threshold: float) -> tuple[int, str]:
    gaps = s[:-1] - s[1:]
    sigma = float(gaps.std())  # population std, as METEORA
    if sigma <= _FLAT * max(1.0, float(np.abs(s).max())):
        sigma = 0.0  # equal gaps up to float noise: a flat (or linear) curve has no outlying gap
    if sigma > 0:
        z = (gaps - gaps.mean()) / sigma
        above = np.flatnonzero(z > z_threshold)
        if above.size:
            i = int(above[0])
            return i, f"first gap with z > {z_threshold:g} is after position {i + 1} (z={z[i]:.2f}, gap={gaps[i]:.4f})"
    second = gaps[1:] - gaps[:-1]
    second[np.abs(second) <= _FLAT * max(1.0, float(np.abs(s).max()))] = 0.0  # float noise is not curvature
    if second.size:
        i = int(np.argmax(second))
        why = "evenly spaced scores" if sigma == 0 else f"no gap has z > {z_threshold:g}"
        return i, f"{why}: largest second difference at position {i + 1}"
    i = max(len(s) // 3 - 1, 0)
    return i, "too few gaps: kept a third of the list"


def _kneedle(s: np.ndarray) -> tuple[int | None, str]:
    from kneed import KneeLocator

    x = np.arange(len(s))
    knee = KneeLocator(x, s, curve="convex", direction="decreasing").knee
    if knee is None:
        return None, "kneedle found no knee: kept everything"
    return int(knee), f"kneedle knee at position {int(knee) + 1}"


def _chord_distance(s: np.ndarray) -> tuple[int, str]:
    x = np.arange(len(s), dtype=float)
    start, end = np.array([x[0], s[0]]), np.array([x[-1], s[-1]])
    direction = end - start
    norm = np.linalg.norm(direction)
    points = np.stack([x, s], axis=1) - start
    distance = np.abs(points[:, 0] * direction[1] - points[:, 1] * direction[0]) / (norm or 1.0)
    i = int(np.argmax(distance))
    return i, f"farthest point from the chord at position {i + 1}"


def apply_cutoff(
    scores: Sequence[float],
    method: str = "zscore_gap",
    *,
    min_keep: int = 1,
    max_keep: int | None = None,
    z_threshold: float = 1.0,
    threshold: float | None = None,
) -> CutoffResult:
    """How many of ``scores`` (any order; the best are kept) to keep, and why.

    ``min_keep``/``max_keep`` bound the result; a bound that changes the cut is named in ``reason``.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown cutoff method '{method}'; choose one of: {', '.join(METHODS)}")
    if min_keep < 0 or (max_keep is not None and max_keep < min_keep):
        raise ConfigError(f"cutoff bounds are inconsistent: min_keep={min_keep}, max_keep={max_keep}")
    s = np.sort(np.asarray(scores, dtype=float))[::-1]
    n = len(s)
    elbow: int | None
    if n == 0:
        return CutoffResult(keep=0, n=0, elbow_index=None, method=method, reason="empty list")
    if method == "none":
        elbow, reason = n - 1, "no cutoff"
    elif method == "threshold":
        if threshold is None:
            raise ConfigError("the 'threshold' cutoff needs a threshold value")
        count = int((s >= threshold).sum())
        elbow, reason = (count - 1 if count else None), f"{count} scores >= {threshold:g}"
    elif n <= 2:
        elbow, reason = n - 1, f"only {n} item(s): kept all"
    elif method == "zscore_gap":
        elbow, reason = _zscore_gap(s, z_threshold)
    elif method == "kneedle":
        elbow, reason = _kneedle(s)
        if elbow is None:
            elbow = n - 1
    elif method == "max_gap":
        gaps = s[:-1] - s[1:]
        elbow = int(np.argmax(gaps))
        reason = f"largest gap ({gaps[elbow]:.4f}) after position {elbow + 1}"
    else:  # chord_distance
        elbow, reason = _chord_distance(s)

    keep = 0 if elbow is None else elbow + 1
    upper = min(n, max_keep) if max_keep is not None else n
    lower = min(min_keep, n)
    if keep < lower:
        reason += f"; raised to min_keep={min_keep}"
        keep = lower
    elif keep > upper:
        reason += f"; lowered to max_keep={max_keep}"
        keep = upper
    return CutoffResult(keep=keep, n=n, elbow_index=elbow, method=method, reason=reason)


def knee_prominence(scores: Sequence[float], elbow_index: int | None) -> float | None:
    """The gap right after ``elbow_index`` as a share of the score range (0 = no knee, 1 = a cliff).

    ``None`` when the elbow keeps everything (no gap after it) or the scores are all equal.
    """
    s = np.sort(np.asarray(scores, dtype=float))[::-1]
    if elbow_index is None or elbow_index + 1 >= len(s):
        return None
    span = float(s[0] - s[-1])
    if span <= _FLAT * max(1.0, float(np.abs(s).max())):
        return None
    return float(s[elbow_index] - s[elbow_index + 1]) / span


def guarded_cutoff(
    scores: Sequence[float],
    method: str = "zscore_gap",
    *,
    budget: int = 5,
    min_keep: int = 2,
    knee_prominence_min: float = 0.8,
    z_threshold: float = 1.0,
    threshold: float | None = None,
) -> CutoffResult:
    """How many to keep when recall matters: the elbow if its knee is pronounced, else ``budget``.

    An explicit ``threshold`` (or ``none``) is the user's own rule and is followed as is; the
    four elbow methods must show a knee whose gap is at least ``knee_prominence_min`` of the
    score range. The result always lies in [min(``min_keep``, n), min(``budget``, n)].
    """
    if budget < 1 or min_keep < 0 or min_keep > budget:
        raise ConfigError(f"recall guard bounds are inconsistent: min_keep={min_keep}, budget={budget}")
    if not 0.0 <= knee_prominence_min <= 1.0:
        raise ConfigError(f"knee_prominence must lie in [0, 1], got {knee_prominence_min}")
    elbow = apply_cutoff(scores, method, min_keep=0, z_threshold=z_threshold, threshold=threshold)
    n = elbow.n
    upper, lower = min(budget, n), min(min_keep, n)
    if n == 0:
        return elbow.model_copy(update={"budget": budget})
    prominence = knee_prominence(scores, elbow.elbow_index) if method in ELBOW_METHODS else None
    if method not in ELBOW_METHODS:
        trusted, keep = True, elbow.keep
        why = f"{elbow.reason}; an explicit rule, followed"
    elif n <= 2:
        trusted, keep = True, elbow.keep
        why = elbow.reason
    elif prominence is not None and prominence >= knee_prominence_min:
        trusted, keep = True, elbow.keep
        why = f"{elbow.reason}; pronounced knee (gap {prominence:.0%} of the score range), trusted"
    else:
        trusted, keep = False, upper
        shown = "no gap after it" if prominence is None else f"gap {prominence:.0%} of the score range"
        why = (f"{elbow.reason}, but that knee is not pronounced ({shown} < {knee_prominence_min:.0%}): "
               f"kept the top {upper} (budget)")
    if keep > upper:
        why += f"; lowered to the budget of {budget}"
        keep = upper
    elif keep < lower:
        why += f"; raised to min_keep={min_keep}"
        keep = lower
    return CutoffResult(keep=keep, n=n, elbow_index=elbow.elbow_index, method=method, reason=why,
                        elbow_keep=elbow.keep, prominence=None if prominence is None else round(prominence, 4),
                        trusted=trusted, budget=budget)
