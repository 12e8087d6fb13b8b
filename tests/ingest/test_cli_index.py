"""``ragpipe index``: summary with reasons, JSON output, dry run, incremental re-run."""

from __future__ import annotations

import json

import pytest

from ragpipe.cli import main
from ragpipe.ingest.testing import HashingEmbedder
from tests.ingest.fixtures import write_corpus


@pytest.fixture(autouse=True)
def fake_model(monkeypatch):
    fake = HashingEmbedder()
    monkeypatch.setattr("ragpipe.ingest.indexer.get_index_embedder", lambda settings: fake)
    monkeypatch.setattr("ragpipe.ingest.indexer.embedder_name", lambda settings: fake.name)
    return fake


def test_index_prints_a_summary_with_skip_reasons(tmp_path, capsys):
    docs = write_corpus(tmp_path / "docs", n_files=3)
    (docs / "bad.json").write_text("{nope")
    assert main(["index", str(docs)]) == 0
    err = capsys.readouterr().err
    assert "added 3" in err and "skipped 1" in err
    assert "bad.json: invalid JSON" in err
    assert "embed" in err and "chunks" in err  # the progress bars were drawn


def test_index_json_dry_run_and_rerun(tmp_path, capsys, fake_model):
    docs = write_corpus(tmp_path / "docs", n_files=2)
    assert main(["index", str(docs), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] and sorted(plan["added"]) == ["doc00.txt", "doc01.txt"]
    assert not (docs / ".ragpipe").exists()

    index_dir = tmp_path / "idx"
    assert main(["index", str(docs), "--index", str(index_dir), "--exclude", "doc01*", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["added"] == ["doc00.txt"] and first["chunks_added"] > 0 and (index_dir / "chroma").is_dir()
    fake_model.calls.clear()
    assert main(["index", str(docs), "--index", str(index_dir), "--exclude", "doc01*", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["unchanged"] == 1 and again["embedded"] == 0 and fake_model.calls == []


def test_missing_folder_is_one_line_error(tmp_path, capsys):
    assert main(["index", str(tmp_path / "nope")]) != 0
    assert "is not a folder" in capsys.readouterr().err
