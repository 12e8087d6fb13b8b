"""Fusing ranked lists from several retrievers into one ranking. Pure functions, no I/O.

Each retriever's result is a ``Ranking``: chunk ids best first with their raw scores. Methods:

* ``rrf``: reciprocal-rank fusion, ``Σ w_r / (k + rank_r)``; equal weights give plain RRF.
* ``score``: convex combination of normalised scores, ``Σ w_r · norm_r(score)`` where ``norm`` is
  min-max over the list (``minmax``) or a z-score (``zscore``). A chunk a retriever did not return
  gets that retriever's floor (0 for min-max, the list's minimum z for z-scores).

Why score fusion is the default: RRF throws the score gaps away, so a weak BM25 list (many
near-ties) pulls a clear dense winner down as much as a confident one would. Normalised scores
keep "how much better" and let the dense side (semantic match, stronger on most data) carry more
weight while BM25 still breaks ties and rescues exact-term matches. The defaults are in
``FusionConfig``; ``eval/bench_retrieval.py`` reports every variant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Ranking = Sequence[tuple[str, float]]  # (chunk id, raw score), best first

FusionMethod = Literal["rrf", "score"]
Normalisation = Literal["minmax", "zscore"]


@dataclass(frozen=True)
class FusionConfig:
    """How hybrid retrieval combines dense and BM25 results.

    ``weights`` maps a retriever name to its weight (missing names weigh 1.0). The default
    (min-max score fusion, dense 0.7 : BM25 0.3) was chosen on the dev data of four corpora as
    the one setting that was never worse than the better single retriever by more than noise;
    see ``eval/results/retrieval.json``.
    """

    method: FusionMethod = "score"
    normalisation: Normalisation = "minmax"
    weights: Mapping[str, float] = field(default_factory=lambda: {"dense": 0.7, "bm25": 0.3})
    rrf_k: int = 60

    def weight(self, name: str) -> float:
        return float(self.weights.get(name, 1.0))


def rrf(rankings: Mapping[str, Ranking], *, k: int = 60, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Weighted reciprocal-rank fusion: ``score(d) = Σ_r w_r / (k + rank_r(d))`` (ranks from 1)."""
    fused: dict[str, float] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else float(weights.get(name, 1.0))
        for rank, (chunk_id, _score) in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    return fused


def normalise(scores: Sequence[float], method: Normalisation = "minmax") -> tuple[list[float], float]:
    """Normalised scores plus the floor to give an item the list did not contain.

    Min-max maps the list onto [0, 1] (a list of equal scores maps to 1: they are all the best
    that retriever found). Z-scores centre on the mean in units of the standard deviation.
    """
    if not scores:
        return [], 0.0
    if method == "minmax":
        low, high = min(scores), max(scores)
        span = high - low
        if span <= 0 or not math.isfinite(span):
            return [1.0] * len(scores), 0.0
        return [(s - low) / span for s in scores], 0.0
    if method == "zscore":
        mean = sum(scores) / len(scores)
        var = sum((s - mean) ** 2 for s in scores) / len(scores)
        std = math.sqrt(var)
        if std <= 0 or not math.isfinite(std):
            return [0.0] * len(scores), 0.0
        normed = [(s - mean) / std for s in scores]
        return normed, min(normed)
    raise ValueError(f"unknown normalisation {method!r}")


def score_fusion(
    rankings: Mapping[str, Ranking],
    *,
    weights: Mapping[str, float] | None = None,
    normalisation: Normalisation = "minmax",
) -> dict[str, float]:
    """Convex combination of per-retriever normalised scores (missing → that list's floor)."""
    normalised: dict[str, tuple[dict[str, float], float]] = {}
    for name, ranking in rankings.items():
        values, floor = normalise([score for _id, score in ranking], normalisation)
        normalised[name] = ({chunk_id: v for (chunk_id, _s), v in zip(ranking, values)}, floor)
    ids = {chunk_id for ranking in rankings.values() for chunk_id, _s in ranking}
    fused: dict[str, float] = {}
    for chunk_id in ids:
        total = 0.0
        for name, (by_id, floor) in normalised.items():
            weight = 1.0 if weights is None else float(weights.get(name, 1.0))
            total += weight * by_id.get(chunk_id, floor)
        fused[chunk_id] = total
    return fused


def fuse(rankings: Mapping[str, Ranking], config: FusionConfig | None = None) -> list[tuple[str, float]]:
    """Fused (id, score) best first. Ties keep the order of first appearance (dense before BM25)."""
    config = config or FusionConfig()
    weights = {name: config.weight(name) for name in rankings}
    if config.method == "rrf":
        fused = rrf(rankings, k=config.rrf_k, weights=weights)
    elif config.method == "score":
        fused = score_fusion(rankings, weights=weights, normalisation=config.normalisation)
    else:
        raise ValueError(f"unknown fusion method {config.method!r}")
    first_seen: dict[str, int] = {}
    for ranking in rankings.values():
        for chunk_id, _score in ranking:
            first_seen.setdefault(chunk_id, len(first_seen))
    return sorted(fused.items(), key=lambda item: (-item[1], first_seen[item[0]]))
