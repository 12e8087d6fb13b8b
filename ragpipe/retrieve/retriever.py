"""The retriever: dense and BM25 candidates, fused, filtered, as ``ScoredChunk``s.

Every returned chunk carries each retriever's score and 1-based rank in ``stage_scores`` /
``stage_ranks`` (``"dense"``, ``"bm25"``; in hybrid mode also ``"rrf"`` — plain reciprocal-rank
fusion, kept for comparison — and ``"fused"``, the final order). ``score``/``rank`` are final.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Literal

from ragpipe.concurrency import run_blocking
from ragpipe.config import RetrievalSettings
from ragpipe.errors import ConfigError
from ragpipe.retrieve.revision_cache import RevisionCache
from ragpipe.llm.base import run_sync
from ragpipe.retrieve.bm25 import BM25Index
from ragpipe.retrieve.dense import as_ranking, dense_search, embed_question, stored_keys
from ragpipe.retrieve.filters import FilterSpec, is_fully_pushed_down, parse_filter, to_chroma_where
from ragpipe.retrieve.fusion import FusionConfig, fuse, rrf
from ragpipe.schema import Chunk, ScoredChunk

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
log = logging.getLogger(__name__)

# Each retriever contributes at least this many candidates to fusion: normalised scores and
# reciprocal ranks are only comparable when both lists reach past the final cut.
MIN_CANDIDATES = 100
# Chunks kept in memory between queries (about 2 KB each); the cache empties past this.
CHUNK_CACHE_SIZE = 20_000


class Retriever:
    """Hybrid retrieval over one index (a ``ChunkStore`` and the ``Embedder`` that filled it)."""

    def __init__(
        self,
        store: Any,
        embedder: Any,
        settings: RetrievalSettings | None = None,
        *,
        fusion: FusionConfig | None = None,
        candidates: int | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings or RetrievalSettings()
        self.fusion = fusion or fusion_from_settings(self.settings)
        self.candidates = candidates or self.settings.candidates
        self._bm25: BM25Index | None = None
        self._bm25_lock = threading.Lock()
        self._chunk_cache: RevisionCache[Chunk] = RevisionCache(CHUNK_CACHE_SIZE)

    # ------------------------------------------------------------------ public API

    async def aretrieve(
        self, question: str, k: int | None = None, filters: FilterSpec = None, mode: Mode | None = None
    ) -> list[ScoredChunk]:
        """The ``k`` best chunks for ``question`` (``settings.top_k`` by default) that pass ``filters``."""
        k = self.settings.top_k if k is None else int(k)
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise ConfigError(f"unknown retrieval mode '{mode}'; use one of {', '.join(MODES)}")
        flt = parse_filter(filters)
        if k <= 0 or not question.strip():
            return []
        depth = k if mode != "hybrid" else max(k, self.candidates)
        if mode == "hybrid" and self._can_fuse_by_id(flt):
            return await self._hybrid_by_id(question, k, depth, flt)
        dense_hits: list[tuple[Chunk, float]] = []
        bm25_hits: list[tuple[str, float]] = []
        if mode == "hybrid":
            dense_hits, bm25_hits = await asyncio.gather(
                run_blocking(self._dense, question, depth, flt),
                run_blocking(self._keyword_or_nothing, question, depth, flt),
            )
        elif mode == "dense":
            dense_hits = await run_blocking(self._dense, question, depth, flt)
        else:
            bm25_hits = await run_blocking(self._keyword, question, depth, flt)
        chunks = {chunk.id: chunk for chunk, _score in dense_hits}
        missing = [cid for cid, _score in bm25_hits if cid not in chunks]
        if missing:
            chunks.update({chunk.id: chunk for chunk in await run_blocking(self.chunks, missing)})
        rankings = {"dense": as_ranking(dense_hits), "bm25": [(c, s) for c, s in bm25_hits if c in chunks]}
        return self._assemble(rankings, chunks, k, mode)

    def retrieve(
        self, question: str, k: int | None = None, filters: FilterSpec = None, mode: Mode | None = None
    ) -> list[ScoredChunk]:
        """Blocking ``aretrieve``; safe to call from inside a running event loop too."""
        return run_sync(lambda: self.aretrieve(question, k=k, filters=filters, mode=mode))

    def neighbours(self, chunk: Chunk, window: int = 1) -> list[Chunk]:
        """The chunk with up to ``window`` chunks either side of it in its document, in order."""
        return list(self.store.neighbours(chunk.doc_id, chunk.position, window))

    def chunks(self, ids: list[str]) -> list[Chunk]:
        """``store.get(ids)``, served from memory for chunks read before at the same store revision.

        Reading texts and metadata from the store costs milliseconds per query; a store without a
        ``revision`` is read every time, since nothing would tell when its chunks change.
        """
        revision = getattr(self.store, "revision", None)
        if revision is None:
            return list(self.store.get(ids))
        found = self._chunk_cache.get_many(ids, revision, lambda missing: {c.id: c for c in self.store.get(missing)})
        return [found[cid] for cid in ids if cid in found]

    @property
    def bm25(self) -> BM25Index:
        """The BM25 index, loaded on first use and re-synced whenever the store has changed."""
        with self._bm25_lock:
            if self._bm25 is None or self._bm25.revision != self.store.revision:
                self._bm25 = BM25Index.open(self.store)
            return self._bm25

    # ------------------------------------------------------------------ internals

    def _can_fuse_by_id(self, flt: Any) -> bool:
        """Fusion needs only ids and scores when the store answers id queries and applies the whole filter."""
        return hasattr(self.store, "query_ids") and is_fully_pushed_down(flt, stored_keys(self.store))

    async def _hybrid_by_id(self, question: str, k: int, depth: int, flt: Any) -> list[ScoredChunk]:
        """Fuse ``depth`` ids per retriever, then read the texts of the ``k`` winners only.

        Reading 100 chunks' texts and metadata costs several times the vector search itself. Ids
        that the store no longer has (a BM25 sidecar behind the store) are skipped for the next ones.
        """
        where = to_chroma_where(flt, stored_keys(self.store))
        dense, keyword = await asyncio.gather(  # BM25 needs no vector: it runs while the question is embedded
            run_blocking(self._dense_ids, question, depth, where),
            run_blocking(self._keyword_or_nothing, question, depth, flt),
        )
        stages, final = self._fuse({"dense": dense, "bm25": keyword}, "hybrid")
        chunks: dict[str, Chunk] = {}
        start = 0
        while len(chunks) < k and start < len(final):
            wanted = [cid for cid, _score in final[start : start + k - len(chunks)]]
            start += len(wanted)
            chunks.update({c.id: c for c in await run_blocking(self.chunks, wanted)})
        return self._build(final, stages, chunks, k)

    def _dense_ids(self, question: str, k: int, where: dict[str, Any] | None) -> list[tuple[str, float]]:
        return self.store.query_ids(embed_question(self.embedder, question), k, where)

    def _dense(self, question: str, k: int, flt: Any) -> list[tuple[Chunk, float]]:
        return dense_search(self.store, embed_question(self.embedder, question), k, flt)

    def _keyword(self, question: str, k: int, flt: Any) -> list[tuple[str, float]]:
        return self.bm25.search(question, k, flt)

    def _keyword_or_nothing(self, question: str, k: int, flt: Any) -> list[tuple[str, float]]:
        """BM25 in hybrid mode: a broken keyword index degrades to dense-only, it never fails a query."""
        try:
            return self._keyword(question, k, flt)
        except Exception as err:  # noqa: BLE001 - bm25s/IO errors differ; the dense side still answers
            log.warning("BM25 search failed (%s: %s); using dense results only", type(err).__name__, err)
            return []

    def _assemble(
        self, rankings: dict[str, list[tuple[str, float]]], chunks: dict[str, Chunk], k: int, mode: str
    ) -> list[ScoredChunk]:
        stages, final = self._fuse(rankings, mode)
        return self._build(final, stages, chunks, k)

    def _fuse(
        self, rankings: dict[str, list[tuple[str, float]]], mode: str
    ) -> tuple[dict[str, dict[str, tuple[float, int]]], list[tuple[str, float]]]:
        """Each stage's (score, rank) by chunk id, and the final order."""
        stages: dict[str, dict[str, tuple[float, int]]] = {
            name: {cid: (score, rank) for rank, (cid, score) in enumerate(ranking, start=1)}
            for name, ranking in rankings.items()
            if ranking
        }
        if mode != "hybrid":
            return stages, rankings[mode]
        present = {name: rankings[name] for name in ("dense", "bm25") if rankings[name]}
        if not present:
            return stages, []
        plain = rrf(present, k=self.fusion.rrf_k)
        plain_order = sorted(plain, key=lambda cid: -plain[cid])
        stages["rrf"] = {cid: (plain[cid], rank) for rank, cid in enumerate(plain_order, start=1)}
        final = fuse(present, self.fusion)
        stages["fused"] = {cid: (score, rank) for rank, (cid, score) in enumerate(final, start=1)}
        return stages, final

    @staticmethod
    def _build(
        final: list[tuple[str, float]], stages: dict[str, dict[str, tuple[float, int]]], chunks: dict[str, Chunk], k: int
    ) -> list[ScoredChunk]:
        """The first ``k`` of ``final`` that have a chunk, with every stage's score and rank."""
        results: list[ScoredChunk] = []
        for cid, score in final:
            if len(results) == k:
                break
            if cid not in chunks:  # fused by id, but gone from the store
                continue
            scored = ScoredChunk(chunk=chunks[cid])
            for stage, by_id in stages.items():
                if cid in by_id:
                    scored.stage_scores[stage], scored.stage_ranks[stage] = by_id[cid]
            scored.score, scored.rank = float(score), len(results) + 1
            results.append(scored)
        return results


def fusion_from_settings(settings: RetrievalSettings) -> FusionConfig:
    """How hybrid mode fuses, from the ``retrieval`` settings."""
    return FusionConfig(
        method=settings.fusion,
        normalisation=settings.normalisation,
        weights={"dense": settings.dense_weight, "bm25": settings.bm25_weight},
        rrf_k=settings.rrf_k,
    )
