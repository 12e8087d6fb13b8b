"""METEORA selection: rationales pick evidence instead of a reranker scoring every chunk.

1. The LLM writes question-conditioned rationales (``rationales.py``).
2. ECSE (Evidence Chunk Selection Engine) over the candidate pool:
   a. pairing: each rationale takes its most similar chunk; by default a chunk taken by an
      earlier rationale is masked, so rationales pick distinct chunks (``distinct_pairing``);
   b. pooling: the mean rationale embedding scores every candidate, and the elbow cutoff
      (``apply_cutoff``, z-score gap by default) decides how many of them to keep;
   c. the union of both, then context expansion with store neighbours (``expand.py``).
3. A chunk's score is max(pooled score, best pairing similarity); output is ordered by that
   score (default) or by document position.

Rationales are embedded with the context's embedder, the same model as the index. Candidate
embeddings are read from the store when it offers them (``store.embeddings(ids)``), otherwise
re-embedded from text; the trace records which, and how long it took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ragpipe.context import RunContext
from ragpipe.retrieve.vectors import chunk_vectors, embed_texts
from ragpipe.schema import Rationale, ScoredChunk, TraceEvent, Usage
from ragpipe.select.base import (
    Selection,
    Selector,
    SelectorConfig,
    SelectorRun,
    dedupe,
    input_order_scores,
    register_selector,
)
from ragpipe.select.cutoff import CutoffResult, apply_cutoff
from ragpipe.select.expand import expand_neighbours
from ragpipe.select.rationales import generate_rationales, question_rationale

NAME = "meteora"


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass
class EcseResult:
    """Provenance of one ECSE run over n candidates (indices refer to the candidate list)."""

    pairs: list[tuple[int, int, float]]  # (rationale index, candidate index, cosine)
    pooled: np.ndarray  # pooled-rationale cosine per candidate
    cutoff: CutoffResult
    pooled_kept: list[int]  # candidates kept by pooling + elbow, best first
    selected: list[int]  # pairing ∪ pooled, best final score first
    scores: np.ndarray  # max(pooled, best pairing cosine) per candidate

    @property
    def paired(self) -> list[int]:
        return list(dict.fromkeys(c for _, c, _ in self.pairs))


def pair_rationales(similarity: np.ndarray, *, distinct: bool = True) -> list[tuple[int, int, float]]:
    """Each rationale (row) takes its best candidate (column), masking taken ones when ``distinct``."""
    pairs: list[tuple[int, int, float]] = []
    taken: set[int] = set()
    for r, row in enumerate(np.asarray(similarity, dtype=np.float64)):
        masked = row.copy()
        if distinct:
            if len(taken) >= len(row):
                break
            masked[list(taken)] = -np.inf
        best = int(np.argmax(masked))
        pairs.append((r, best, float(row[best])))
        taken.add(best)
    return pairs


def ecse(
    rationale_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    *,
    distinct_pairing: bool = True,
    cutoff_method: str = "zscore_gap",
    z_threshold: float = 1.0,
    min_keep: int = 1,
    max_keep: int | None = None,
    threshold: float | None = None,
) -> EcseResult:
    """Pairing + pooled elbow selection (ECSE steps a and b) on unit-normalised embeddings."""
    rationales, chunks = _unit(rationale_vectors), _unit(chunk_vectors)
    similarity = rationales @ chunks.T
    pairs = pair_rationales(similarity, distinct=distinct_pairing)
    pooled_vector = rationales.mean(axis=0)  # arithmetic mean, as METEORA; cosine below normalises it
    pooled = (chunks @ _unit(pooled_vector)[0]).astype(np.float64)
    order = [int(i) for i in np.argsort(-pooled, kind="stable")]
    cutoff = apply_cutoff(
        [float(pooled[i]) for i in order], method=cutoff_method, min_keep=min_keep, max_keep=max_keep,
        z_threshold=z_threshold, threshold=threshold,
    )
    pooled_kept = order[: cutoff.keep]
    scores = pooled.copy()
    for _, c, sim in pairs:
        scores[c] = max(scores[c], sim)
    union = set(pooled_kept) | {c for _, c, _ in pairs}
    selected = sorted(union, key=lambda i: (-scores[i], i))
    return EcseResult(pairs, pooled, cutoff, pooled_kept, selected, scores)


async def _candidate_vectors(candidates: Sequence[ScoredChunk], ctx: RunContext, trace: list[TraceEvent]) -> np.ndarray:
    found = await chunk_vectors(candidates, ctx.embedder, ctx.store)
    if found.note:
        trace.append(TraceEvent(node=NAME, kind="fallback", message=found.note))
    data: dict[str, Any] = {"seconds": round(found.seconds, 3)}
    if found.source != "stored":
        data["cost"] = "embedding"
    what = "read" if found.source == "stored" else "re-embedded"
    trace.append(TraceEvent(node=NAME, kind="info", message=f"{what} {len(candidates)} candidate chunk embeddings",
                            data=data))
    return found.vectors


@register_selector(NAME)
class MeteoraSelector(Selector):
    """Rationale-driven evidence selection with an adaptive (elbow) cutoff and neighbour expansion."""

    name = NAME

    class Config(SelectorConfig):
        cutoff: str = "zscore_gap"  # applied to the pooled-rationale scores
        num_rationales: int = 8
        rationales: Literal["llm", "question"] = "llm"  # "question": no LLM call, the question is the rationale
        prompt: str = "rationale.default"
        distinct_pairing: bool = True
        # The question joins the LLM's rationales (first in pairing, one voice in the pooled mean):
        # a weak or drifting rationale writer can then never lose the chunk closest to the question.
        anchor_question: bool = True
        expansion_window: int = 1
        order: Literal["score", "document"] = "score"
        seed: int | None = None

    async def select(self, question: str, candidates: list[ScoredChunk], ctx: RunContext) -> Selection:
        run = SelectorRun(self.name, ctx)
        unique = dedupe(candidates, run)
        if not unique:
            return Selection(ranked=[], kept=[], trace=run.trace, extras={"rationales": []})
        if not question.strip():
            run.note("fallback", "empty question: kept the input order")
            return self.finish(unique, input_order_scores(len(unique)), run)
        try:
            return await self._select(question, unique, ctx, run)
        except Exception as err:  # embedding or cutoff trouble: fall back per the fail policy, never crash
            return self._failed(unique, run, err)

    async def _select(self, question: str, candidates: list[ScoredChunk], ctx: RunContext, run: SelectorRun) -> Selection:
        cfg: MeteoraSelector.Config = self.config  # type: ignore[assignment]
        trace = run.trace
        usage = Usage()
        if cfg.rationales == "question" or ctx.llm is None:
            rationales = [question_rationale(question)]
            if cfg.rationales == "llm":
                run.note("fallback", "no LLM in the context: the question is the only rationale")
        else:
            outcome = await generate_rationales(
                question, ctx, num_rationales=cfg.num_rationales, prompt=cfg.prompt, node=NAME, seed=cfg.seed
            )
            rationales, usage = outcome.rationales, outcome.usage
            trace.extend(outcome.trace)
            if cfg.anchor_question and not outcome.fallback:
                rationales = [question_rationale(question).model_copy(update={"index": 0}), *rationales]
        if ctx.embedder is None:
            run.note("fallback", "no embedder in the context: kept the input order")
            selection = self.finish(candidates, input_order_scores(len(candidates)), run)
            return selection.model_copy(update={"usage": usage, "extras": {"rationales": rationales}})
        rationale_vectors = await embed_texts(ctx.embedder, [r.text for r in rationales])
        candidate_vectors = await _candidate_vectors(candidates, ctx, trace)
        result = ecse(
            rationale_vectors, candidate_vectors, distinct_pairing=cfg.distinct_pairing, cutoff_method=cfg.cutoff,
            z_threshold=cfg.z_threshold, min_keep=cfg.min_keep, max_keep=cfg.max_keep, threshold=cfg.threshold,
        )
        run.note("cutoff", f"kept {result.cutoff.keep} of {len(candidates)} by pooled score: {result.cutoff.reason}",
                 elbow_index=result.cutoff.elbow_index, method=result.cutoff.method)
        rationales = _with_chunk_ids(rationales, result, candidates)
        ranked = _ranked(candidates, result)
        by_id = {c.id: c for c in ranked}
        chosen = [by_id[candidates[i].id] for i in result.selected]
        kept, expansion_trace = expand_neighbours(chosen, ctx.store, window=cfg.expansion_window, node=NAME)
        trace.extend(expansion_trace)
        kept = sorted(kept, key=lambda c: -c.score)  # stable: ties keep the selection order
        if cfg.order == "document":
            kept = sorted(kept, key=lambda c: (c.chunk.doc_id, c.chunk.position))
        kept = [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(kept)]
        extras: dict[str, Any] = {
            "rationales": rationales,
            "pairs": [{"rationale": r + 1, "chunk_id": candidates[c].id, "cosine": round(s, 4)}
                      for r, c, s in result.pairs],
            "pooled_scores": {candidates[i].id: round(float(s), 4) for i, s in enumerate(result.pooled)},
            "elbow_index": result.cutoff.elbow_index,
            "stages": {
                "pairing": [candidates[i].id for i in result.paired],
                "pooled": [candidates[i].id for i in result.pooled_kept],
                "expanded": [c.id for c in kept if c.chunk.metadata.get("expanded_from")],
            },
        }
        return Selection(ranked=ranked, kept=kept, cutoff=result.cutoff, trace=trace, usage=usage, extras=extras)


def _with_chunk_ids(rationales: list[Rationale], result: EcseResult, candidates: Sequence[ScoredChunk]) -> list[Rationale]:
    picked: dict[int, list[str]] = {}
    for r, c, _ in result.pairs:
        picked.setdefault(r, []).append(candidates[c].id)
    return [r.model_copy(update={"chunk_ids": picked.get(i, [])}) for i, r in enumerate(rationales)]


def _ranked(candidates: Sequence[ScoredChunk], result: EcseResult) -> list[ScoredChunk]:
    """Every candidate, best METEORA score first, with the score recorded as the ``meteora`` stage."""
    order = sorted(range(len(candidates)), key=lambda i: (-result.scores[i], i))
    return [candidates[i].with_stage(NAME, float(result.scores[i]), rank + 1) for rank, i in enumerate(order)]
