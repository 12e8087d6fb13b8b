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

The recall guard (on by default, ``recall_guard``) bounds the harm of a short cut: the paper's
elbow on pooled scores often keeps one chunk of thirty, which loses evidence a plain top-k keeps.
With the guard, the elbow is followed only when its knee is pronounced (``knee_prominence``),
otherwise a budgeted top-k is kept; the count stays within [``min_keep``, ``budget``] and expanded
neighbours only fill what the budget leaves. Which chunks fill the count is decided by fusing
the retriever's rank with the rationale score's rank (``rationale_weight``; 0 = the retriever's
top-k exactly, 1 = rationale scores alone), so weak rationales cannot push out the retriever's
best. The default 0 (and knee prominence 0.8) is what never lost recall to top-5 on the dev sets
(HotpotQA, MuSiQue, SciFact, FiQA) with SmolLM2-135M, Qwen2.5-0.5B or question-only rationales:
there, ranking by rationale similarity with the retriever's own embedder lost recall at every
weight tried (``eval/bench_selection.py``); a trusted knee still puts its standout chunks first. ``recall_guard=False`` is the paper's ECSE: elbow ∪ pairing, expansion unbounded.

Rationales are embedded with the context's embedder, the same model as the index. Candidate
embeddings are read from the store when it offers them (``store.embeddings(ids)``), otherwise
re-embedded from text; the trace records which, and how long it took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ragpipe.concurrency import run_blocking
from ragpipe.context import RunContext
from ragpipe.retrieve.dense import embed_question
from ragpipe.retrieve.vectors import chunk_vectors, embed_texts
from ragpipe.schema import Rationale, ScoredChunk, TraceEvent, Usage
from ragpipe.select.base import (
    Selection,
    SelectionExtras,
    Selector,
    SelectorConfig,
    SelectorRun,
    dedupe,
    input_order_scores,
    register_selector,
)
from ragpipe.retrieve.fusion import rrf
from ragpipe.select.cutoff import CutoffResult, apply_cutoff, guarded_cutoff
from ragpipe.select.expand import expand_neighbours
from ragpipe.select.rationales import generate_rationales, question_rationale

NAME = "meteora"


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class RecallGuard:
    """How many chunks to keep when recall matters (see the module docstring)."""

    budget: int = 5
    min_keep: int = 2
    knee_prominence: float = 0.8
    rationale_weight: float = 0.0


@dataclass
class EcseResult:
    """Provenance of one ECSE run over n candidates (indices refer to the candidate list)."""

    pairs: list[tuple[int, int, float]]  # (rationale index, candidate index, cosine)
    pooled: np.ndarray  # pooled-rationale cosine per candidate
    cutoff: CutoffResult
    pooled_kept: list[int]  # candidates kept by pooling + elbow (guarded: a trusted knee's), best first
    selected: list[int]  # paper: pairing ∪ pooled; guarded: the best ``cutoff.keep`` by fused score
    scores: np.ndarray  # max(pooled, best pairing cosine) per candidate
    fused: np.ndarray | None = None  # guarded only: retriever rank fused with the rank by ``scores``

    @property
    def paired(self) -> list[int]:
        return list(dict.fromkeys(c for _, c, _ in self.pairs))

    @property
    def ranking(self) -> np.ndarray:
        """What the final order follows: the fused score under the guard, else ``scores``."""
        return self.scores if self.fused is None else self.fused


def fuse_with_retriever(scores: np.ndarray, rationale_weight: float) -> np.ndarray:
    """Weighted reciprocal-rank fusion of the input (retriever) order and the order by ``scores``."""
    n = len(scores)
    by_score = sorted(range(n), key=lambda i: (-scores[i], i))
    fused = rrf({"retriever": [(str(i), 0.0) for i in range(n)], "rationales": [(str(i), 0.0) for i in by_score]},
                weights={"retriever": 1.0 - rationale_weight, "rationales": rationale_weight})
    return np.array([fused[str(i)] for i in range(n)])


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
    guard: RecallGuard | None = None,
) -> EcseResult:
    """Pairing + pooled elbow selection (ECSE steps a and b) on unit-normalised embeddings.

    Rows of ``chunk_vectors`` are in the retriever's order (used only by the ``guard``).
    """
    rationales, chunks = _unit(rationale_vectors), _unit(chunk_vectors)
    similarity = rationales @ chunks.T
    pairs = pair_rationales(similarity, distinct=distinct_pairing)
    pooled_vector = rationales.mean(axis=0)  # arithmetic mean, as METEORA; cosine below normalises it
    pooled = (chunks @ _unit(pooled_vector)[0]).astype(np.float64)
    order = [int(i) for i in np.argsort(-pooled, kind="stable")]
    scores = pooled.copy()
    for _, c, sim in pairs:
        scores[c] = max(scores[c], sim)
    sorted_pooled = [float(pooled[i]) for i in order]
    if guard is not None:
        budget = min(guard.budget, max_keep) if max_keep is not None else guard.budget
        cutoff = guarded_cutoff(sorted_pooled, cutoff_method, budget=budget, min_keep=min(guard.min_keep, budget),
                                knee_prominence_min=guard.knee_prominence, z_threshold=z_threshold,
                                threshold=threshold)
        fused = fuse_with_retriever(scores, guard.rationale_weight)
        # A trusted knee names the chunks that stand out; the rest of the count goes by fused rank.
        standouts = order[: min(cutoff.elbow_keep or 0, cutoff.keep)] if cutoff.trusted and cutoff_method != "none" else []
        by_fused = sorted(range(len(fused)), key=lambda i: (-fused[i], i))
        selected = list(dict.fromkeys([*standouts, *by_fused]))[: cutoff.keep]
        selected.sort(key=lambda i: (-fused[i], i))
        return EcseResult(pairs, pooled, cutoff, standouts, selected, scores, fused)
    cutoff = apply_cutoff(sorted_pooled, method=cutoff_method, min_keep=min_keep, max_keep=max_keep,
                          z_threshold=z_threshold, threshold=threshold)
    pooled_kept = order[: cutoff.keep]
    union = set(pooled_kept) | {c for _, c, _ in pairs}
    selected = sorted(union, key=lambda i: (-scores[i], i))
    return EcseResult(pairs, pooled, cutoff, pooled_kept, selected, scores)


