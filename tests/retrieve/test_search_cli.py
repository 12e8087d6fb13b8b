"""``ragpipe search``: table and JSON output, filters, modes, and the one-line missing-index error."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ragpipe.cli import main


@pytest.fixture
def fake_index(monkeypatch, store, embedder):
    import ragpipe.cli.search as search_cli

    opened: list = []

    def open_existing_index(docs, settings):
        opened.append((docs, settings))
        return SimpleNamespace(store=store, embedder=embedder, dir=store.index_dir)

    monkeypatch.setattr(search_cli, "open_existing_index", open_existing_index)
    return opened


def test_json_output_has_ranks_sources_and_stage_ranks(fake_index, tmp_path, capsys):
    assert main(["search", "QZ7 telemetry", "--docs", str(tmp_path), "--k", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "hybrid" and doc["k"] == 2 and len(doc["results"]) == 2
    top = doc["results"][0]
    assert top["source"] == "papers/zyx.pdf" and top["position"] == 0 and top["rank"] == 1
    assert top["stage_ranks"]["bm25"] == 1 and "dense" in top["stage_ranks"]


def test_where_and_mode_flags(fake_index, tmp_path, capsys):
    args = ["search", "doctor car Rezept", "--docs", str(tmp_path), "--mode", "bm25", "--json"]
    assert main([*args, "--where", "source~=papers/*", "--where", "lang=de"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results and {r["source"] for r in results} == {"papers/kochen.pdf"}
    assert all(set(r["stage_ranks"]) == {"bm25"} for r in results)


def test_table_output(fake_index, tmp_path, capsys):
    assert main(["search", "physician night shifts", "--docs", str(tmp_path), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "notes/health.md#1" in out and "dense" in out and "bm25" in out


def test_bad_filter_and_mode_are_one_line_errors(fake_index, tmp_path, capsys):
    assert main(["search", "x", "--docs", str(tmp_path), "--where", "nonsense"]) == 2
    assert main(["search", "x", "--docs", str(tmp_path), "--mode", "sparse"]) == 2
    err = capsys.readouterr().err
    assert "cannot read filter" in err and "unknown --mode" in err
    assert fake_index == []  # nothing was opened for invalid input


def test_missing_index_says_to_run_index(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("hello")
    code = main(["search", "hello", "--docs", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert f"ragpipe index {tmp_path}" in err


@pytest.mark.integration
@pytest.mark.slow
def test_index_then_search_end_to_end_with_the_packaged_model(tmp_path):
    """Real path: ``ragpipe index`` (MiniLM, Chroma, BM25 sidecar) then ``ragpipe search --json``."""
    import subprocess
    import sys

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text("# Tides\n\nTides are caused by the gravitational pull of the moon.")
    (docs / "bread.txt").write_text("Sourdough bread rises thanks to wild yeast and lactobacilli.")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ragpipe", *args], capture_output=True, text=True, timeout=300)

    assert cli("index", str(docs)).returncode == 0
    found = cli("search", "why does the sea rise and fall", "--docs", str(docs), "--k", "1", "--json")
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["results"][0]
    assert top["source"].endswith("tides.md") and set(top["stage_ranks"]) >= {"dense", "fused"}
    only_txt = json.loads(cli("search", "moon", "--docs", str(docs), "--where", "file_type=txt", "--json").stdout)
    assert {r["source"].rsplit("/", 1)[-1] for r in only_txt["results"]} == {"bread.txt"}
