"""Run configs (validation, overrides, paths) and ``ragpipe eval --dry-run`` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragpipe.cli import main
from ragpipe.errors import ConfigError
from ragpipe.evaluate.config import load_eval_config

CONFIG = """
name = "tiny"
limit = 3
[dataset]
path = "${{RAGPIPE_DATA}}/qa"
[metrics]
judged = ["faithfulness", "correctness"]
strictness = 2
[settings]
llm__backend = "scripted"
[[variants]]
name = "fast"
method = "fast"
[[variants]]
name = "meteora"
method = "meteora"
verify = true
{extra}
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(CONFIG.format(extra=extra), encoding="utf-8")
    return path


def test_config_expands_the_data_root_and_applies_overrides(tmp_path: Path, qa_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAGPIPE_DATA", str(qa_dir.parent))
    cfg = load_eval_config(write_config(tmp_path), limit=2, out=str(tmp_path / "o"))
    assert cfg.dataset.path == str(qa_dir) and cfg.limit == 2 and cfg.out_dir() == tmp_path / "o"
    assert cfg.fingerprint() == load_eval_config(write_config(tmp_path), limit=3).fingerprint()
    other = load_eval_config(write_config(tmp_path), dataset_path="/elsewhere")
    assert other.dataset.path == "/elsewhere" and other.fingerprint() != cfg.fingerprint()


@pytest.mark.parametrize("extra", [
    '[[variants]]\nname = "fast"',  # duplicate name
    '[[variants]]\nname = "x"\noverrides = { "embedding__model" = "other" }',  # would need another index
])
def test_invalid_configs_are_one_line_config_errors(tmp_path: Path, extra: str) -> None:
    with pytest.raises(ConfigError, match="tiny.toml"):
        load_eval_config(write_config(tmp_path, extra))


@pytest.mark.parametrize(("text", "hint"), [
    ('limt = 3\n[dataset]\npath = "x"\n[[variants]]\nname = "a"\n', "did you mean 'limit'"),
    ('[dataset]\npath = "x"\nkid = "qa"\n[[variants]]\nname = "a"\n', "did you mean 'dataset.kind'"),
    ('[dataset]\npath = "x"\n[metrics]\nstrictnes = 2\n[[variants]]\nname = "a"\n', "did you mean 'metrics.strictness'"),
    ('[dataset]\npath = "x"\n[[variants]]\nname = "a"\nverfy = true\n', "did you mean 'variants.0.verify'"),
])
def test_a_typo_in_an_eval_config_is_an_error_naming_the_key(tmp_path: Path, text: str, hint: str) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="typo.toml") as err:
        load_eval_config(path)
    assert hint in str(err.value)


def test_unknown_judged_metric_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[dataset]\npath = "x"\n[metrics]\njudged = ["vibes"]\n[[variants]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="vibes"):
        load_eval_config(path)


def test_dry_run_estimates_tokens_without_calling_a_model(tmp_path: Path, qa_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RAGPIPE_DATA", str(qa_dir.parent))
    code = main(["eval", str(write_config(tmp_path)), "--dry-run", "--json", "--limit", "2"])
    assert code == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["queries"] == 2 and "estimate" in estimate["tokenizer"]
    assert estimate["variants"]["fast"]["calls"] == 2  # one answer per query
    # meteora + verify: rationale + one verifier call per assumed kept chunk (evidence_k = 5) + answer.
    assert estimate["assumptions"]["evidence_k"] == 5
    # rationales, at most two verification calls (check + short answers), the answer
    assert estimate["variants"]["meteora"]["calls"] == 2 * (1 + 2 + 1)
    assert estimate["variants"]["meteora"]["prompt_tokens"] > estimate["variants"]["fast"]["prompt_tokens"]
    # faithfulness = 2 calls, correctness = 1 call, per query and variant.
    assert estimate["judge"]["calls"] == 2 * 2 * 3
    assert not (tmp_path / "eval").exists()


def test_missing_config_exits_non_zero_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path / "nope.toml")]) != 0
    assert "nope.toml" in capsys.readouterr().err


def test_report_only_rebuilds_reports_from_the_checkpoint(tmp_path: Path, qa_dir: Path, monkeypatch, capsys) -> None:
    from ragpipe.evaluate.checkpoint import Checkpoint
    from ragpipe.evaluate.metric import MetricResult

    monkeypatch.setenv("RAGPIPE_DATA", str(qa_dir.parent))
    path = write_config(tmp_path)
    out = tmp_path / "out"
    cfg = load_eval_config(path, out=str(out))
    checkpoint = Checkpoint(out, cfg.fingerprint())
    checkpoint.open()
    for qid, value in (("q0", 1.0), ("q1", 0.0)):
        checkpoint.append({"variant": "fast", "query_id": qid, "question": "?", "status": "ok", "answer": "x",
                           "metrics": {"token_f1": MetricResult.ok(value).model_dump()}, "cost": {}, "curve": {}})
    assert main(["eval", str(path), "--out", str(out), "--report-only", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1
    aggregates = doc["aggregates"]
    assert aggregates["fast"]["metrics"]["token_f1"]["mean"] == 0.5 and aggregates["meteora"]["n_queries"] == 0
    assert (out / "summary.md").is_file() and (out / "score_curves.png").is_file()
