"""Adaptive cutoff on crafted score curves: where each method cuts, bounds, and the reasons."""

from __future__ import annotations

import pytest

from ragpipe.errors import ConfigError
from ragpipe.select.cutoff import apply_cutoff

CLEAR_KNEE = [0.95, 0.93, 0.91, 0.90, 0.40, 0.38, 0.37, 0.35, 0.34, 0.33]


def test_zscore_gap_cuts_at_the_clear_knee():
    result = apply_cutoff(CLEAR_KNEE)
    assert result.keep == 4 and result.elbow_index == 3
    assert "z >" in result.reason and "position 4" in result.reason


def test_input_order_does_not_matter():
    shuffled = [CLEAR_KNEE[i] for i in (5, 0, 9, 3, 1, 7, 2, 4, 8, 6)]
    assert apply_cutoff(shuffled).keep == 4


def test_single_step_curve_keeps_the_upper_plateau():
    result = apply_cutoff([5.0] * 3 + [1.0] * 7)
    assert result.keep == 3


def test_flat_curve_falls_back_to_second_differences_and_says_so():
    result = apply_cutoff([0.5] * 8)
    assert 1 <= result.keep <= 8
    assert "second difference" in result.reason


def test_linear_curve_has_no_outlying_gap():
    result = apply_cutoff([10.0 - i for i in range(10)])
    assert "evenly spaced" in result.reason


@pytest.mark.parametrize("scores", [[0.9], [0.9, 0.1]])
def test_two_or_fewer_items_are_all_kept(scores):
    for method in ("zscore_gap", "kneedle", "max_gap", "chord_distance"):
        result = apply_cutoff(scores, method)
        assert result.keep == len(scores), method


def test_empty_list():
    assert apply_cutoff([]).keep == 0


def test_first_outlying_gap_wins_over_a_later_larger_one():
    scores = [1.0, 0.98, 0.5, 0.48, 0.46, 0.0, -0.02]
    result = apply_cutoff(scores, z_threshold=0.5)
    assert result.keep == 2  # the 0.48 gap is an outlier and comes before the 0.46 one


def test_max_gap_and_chord_distance_find_the_knee():
    assert apply_cutoff(CLEAR_KNEE, "max_gap").keep == 4
    assert apply_cutoff(CLEAR_KNEE, "chord_distance").keep in (4, 5)


def test_kneedle_on_a_convex_decreasing_curve():
    scores = [1.0 / (i + 1) ** 2 for i in range(12)]
    result = apply_cutoff(scores, "kneedle")
    assert 1 <= result.keep <= 4
    assert "kneedle" in result.reason


def test_threshold_keeps_scores_above_it():
    result = apply_cutoff(CLEAR_KNEE, "threshold", threshold=0.5)
    assert result.keep == 4 and "0.5" in result.reason
    with pytest.raises(ConfigError):
        apply_cutoff(CLEAR_KNEE, "threshold")


def test_bounds_change_the_cut_and_are_named():
    low = apply_cutoff(CLEAR_KNEE, min_keep=6)
    assert low.keep == 6 and "min_keep=6" in low.reason
    high = apply_cutoff(CLEAR_KNEE, max_keep=2)
    assert high.keep == 2 and "max_keep=2" in high.reason
    assert apply_cutoff([0.4], min_keep=3).keep == 1  # never more than the list


def test_bad_configuration_is_a_config_error():
    with pytest.raises(ConfigError):
        apply_cutoff(CLEAR_KNEE, "elbowish")
    with pytest.raises(ConfigError):
        apply_cutoff(CLEAR_KNEE, min_keep=5, max_keep=2)
