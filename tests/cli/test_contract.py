"""The CLI contract scripts rely on: ``schema_version`` in every ``--json`` document, one name for a
chunk's id, ``--index`` on every command that reads an index, exit 130 with a word on Ctrl-C, and
whole lines (not 80-column wraps) when the output is a log or a pipe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragpipe.cli import main
from ragpipe.cli.output import JSON_SCHEMA_VERSION
from ragpipe.ingest.testing import HashingEmbedder
from tests.cli.test_ask import small_index  # noqa: F401 - fixture
from tests.ingest.fixtures import write_corpus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_model(monkeypatch):
    fake = HashingEmbedder()
    monkeypatch.setattr("ragpipe.ingest.indexer.get_index_embedder", lambda settings: fake)
    monkeypatch.setattr("ragpipe.ingest.indexer.get_query_embedder", lambda settings: fake)
    monkeypatch.setattr("ragpipe.ingest.indexer.embedder_name", lambda settings: fake.name)
    return fake


def json_out(capsys, argv: list[str], code: int = 0) -> dict:
    assert main(argv) == code
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert isinstance(doc, dict) and next(iter(doc)) == "schema_version", captured.out[:200]
    assert doc["schema_version"] == JSON_SCHEMA_VERSION
    return doc


def write_eval(tmp_path: Path, n: int = 3) -> Path:
    qa = tmp_path / "qa"
    qa.mkdir()
    rows = [{"id": f"q{i}", "question": f"What colour is item{i}?", "answers": [f"colour{i}"],
             "contexts": [{"doc_id": f"d{i}", "title": f"Item{i}", "text": f"Item{i} is colour{i}."}]}
            for i in range(n)]
    (qa / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "run.toml"
    config.write_text(f'name = "tiny"\n[dataset]\npath = "{qa}"\n[settings]\nllm__backend = "scripted"\n'
                      '[[variants]]\nname = "fast"\nmethod = "fast"\n')
    return config


def test_index_search_doctor_graph_and_eval_documents_are_versioned(tmp_path, capsys, fake_model):
    docs = write_corpus(tmp_path / "docs", n_files=2)
    index = json_out(capsys, ["index", str(docs), "--json"])
    assert sorted(index["added"]) == ["doc00.txt", "doc01.txt"]
    search = json_out(capsys, ["search", "topic1", "--docs", str(docs), "--json"])
    assert search["results"] and all(r["chunk_id"] == r["id"] for r in search["results"])
    code = main(["doctor", "--json"])
    doctor = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and doctor["schema_version"] == JSON_SCHEMA_VERSION
    assert {"python", "chromadb"} <= {c["name"] for c in doctor["checks"]}
    estimate = json_out(capsys, ["eval", str(write_eval(tmp_path)), "--dry-run", "--json"])
    assert estimate["queries"] == 3 and "fast" in estimate["variants"]


def test_graph_json_is_the_node_tree():
    proc = subprocess.run([sys.executable, "-m", "ragpipe", "graph", "--method", "fast", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == JSON_SCHEMA_VERSION and doc["method"] == "fast" and doc["verify"] is True
    nodes = doc["graph"]["nodes"]
    assert [n["label"] for n in nodes] == ["retrieve", "cutoff", "verify", "generate"]
    assert nodes[0]["writes"] == ["candidates"] and "question" in nodes[0]["reads"]


def test_ask_answer_and_error_documents_are_versioned_and_name_the_chunk_id(small_index, capsys):  # noqa: F811
    doc = json_out(capsys, ["ask", "How often are API keys rotated?", "--docs", str(small_index.docs),
                            "--method", "fast", "--json"])
    ids = {e["chunk_id"] for e in doc["evidence"]}
    assert ids and {c["chunk_id"] for c in doc["citations"]} <= ids
    assert all(e["id"] == e["chunk_id"] for e in doc["evidence"] + doc["dropped"])
    error = json_out(capsys, ["ask", "q?", "--docs", str(small_index.docs), "--method", "no-such", "--json"], code=2)
    assert error["error"]["exit_code"] == 2 and "no-such" in error["error"]["message"]


def test_ask_reads_the_index_named_by_index(tmp_path, capsys, fake_model):
    docs = write_corpus(tmp_path / "docs", n_files=2)
    elsewhere = tmp_path / "elsewhere"
    assert main(["index", str(docs), "--index", str(elsewhere), "--json"]) == 0
    capsys.readouterr()
    assert main(["ask", "topic1", "--docs", str(docs), "--index", str(elsewhere), "--retrieve-only"]) == 0
    out = capsys.readouterr().out
    assert "doc0" in out and fake_model.calls  # answered from the named index ...
    assert not (docs / ".ragpipe").exists()  # ... without building a second one beside the documents


def test_without_a_terminal_the_index_summary_is_not_wrapped_at_80_columns(tmp_path, capsys, fake_model):
    docs = write_corpus(tmp_path / "docs", n_files=1)
    index_dir = tmp_path / ("a-long-folder-name-" * 5) / "index"
    assert main(["index", str(docs), "--index", str(index_dir)]) == 0
    lines = capsys.readouterr().err.splitlines()
    summary = next(line for line in lines if "added 1" in line)
    assert str(index_dir) in summary and "skipped 0 files" in summary and len(summary) > 120


def test_interrupted_eval_exits_130_and_says_what_was_saved(tmp_path, capsys, monkeypatch):
    from ragpipe.evaluate.checkpoint import Checkpoint
    from ragpipe.evaluate.config import load_eval_config

    config, out = write_eval(tmp_path), tmp_path / "out"

    def interrupted_after_two(cfg, **kwargs):
        checkpoint = Checkpoint(cfg.out_dir(), cfg.fingerprint())
        checkpoint.open()
        for qid in ("q0", "q1"):
            checkpoint.append({"variant": "fast", "query_id": qid, "status": "ok", "metrics": {}})
        raise KeyboardInterrupt

    monkeypatch.setattr("ragpipe.evaluate.build.run_config", interrupted_after_two)
    assert main(["eval", str(config), "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    rows = load_eval_config(config, out=str(out)).out_dir() / "rows.jsonl"
    assert err == [f"interrupted: 2 (variant, query) results saved in {rows}; run the same command again to "
                   "resume, or add --report-only for a report of what is done"]


def test_ctrl_c_in_any_command_exits_130_with_a_word(capsys, monkeypatch):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ragpipe.graph.build_graph", stopped)
    assert main(["graph"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


CHILD = """
import sys, time
from ragpipe.evaluate import checkpoint
append = checkpoint.Checkpoint.append
def slow_append(self, row):  # a slow model: one result a second
    append(self, row)
    time.sleep(1.0)
checkpoint.Checkpoint.append = slow_append
from ragpipe.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_real_sigint_during_eval(tmp_path):
    config, out = write_eval(tmp_path, n=8), tmp_path / "out"
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(child), "eval", str(config), "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = out / "rows.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (rows.exists() and rows.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    saved = rows.read_text().count("\n")
    assert 2 <= saved < 8
    assert err.strip().splitlines()[-1].startswith(f"interrupted: {saved} (variant, query) results saved in {rows}")
