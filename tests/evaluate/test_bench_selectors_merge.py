"""bench_selectors --merge: rows and elbow kept counts of earlier runs survive a later run."""

from __future__ import annotations

import pytest

from tests.evaluate.eval_scripts import load_eval_script


@pytest.fixture(scope="module")
def bench():
    return load_eval_script("bench_selectors")


def run_doc(model: str, dataset: str, kept: dict[str, list[int]], config: dict) -> dict:
    rows = [{"dataset": dataset, "backend": "embedded", "method": m, "model": model, "ndcg@10": 0.5}
            for m in kept if m != "input order"]
    return {"config": config, "rows": rows, "elbow_kept_runs": {model: {dataset: kept}}}


def test_merge_keeps_the_elbow_summary_of_every_model_dataset_and_method(bench):
    first = bench.with_elbow_summaries(run_doc("qwen", "dl19", {"input order": [1, 1], "listwise_first": [2, 4]},
                                               {"model": "qwen.gguf"}))
    second = bench.merged(first, run_doc("smollm2", "dl19", {"input order": [1, 1], "listwise_first": [6, 8]},
                                         {"model": None}))
    third = bench.merged(second, run_doc("smollm2", "dl20", {"groupwise": [3]}, {"model": None, "datasets": "dl20"}))
    runs = third["elbow_kept_summary_runs"]
    assert runs["qwen"]["dl19"]["listwise_first"] == {"min": 2, "median": 3.0, "max": 4}
    assert runs["smollm2"]["dl19"]["listwise_first"] == {"min": 6, "median": 7.0, "max": 8}
    assert runs["smollm2"]["dl20"]["groupwise"] == {"min": 3, "median": 3, "max": 3}
    assert third["elbow_kept"]["listwise_first"] == [2, 4, 6, 8]  # pooled over both models
    assert third["elbow_kept_summary"]["listwise_first"]["max"] == 8
    assert len(third["runs"]) == 3 and len(third["rows"]) == 3


def test_a_rerun_replaces_only_its_own_counts(bench):
    first = bench.with_elbow_summaries(run_doc("qwen", "dl19", {"listwise_first": [2, 4], "groupwise": [5]}, {}))
    again = bench.merged(first, run_doc("qwen", "dl19", {"listwise_first": [9]}, {}))
    assert again["elbow_kept_runs"]["qwen"]["dl19"] == {"listwise_first": [9], "groupwise": [5]}


def test_counts_of_a_file_written_before_runs_were_recorded_stay_pooled_until_remeasured(bench):
    legacy = {"config": {}, "rows": [], "elbow_kept": {"pointwise_scale": [1, 2], "listwise_first": [7]}}
    out = bench.merged(legacy, run_doc("qwen", "dl19", {"listwise_first": [3]}, {"model": "q"}))
    assert out["elbow_kept"] == {"listwise_first": [3], "pointwise_scale": [1, 2]}
    later = bench.merged(out, run_doc("qwen", "dl20", {"groupwise": [4]}, {"model": "q", "datasets": "dl20"}))
    assert later["elbow_kept"]["pointwise_scale"] == [1, 2] and later["elbow_kept"]["listwise_first"] == [3]