async def _rationale_vectors(embedder: Any, question: str, rationales: Sequence[Rationale]) -> np.ndarray:
    """Rationale vectors; a rationale that is the question reuses the vector retrieval embedded."""
    texts = [r.text for r in rationales]
    others = [t for t in dict.fromkeys(texts) if t != question.strip()]
    vectors = dict(zip(others, await embed_texts(embedder, others))) if others else {}
    if len(others) < len(set(texts)):
        vectors[question.strip()] = await run_blocking(embed_question, embedder, question)
    return np.asarray([vectors[t] for t in texts], dtype=np.float32)


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


class MeteoraConfig(SelectorConfig):
    """METEORA's options: rationale writing, pairing, the recall guard and neighbour expansion."""

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
    # The recall guard (module docstring): never keep fewer than min_keep nor more than budget
    # chunks (expanded neighbours included); follow the elbow only at a pronounced knee.
    recall_guard: bool = True
    min_keep: int = 2
    budget: int = Field(5, ge=1)
    knee_prominence: float = Field(0.8, ge=0.0, le=1.0)
    rationale_weight: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _floor_within_budget(self) -> MeteoraConfig:
        if self.recall_guard and self.min_keep > self.budget:
            raise ValueError(f"min_keep={self.min_keep} exceeds budget={self.budget}")
        return self

    def guard(self) -> RecallGuard | None:
        if not self.recall_guard:
            return None
        return RecallGuard(self.budget, self.min_keep, self.knee_prominence, self.rationale_weight)


@register_selector(NAME)
class MeteoraSelector(Selector[MeteoraConfig]):
    """Rationale-driven evidence selection with an adaptive (elbow) cutoff and neighbour expansion."""


    Config = MeteoraConfig

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
        cfg = self.config
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
        rationale_vectors = await _rationale_vectors(ctx.embedder, question, rationales)
        candidate_vectors = await _candidate_vectors(candidates, ctx, trace)
        result = ecse(
            rationale_vectors, candidate_vectors, distinct_pairing=cfg.distinct_pairing, cutoff_method=cfg.cutoff,
            z_threshold=cfg.z_threshold, min_keep=cfg.min_keep, max_keep=cfg.max_keep, threshold=cfg.threshold,
            guard=cfg.guard(),
        )
        cut = result.cutoff
        run.note("cutoff", f"kept {cut.keep} of {len(candidates)} by pooled score: {cut.reason}",
                 **cut.model_dump(include={"elbow_index", "method", "elbow_keep", "prominence", "trusted", "budget"}))
        if result.fused is not None:
            run.note("info", f"chunks chosen by retriever rank (weight {1 - cfg.rationale_weight:.2f}) fused with "
                     f"rationale score rank (weight {cfg.rationale_weight:.2f})", rationale_weight=cfg.rationale_weight)
        rationales = _with_chunk_ids(rationales, result, candidates)
        ranked = _ranked(candidates, result)
        by_id = {c.id: c for c in ranked}
        chosen = [by_id[candidates[i].id] for i in result.selected]
        room = None if cut.budget is None else cut.budget - len(chosen)
        kept, expansion_trace = expand_neighbours(chosen, ctx.store, window=cfg.expansion_window, node=NAME,
                                                  limit=room)
        trace.extend(expansion_trace)
        kept = sorted(kept, key=lambda c: -c.score)  # stable: ties keep the selection order
        if cfg.order == "document":
            kept = sorted(kept, key=lambda c: (c.chunk.doc_id, c.chunk.position))
        kept = [c.model_copy(update={"rank": i + 1}) for i, c in enumerate(kept)]
        extras: SelectionExtras = {
            "rationales": rationales,
            "pairs": [{"rationale": r + 1, "chunk_id": candidates[c].id, "cosine": round(s, 4)}
                      for r, c, s in result.pairs],
            "pooled_scores": {candidates[i].id: round(float(s), 4) for i, s in enumerate(result.pooled)},
            "fused_scores": None if result.fused is None else
            {candidates[i].id: round(float(s), 6) for i, s in enumerate(result.fused)},
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
    """Every candidate, best first, with its ranking score recorded as the ``meteora`` stage."""
    ranking = result.ranking
    order = sorted(range(len(candidates)), key=lambda i: (-ranking[i], i))
    return [candidates[i].with_stage(NAME, float(ranking[i]), rank + 1) for rank, i in enumerate(order)]
