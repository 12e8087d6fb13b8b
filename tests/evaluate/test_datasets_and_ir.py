"""Dataset loaders for the three formats, document folders, and IR metrics through ranx."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ragpipe.errors import ConfigError
from ragpipe.evaluate.datasets import file_name, load_dataset, write_documents
from ragpipe.evaluate.ir import doc_ranking, ir_metrics


def test_qa_dataset_has_answers_supporting_docs_and_its_contexts(qa_dir: Path) -> None:
    ds = load_dataset(qa_dir)
    assert ds.kind == "qa" and len(ds.queries) == 4 and len(ds.documents) == 8
    q = ds.queries[1]
    assert q.answers == ["colour1", "hue1"] and q.reference == "colour1"
    assert q.relevant == {"gold-1": 1} and q.doc_ids == ["gold-1", "distractor-1"]


def test_beir_dataset_keeps_graded_qrels(beir_dir: Path) -> None:
    ds = load_dataset(beir_dir)
    assert ds.kind == "beir"
    assert ds.queries[0].relevant == {"d0": 2, "d3": 1}
    assert ds.queries[1].relevant == {"d4": 0}


def test_poisoning_dataset_tags_poisoned_documents(poison_dir: Path) -> None:
    ds = load_dataset(poison_dir)
    q = ds.queries[0]
    assert q.target_answer == "Frank Sinatra" and q.answers == ["Elvis Presley"]
    assert len(q.poisoned_doc_ids) == 2 and all(ds.documents[d].poisoned for d in q.poisoned_doc_ids)
    clean = [d for d in q.doc_ids if d not in q.poisoned_doc_ids]
    assert len(clean) == 1 and ds.documents[clean[0]].title == "Song" and not ds.documents[clean[0]].poisoned


def test_subset_is_seeded_and_can_shrink_the_corpus(qa_dir: Path) -> None:
    ds = load_dataset(qa_dir)
    a = ds.subset(2, seed=1)
    assert [q.id for q in a.queries] == [q.id for q in ds.subset(2, seed=1).queries]
    assert len(a.documents) == 8
    small = ds.subset(2, seed=1, corpus="queries")
    assert set(small.documents) == {d for q in small.queries for d in q.doc_ids}


def test_write_documents_maps_files_back_and_prunes(tmp_path: Path, poison_dir: Path) -> None:
    ds = load_dataset(poison_dir)
    stems = write_documents(ds, tmp_path / "docs")
    assert sorted(stems.values()) == sorted(ds.documents)
    clean_id = next(d for d in ds.documents if d.startswith("clean"))
    assert (tmp_path / "docs" / file_name(clean_id)).read_text().startswith("Song\n\nElvis Presley")
    (tmp_path / "docs" / "stale.txt").write_text("old")
    write_documents(ds, tmp_path / "docs")
    assert not (tmp_path / "docs" / "stale.txt").exists()
    assert file_name("set:7/x") != file_name("set_7_x")  # unsafe ids cannot collide


def test_missing_or_unknown_folders_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_dataset(tmp_path / "nope")
    with pytest.raises(ConfigError):
        load_dataset(tmp_path)


def test_ir_metrics_on_hand_computed_rankings() -> None:
    qrels = {"a": {"d1": 1, "d3": 1}, "b": {"d2": 3}, "c": {"d9": 0}}
    run = {"a": doc_ranking(["d1", "d2", "d3", "d1"]), "b": doc_ranking(["d5", "d2"]), "c": doc_ranking(["d9"])}
    out = ir_metrics(qrels, run, ["ndcg@10", "recall@2", "mrr"])
    # a: relevant at ranks 1 and 3 -> DCG = 1 + 1/log2(4); IDCG = 1 + 1/log2(3).
    assert out["a"]["ndcg@10"].value == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert out["a"]["recall@2"].value == 0.5 and out["a"]["mrr"].value == 1.0
    assert out["b"]["mrr"].value == 0.5 and out["b"]["recall@2"].value == 1.0
    assert out["c"]["ndcg@10"].status == "undefined"  # no relevant document: not a zero
    # With rel_lvl=2 (TREC DL), a grade-1 document no longer counts for binary metrics.
    strict = ir_metrics({"a": {"d1": 1, "d3": 2}}, {"a": doc_ranking(["d1", "d3"])}, ["mrr"], rel_lvl=2)
    assert strict["a"]["mrr"].value == 0.5
