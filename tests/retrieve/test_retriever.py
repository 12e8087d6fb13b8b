"""The retriever on a tiny corpus with known answers: modes, fusion, stage ranks, filters."""

from __future__ import annotations

import threading

import pytest

from ragpipe.config import RetrievalSettings
from ragpipe.errors import ConfigError
from ragpipe.retrieve import FusionConfig, Retriever

from .conftest import make_chunks


@pytest.fixture
def retriever(store, embedder) -> Retriever:
    return Retriever(store, embedder, RetrievalSettings(top_k=5))


def texts(results) -> list[str]:
    return [r.chunk.text for r in results]


async def test_exact_rare_term_found_through_bm25(retriever):
    results = await retriever.aretrieve("QZ7", k=3)
    top = results[0]
    assert "QZ7" in top.chunk.text
    assert top.stage_ranks["bm25"] == 1 and top.rank == 1
    assert top.stage_ranks["fused"] == 1 and "rrf" in top.stage_ranks


async def test_synonym_found_through_dense_only(retriever):
    results = await retriever.aretrieve("medic", k=3)
    top = results[0]
    assert top.chunk.source == "notes/health.md"
    assert "bm25" not in top.stage_scores  # BM25 sees no shared term
    assert top.stage_ranks["dense"] == 1


async def test_hybrid_ranks_the_chunk_both_retrievers_like_first(retriever):
    # dense: "physician"/"doctor" fold to one concept, so both health chunks match;
    # BM25: only the night-shift chunk shares "night" and "shifts".
    results = await retriever.aretrieve("physician for night shifts", k=4)
    assert results[0].chunk.text == "Hospitals hire a doctor for night shifts."
    assert results[0].stage_ranks == {"dense": 1, "bm25": 1, "rrf": 1, "fused": 1}
    assert results[1].chunk.text == "A physician examines patients every morning."


async def test_stage_scores_match_the_single_mode_runs(retriever):
    question = "car battery weather doctor"
    dense = await retriever.aretrieve(question, k=8, mode="dense")
    bm25 = await retriever.aretrieve(question, k=8, mode="bm25")
    hybrid = await retriever.aretrieve(question, k=8)
    dense_ranks = {r.id: r.rank for r in dense}
    bm25_scores = {r.id: r.score for r in bm25}
    for r in hybrid:
        assert r.stage_ranks.get("dense") == dense_ranks.get(r.id)
        assert r.stage_scores.get("bm25") == bm25_scores.get(r.id)
    assert [r.rank for r in hybrid] == list(range(1, len(hybrid) + 1))
    assert [r.score for r in hybrid] == sorted((r.score for r in hybrid), reverse=True)
    assert all(set(r.stage_scores) == {"dense"} for r in dense)


async def test_fusion_weights_change_the_order(store, embedder):
    question = "vehicle range"  # dense: both car chunks (vehicle -> car); BM25: "range" only
    dense_led = Retriever(store, embedder, fusion=FusionConfig(weights={"dense": 0.9, "bm25": 0.1}))
    bm25_led = Retriever(store, embedder, fusion=FusionConfig(weights={"dense": 0.1, "bm25": 0.9}))
    a = await dense_led.aretrieve(question, k=2)
    b = await bm25_led.aretrieve(question, k=2)
    assert b[0].chunk.text == "Battery range of a car depends on weather."
    assert a[0].stage_ranks["dense"] == 1


async def test_filters_apply_to_dense_and_bm25(retriever):
    for where in (["file_type=pdf"], ["source~=papers/*"], {"year": {"$gte": 2019}}):
        results = await retriever.aretrieve("doctor car QZ7 Rezept", k=8, filters=where)
        assert results and {r.chunk.source for r in results} <= {"papers/zyx.pdf", "papers/kochen.pdf"}
    german = await retriever.aretrieve("Rezept Mehl doctor", k=8, filters="lang=de || source~=*.xyz")
    assert {r.chunk.source for r in german} == {"papers/kochen.pdf"}


async def test_dense_and_bm25_run_concurrently(retriever, monkeypatch):
    keyword_started = threading.Event()
    original_keyword, original_dense = Retriever._keyword, Retriever._dense

    def keyword(self, *args):
        keyword_started.set()
        return original_keyword(self, *args)

    def dense(self, *args):
        # Sequential execution would make this wait time out.
        assert keyword_started.wait(timeout=10), "BM25 did not start while dense was running"
        return original_dense(self, *args)

    monkeypatch.setattr(Retriever, "_keyword", keyword)
    monkeypatch.setattr(Retriever, "_dense", dense)
    assert await retriever.aretrieve("doctor", k=2)


async def test_sync_retrieve_works_inside_a_running_loop(retriever):
    assert texts(retriever.retrieve("QZ7", k=1)) == ["The ZX-81 transceiver uses protocol QZ7 for telemetry."]


def test_sync_retrieve_and_defaults(retriever):
    assert len(retriever.retrieve("car doctor")) <= 5  # settings.top_k
    assert retriever.retrieve("   ") == [] and retriever.retrieve("car", k=0) == []
    with pytest.raises(ConfigError):
        retriever.retrieve("car", mode="sparse")  # type: ignore[arg-type]


async def test_bm25_follows_store_changes(retriever, store, embedder):
    assert await retriever.aretrieve("quokka", k=1, mode="bm25") == []
    new = make_chunks([("notes/zoo.md", ["A quokka smiles."], {})])
    store.add(new, embedder.embed([c.text for c in new]))
    assert (await retriever.aretrieve("quokka", k=1, mode="bm25"))[0].id == new[0].id


def test_neighbours_delegate_to_the_store(retriever, store):
    second = next(c for c in store.iter_chunks() if c.text.startswith("Battery"))
    around = retriever.neighbours(second, window=1)
    assert [c.position for c in around] == [0, 1]
    assert {c.doc_id for c in around} == {second.doc_id}


async def test_broken_bm25_degrades_hybrid_to_dense(retriever, monkeypatch, caplog):
    def broken(self, *args):
        raise OSError("bm25 files unreadable")

    monkeypatch.setattr(Retriever, "_keyword", broken)
    results = await retriever.aretrieve("medic", k=2)
    assert results and all("bm25" not in r.stage_scores for r in results)
    assert "BM25 search failed" in caplog.text
    with pytest.raises(OSError):
        await retriever.aretrieve("medic", k=2, mode="bm25")


def test_fusion_settings_are_picked_up_when_present():
    from types import SimpleNamespace

    from ragpipe.retrieve.retriever import fusion_from_settings

    default = fusion_from_settings(RetrievalSettings())
    assert default == FusionConfig(rrf_k=RetrievalSettings().rrf_k)
    custom = fusion_from_settings(
        SimpleNamespace(fusion="rrf", normalisation=None, dense_weight=0.5, bm25_weight=0.5, rrf_k=10)  # type: ignore[arg-type]
    )
    assert (custom.method, custom.rrf_k, dict(custom.weights)) == ("rrf", 10, {"dense": 0.5, "bm25": 0.5})
