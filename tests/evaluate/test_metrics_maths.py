"""Metric maths on hand-computed cases: aggregation, answers, poisoning, cost."""

from __future__ import annotations

import math

import pytest

from ragpipe.evaluate.answers import contains_answer, exact_match, normalize_answer, token_f1
from ragpipe.evaluate.cost import mean_cost, query_cost
from ragpipe.evaluate.metric import MetricResult, aggregate
from ragpipe.evaluate.poisoning import detection_counts, detection_metrics, micro_detection, poisoning_row
from ragpipe.evaluate.ragas import average_precision
from ragpipe.schema import Answer, Usage


def test_aggregate_averages_valid_rows_and_counts_failures_apart() -> None:
    rows = [MetricResult.ok(1.0), MetricResult.ok(0.5), MetricResult.failed("parse_error", "prose"),
            MetricResult.failed("timeout", "slow"), MetricResult.undefined("no statements"), float("nan")]
    agg = aggregate(rows)
    assert agg.mean == pytest.approx(0.75)  # not (1 + 0.5 + 0 + 0) / 4
    assert (agg.n_valid, agg.n) == (2, 6)
    assert agg.statuses == {"ok": 2, "parse_error": 1, "timeout": 1, "undefined": 2}
    assert agg.n_failed == 2
    assert agg.label() == "0.750 (2/6)"
    # Normal-approximation CI of two values 1.0 and 0.5: 1.96 * sd / sqrt(2).
    assert agg.ci95 == pytest.approx(1.96 * math.sqrt(0.125) / math.sqrt(2))


def test_aggregate_of_only_failures_has_no_mean() -> None:
    agg = aggregate([MetricResult.failed("error", "boom")] * 3)
    assert agg.mean is None and agg.n_valid == 0 and agg.label() == "n/a (0/3)"


def test_nan_is_never_an_ok_value() -> None:
    assert MetricResult.ok(float("nan")).status == "undefined"
    assert MetricResult.ok(float("nan")).value is None


@pytest.mark.parametrize(("verdicts", "expected"), [
    ([1, 0, 1], (1 + 2 / 3) / 2),
    ([0, 1, 1], (1 / 2 + 2 / 3) / 2),
    ([1, 1, 0], 1.0),
    ([0, 0, 0], 0.0),
    ([0, 0, 1], 1 / 3),
])
def test_context_precision_is_average_precision(verdicts: list[int], expected: float) -> None:
    assert average_precision(verdicts) == pytest.approx(expected)


def test_squad_normalisation_exact_match_and_token_f1() -> None:
    assert normalize_answer("The  Eiffel Tower! [2]") == "eiffel tower"
    assert exact_match("the Eiffel tower.", ["Eiffel Tower", "Tour Eiffel"]).value == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower"]).value == 0.0
    # "paris france" vs "paris": precision 1/2, recall 1 -> F1 2/3; best over golds.
    assert token_f1("Paris, France", ["Lyon", "Paris"]).value == pytest.approx(2 / 3)
    assert token_f1("Berlin", ["Paris"]).value == 0.0
    assert exact_match("x", []).status == "undefined"


def test_contains_answer_is_word_bounded() -> None:
    assert contains_answer("It was Frank Sinatra who sang it.", ["frank sinatra"])
    assert not contains_answer("In 20050 nothing happened", ["2005"])


def test_detection_metrics_on_hand_counts() -> None:
    kept = ["c1", "p1", "c2"]
    dropped = ["p2", "p3", "c3"]
    counts = detection_counts(kept, dropped, {"p1", "p2", "p3"})
    assert counts == {"tp": 2, "fp": 1, "fn": 1, "tn": 2}
    m = detection_metrics(counts)
    assert m["detection_precision"].value == pytest.approx(2 / 3)
    assert m["detection_recall"].value == pytest.approx(2 / 3)
    assert m["detection_f1"].value == pytest.approx(2 / 3)
    assert m["clean_dropped"].value == pytest.approx(1 / 3)


def test_nothing_dropped_makes_precision_undefined_not_zero() -> None:
    m = detection_metrics(detection_counts(["c1", "p1"], [], {"p1"}))
    assert m["detection_precision"].status == "undefined"
    assert m["detection_recall"].value == 0.0
    assert m["detection_f1"].status == "undefined"
    micro = micro_detection([{"tp": 0, "fp": 0, "fn": 1, "tn": 1}, {"tp": 1, "fp": 1, "fn": 0, "tn": 3}])
    assert micro["detection_precision"].value == 0.5 and micro["detection_recall"].value == 0.5


def test_attack_success_and_poison_in_evidence() -> None:
    row = poisoning_row("The answer is 2005.", ["p1"], [], ["p1"], "2005", ["2002"])
    assert row["metrics"]["attack_success"].value == 1.0
    assert row["metrics"]["poison_in_evidence"].value == 1.0
    clean = poisoning_row("It was 2002.", ["c1"], ["p1"], ["p1"], "2005", ["2002"])
    assert clean["metrics"]["attack_success"].value == 0.0
    assert clean["metrics"]["detection_recall"].value == 1.0


def test_cost_means_per_query_and_per_node() -> None:
    a = Answer(question="q", text="x", usage=Usage(calls=3, prompt_tokens=300, completion_tokens=30),
               usage_by_node={"select": Usage(calls=2, prompt_tokens=200), "generate": Usage(calls=1, prompt_tokens=100)},
               timings={"select": 2.0, "generate": 1.0})
    b = Answer(question="q", text="y", usage=Usage(calls=1, prompt_tokens=100, completion_tokens=10),
               usage_by_node={"generate": Usage(calls=1, prompt_tokens=100)}, timings={"generate": 3.0})
    mean = mean_cost([query_cost(a, 4.0), query_cost(b, 2.0, Usage(calls=5, prompt_tokens=50))])
    assert mean["calls"] == 2 and mean["prompt_tokens"] == 200 and mean["wall_s"] == 3.0
    assert mean["by_node"]["select"]["calls"] == 1.0  # 2 calls over 2 queries
    assert mean["by_node"]["generate"]["seconds"] == 2.0
    assert mean["judge"]["calls"] == 5
