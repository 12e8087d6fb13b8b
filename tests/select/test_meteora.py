"""METEORA selection maths on crafted embeddings: pairing, pooling, elbow, union, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragpipe.context import RunContext
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.schema import Chunk, ScoredChunk
from ragpipe.select.meteora import ecse, pair_rationales

# Unit directions of a 4-d space: two topics (x, z), noise on y and w.
X, Y, Z, W = np.eye(4, dtype=np.float32)


class FakeEmbedder:
    """Maps known texts to crafted vectors; counts what it embedded."""

    name, dim, max_tokens = "fake-4d", 4, 128

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.embedded: list[str] = []

    def embed(self, texts, *, batch_size=None):  # noqa: ANN001
        self.embedded.extend(texts)
        rows = [self.table.get(t, W + 0.01 * Y) for t in texts]
        rows = np.asarray(rows, dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def embed_query(self, text):  # noqa: ANN001
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


CHUNK_VECTORS = {
    "A": X,
    "B": X + 0.05 * Y,
    "C": X + 0.1 * Z,
    "D": Z,
    "E": Y,
    "F": Y + 0.1 * W,
    "G": W,
    "H": W + 0.2 * Y,
}
RATIONALE_VECTORS = {"r1 housing study report": X, "r2 housing ranking table": X + 0.01 * Y, "r3 which country ranks last": Z}


def candidates() -> list[ScoredChunk]:
    return [
        ScoredChunk(chunk=Chunk(id=k, doc_id=f"doc{k}", position=0, text=f"text {k}"), score=1 - i / 10, rank=i + 1)
        for i, k in enumerate(CHUNK_VECTORS)
    ]


def vectors(keys) -> np.ndarray:  # noqa: ANN001
    return np.stack([CHUNK_VECTORS[k] for k in keys])


def test_distinct_pairing_masks_taken_chunks_and_convergent_does_not() -> None:
    sim = np.array([[0.9, 0.8, 0.1], [0.95, 0.7, 0.2], [0.1, 0.2, 0.3]])
    assert pair_rationales(sim, distinct=True) == [(0, 0, 0.9), (1, 1, 0.7), (2, 2, 0.3)]
    assert pair_rationales(sim, distinct=False) == [(0, 0, 0.9), (1, 0, 0.95), (2, 2, 0.3)]
    # More rationales than chunks: distinct pairing stops when every chunk is taken.
    assert len(pair_rationales(np.ones((5, 2)), distinct=True)) == 2


def test_pooling_and_elbow_keep_the_topical_cluster_and_pairing_adds_the_other_facet() -> None:
    keys = list(CHUNK_VECTORS)
    result = ecse(np.stack(list(RATIONALE_VECTORS.values())), vectors(keys))
    kept = {keys[i] for i in result.pooled_kept}
    assert kept == {"A", "B", "C"}  # the clear drop after the x-cluster is the elbow
    assert result.cutoff.keep == 3 and result.cutoff.elbow_index == 2
    assert [(r, keys[c]) for r, c, _ in result.pairs] == [(0, "A"), (1, "B"), (2, "D")]
    assert {keys[i] for i in result.selected} == {"A", "B", "C", "D"}  # union: D only via pairing
    assert keys[result.selected[0]] == "A"
    # D's final score is its pairing cosine (1.0 with r3), above its pooled score.
    d = keys.index("D")
    assert result.scores[d] == pytest.approx(1.0) and result.pooled[d] < 0.5


def test_convergent_pairing_can_select_fewer_chunks() -> None:
    keys = list(CHUNK_VECTORS)
    result = ecse(np.stack([X, X, X]), vectors(keys), distinct_pairing=False)
    assert {keys[c] for _, c, _ in result.pairs} == {"A"}
    distinct = ecse(np.stack([X, X, X]), vectors(keys), distinct_pairing=True)
    assert len({c for _, c, _ in distinct.pairs}) == 3


def context(reply: str, store=None) -> tuple[RunContext, ScriptedLLM, FakeEmbedder]:  # noqa: ANN001
    table = {f"text {k}": v for k, v in CHUNK_VECTORS.items()}
    table.update(RATIONALE_VECTORS)
    embedder = FakeEmbedder(table)
    llm = ScriptedLLM([reply])
    return RunContext(llm=llm, embedder=embedder, store=store), llm, embedder


RATIONALES_JSON = json.dumps({"rationales": [
    {"label": "study", "text": "r1 housing study report", "flag_instructions": "reject unsourced claims"},
    {"label": "table", "text": "r2 housing ranking table"},
    {"label": "rank", "text": "r3 which country ranks last", "flag_instructions": "reject if it contradicts the table"},
]})


async def test_selector_returns_the_union_with_provenance() -> None:
    from ragpipe.select import get_selector

    ctx, llm, embedder = context(RATIONALES_JSON)
    selector = get_selector("meteora", anchor_question=False, recall_guard=False, min_keep=1)  # the paper's ECSE
    selection = await selector.select("Which country is worst for housing?", candidates(), ctx)
    assert [c.id for c in selection.kept] == ["A", "D", "B", "C"]  # by final score; D and A tie at 1.0
    assert [c.rank for c in selection.kept] == [1, 2, 3, 4]
    assert len(selection.ranked) == 8 and selection.ranked[-1].stage_scores["meteora"] < 0.5
    rationales = selection.extras["rationales"]
    assert [r.chunk_ids for r in rationales] == [["A"], ["B"], ["D"]]
    assert rationales[0].flag_instructions == "reject unsourced claims"
    pooled = selection.extras["stages"]["pooled"]
    assert sorted(pooled) == ["A", "B", "C"]
    scores = selection.extras["pooled_scores"]
    assert [scores[i] for i in pooled] == sorted((scores[i] for i in pooled), reverse=True)
    assert scores["C"] > scores["A"] > scores["D"] > scores["E"]  # the pooled vector leans towards x and z
    assert selection.extras["elbow_index"] == 2
    assert selection.extras["pairs"][2] == {"rationale": 3, "chunk_id": "D", "cosine": 1.0}
    assert selection.usage.calls == 1 and len(llm.requests) == 1
    assert "r1 housing study report" in embedder.embedded and "reject" not in " ".join(embedder.embedded)
    assert any(e.kind == "info" and "expansion skipped" in e.message for e in selection.trace)


async def test_garbage_rationales_fall_back_to_the_question_and_still_select() -> None:
    from ragpipe.select import get_selector

    ctx, _, _ = context("<|im_end|> ...")
    selection = await get_selector("meteora").select("r1 housing study report", candidates(), ctx)
    assert [r.text for r in selection.extras["rationales"]] == ["r1 housing study report"]
    assert any(e.kind == "fallback" for e in selection.trace)
    assert {c.id for c in selection.kept} == {"A", "B", "C"}


async def test_document_order_and_store_expansion() -> None:
    from ragpipe.select import get_selector

    class Store:
        def neighbours(self, doc_id: str, position: int, window: int) -> list[Chunk]:
            return [Chunk(id=f"{doc_id}-next", doc_id=doc_id, position=position + 1, text="next")] if doc_id == "docD" else []

    ctx, _, _ = context(RATIONALES_JSON, store=Store())
    selector = get_selector("meteora", order="document", anchor_question=False, recall_guard=False, min_keep=1)
    selection = await selector.select("q", candidates(), ctx)
    assert [c.id for c in selection.kept] == ["A", "B", "C", "D", "docD-next"]
    assert selection.extras["stages"]["expanded"] == ["docD-next"]


async def test_the_question_anchor_keeps_its_best_chunk_when_rationales_drift() -> None:
    from ragpipe.select import get_selector

    drifting = json.dumps({"rationales": [{"text": t} for t in ("r4 noise facet one", "r5 noise facet two")]})
    table_extra = {"r4 noise facet one": Y, "r5 noise facet two": Y + 0.1 * W, "r1 housing study report": X}
    for anchor, expect_a in ((True, True), (False, False)):
        ctx, _, embedder = context(drifting)
        embedder.table.update(table_extra)
        selector = get_selector("meteora", anchor_question=anchor, recall_guard=False, min_keep=1)
        selection = await selector.select("r1 housing study report", candidates(), ctx)
        assert ("A" in {c.id for c in selection.kept}) is expect_a
        labels = [r.label for r in selection.extras["rationales"]]
        assert (labels[0] == "question") is anchor and len(labels) == 2 + anchor
    assert selection.extras["rationales"][0].chunk_ids  # provenance still names each pick


async def test_question_mode_needs_no_llm_call() -> None:
    from ragpipe.select import get_selector

    ctx, llm, _ = context("unused")
    question = "r3 which country ranks last"
    selection = await get_selector("meteora", rationales="question").select(question, candidates(), ctx)
    assert llm.requests == [] and selection.usage.calls == 0
    assert "D" in [c.id for c in selection.kept]
    alone = await get_selector("meteora", rationales="question", rationale_weight=1.0).select(question, candidates(), ctx)
    assert [c.id for c in alone.kept][0] == "D"  # rationale scores alone put the question's match first
