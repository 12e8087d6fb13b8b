"""Fusion maths on hand-computed cases."""

from __future__ import annotations

import pytest

from ragpipe.retrieve.fusion import FusionConfig, fuse, normalise, rrf, score_fusion

DENSE = [("a", 0.9), ("b", 0.8), ("c", 0.5)]
BM25 = [("c", 12.0), ("d", 6.0), ("a", 3.0)]


def test_rrf_sums_reciprocal_ranks():
    fused = rrf({"dense": DENSE, "bm25": BM25}, k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)


def test_weighted_rrf_scales_each_list():
    fused = rrf({"dense": DENSE, "bm25": BM25}, k=1, weights={"dense": 2.0, "bm25": 0.5})
    assert fused["a"] == pytest.approx(2 / 2 + 0.5 / 4)
    assert fused["d"] == pytest.approx(0.5 / 3)


def test_minmax_normalisation_and_degenerate_lists():
    values, floor = normalise([10.0, 5.0, 0.0])
    assert values == [1.0, 0.5, 0.0] and floor == 0.0
    assert normalise([3.0, 3.0]) == ([1.0, 1.0], 0.0)
    assert normalise([]) == ([], 0.0)


def test_zscore_normalisation_floor_is_list_minimum():
    values, floor = normalise([3.0, 1.0, 2.0], "zscore")
    std = (2 / 3) ** 0.5
    assert values == pytest.approx([1 / std, -1 / std, 0.0])
    assert floor == pytest.approx(-1 / std)
    # no spread (a lone BM25 hit): it still stands above everything the list left out
    assert normalise([7.5], "zscore") == ([1.0], 0.0)


def test_default_fusion_lets_a_lone_exact_match_beat_a_flat_dense_list():
    flat_dense = [("a", 0.2), ("b", 0.2), ("c", 0.2)]
    order = [cid for cid, _ in fuse({"dense": flat_dense, "bm25": [("c", 4.2)]})]
    assert order[0] == "c"


def test_score_fusion_convex_combination_with_missing_items_at_floor():
    fused = score_fusion({"dense": DENSE, "bm25": BM25}, weights={"dense": 0.7, "bm25": 0.3})
    # dense min-max: a=1, b=0.75, c=0 ; bm25 min-max: c=1, d=1/3, a=0 ; absent -> 0
    assert fused["a"] == pytest.approx(0.7)
    assert fused["b"] == pytest.approx(0.7 * 0.75)
    assert fused["c"] == pytest.approx(0.3)
    assert fused["d"] == pytest.approx(0.3 / 3)


def test_fuse_orders_best_first_and_dense_weight_decides_close_calls():
    dense_heavy = [cid for cid, _ in fuse({"dense": DENSE, "bm25": BM25}, FusionConfig(weights={"dense": 0.7, "bm25": 0.3}))]
    bm25_heavy = [cid for cid, _ in fuse({"dense": DENSE, "bm25": BM25}, FusionConfig(weights={"dense": 0.2, "bm25": 0.8}))]
    assert dense_heavy == ["a", "b", "c", "d"]
    assert bm25_heavy[0] == "c"


def test_fuse_plain_rrf_breaks_ties_by_first_appearance():
    order = [cid for cid, _ in fuse({"dense": DENSE, "bm25": BM25}, FusionConfig(method="rrf", weights={}))]
    # a and c tie (1/61 + 1/63); a appears first (dense list); b and d tie at 1/62.
    assert order == ["a", "c", "b", "d"]


def test_fuse_single_list_keeps_its_order():
    assert [cid for cid, _ in fuse({"dense": DENSE})] == ["a", "b", "c"]


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError):
        fuse({"dense": DENSE}, FusionConfig(method="borda"))  # type: ignore[arg-type]
