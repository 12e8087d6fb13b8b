"""The result type of every metric, and averaging that never turns a failure into a zero.

A judge that returns garbage, is cut off or times out gives a row with ``value=None`` and a
status saying why. Aggregates average the valid rows only and always report ``n_valid / n``
and the count of each failure status, so a metric that failed on most rows cannot pass for a
low (or high) score.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "parse_error", "truncated", "timeout", "undefined", "error"]
FAILURE_STATUSES: tuple[str, ...] = ("parse_error", "truncated", "timeout", "error")


class MetricResult(BaseModel):
    """One metric on one row: a value in [0, 1] (or None) plus why, and the raw judge output."""

    value: float | None = None
    status: Status = "ok"
    raw: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def ok(cls, value: float, *, raw: list[str] | None = None, **details: Any) -> MetricResult:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return cls.undefined("the value is not a number", raw=raw, **details)
        return cls(value=float(value), status="ok", raw=raw or [], details=details)

    @classmethod
    def undefined(cls, reason: str, *, raw: list[str] | None = None, **details: Any) -> MetricResult:
        """The metric has no meaning on this row (no statements, no gold answer, ...)."""
        return cls(value=None, status="undefined", raw=raw or [], details={"reason": reason, **details})

    @classmethod
    def failed(cls, status: Status, reason: str, *, raw: list[str] | None = None, **details: Any) -> MetricResult:
        """The metric could not be computed because the judge (or the pipeline) failed."""
        return cls(value=None, status=status, raw=raw or [], details={"reason": reason, **details})

    @property
    def valid(self) -> bool:
        return self.status == "ok" and self.value is not None


class Aggregate(BaseModel):
    """A metric over many rows: mean of the valid ones, how many were valid, and why the rest were not."""

    mean: float | None
    n_valid: int
    n: int
    ci95: float | None = None
    statuses: dict[str, int] = Field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return sum(self.statuses.get(s, 0) for s in FAILURE_STATUSES)

    def label(self, digits: int = 3) -> str:
        """``0.812 (45/50)``: the form used in tables, so the valid count is never hidden."""
        if self.mean is None:
            return f"n/a (0/{self.n})"
        return f"{self.mean:.{digits}f} ({self.n_valid}/{self.n})"


def as_result(value: MetricResult | float | int | bool | None | dict[str, Any]) -> MetricResult:
    """Accept plain numbers (and the JSON form of a result) where a ``MetricResult`` is expected."""
    if isinstance(value, MetricResult):
        return value
    if isinstance(value, dict):
        return MetricResult(**value)
    if value is None:
        return MetricResult.undefined("no value")
    number = float(value)
    if math.isnan(number):
        return MetricResult.undefined("the value is not a number")
    return MetricResult.ok(number)


def aggregate(values: Iterable[MetricResult | float | int | bool | None | dict[str, Any]]) -> Aggregate:
    """Mean over valid rows with a normal-approximation 95% interval; failures counted by status."""
    results = [as_result(v) for v in values]
    statuses = Counter(r.status for r in results)
    valid = [float(r.value) for r in results if r.valid]  # type: ignore[arg-type]
    mean = sum(valid) / len(valid) if valid else None
    ci95 = None
    if len(valid) > 1 and mean is not None:
        variance = sum((v - mean) ** 2 for v in valid) / (len(valid) - 1)
        ci95 = 1.96 * math.sqrt(variance / len(valid))
    return Aggregate(mean=mean, n_valid=len(valid), n=len(results), ci95=ci95, statuses=dict(statuses))
