"""Fault catalogue, settings: every numeric setting has a range, and a value outside it is an error
that names the key (exit 2 from the CLI), never a silent "Not found" or a server error later."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from ragpipe.cli import main
from ragpipe.config import Settings, load_settings
from ragpipe.errors import ConfigError

OUT_OF_RANGE = {
    "llm.timeout_s": [0, -1, 10_000],
    "llm.max_retries": [-3, 1000],
    "llm.ask_deadline_s": [0, -5, 10**9],
    "llm.max_concurrency": [0, -1, 10_000],
    "llm.context_window": [0, 10, 10**9],
    "llm.n_threads": [0, -2],
    "llm.seed": [-1, 2**40],
    "embedding.batch_size": [0, -8, 10**6],
    "store.port": [0, 70_000],
    "chunking.chunk_tokens": [0, -5, 10**7],
    "chunking.overlap_tokens": [-1],
    "chunking.max_file_mb": [0, -1],
    "retrieval.top_k": [-5, 0, 10**7],
    "retrieval.rrf_k": [0, -60],
    "retrieval.worker_threads": [0, -1, 65],
    "retrieval.candidates": [0, -1, 10**7],
    "retrieval.dense_weight": [-0.5, 1000],
    "retrieval.bm25_weight": [-1],
}


def numeric_fields() -> set[str]:
    """Every int/float setting of every section (so a new one without a range fails this module)."""
    found = set()
    for section, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, sub in annotation.model_fields.items():
                text = str(sub.annotation)
                if sub.annotation in (int, float) or text in ("int | None", "float | None"):
                    found.add(f"{section}.{name}")
    return found


def test_every_numeric_setting_is_covered_here() -> None:
    assert numeric_fields() == set(OUT_OF_RANGE)


@pytest.mark.parametrize("key, value", [(k, v) for k, values in OUT_OF_RANGE.items() for v in values])
def test_out_of_range_values_are_config_errors_naming_the_key(key: str, value) -> None:
    section, field = key.split(".")
    with pytest.raises(ConfigError, match=rf"setting '{key}'") as raised:
        load_settings(**{f"{section}__{field}": value})
    assert raised.value.exit_code == 2


def test_defaults_are_inside_their_ranges() -> None:
    settings = load_settings()
    assert settings.retrieval.top_k == 30 and settings.llm.ask_deadline_s == 300.0


def test_overlap_must_be_smaller_than_the_chunk() -> None:
    with pytest.raises(ConfigError, match="overlap_tokens .* must be smaller than chunk_tokens"):
        load_settings(chunking__chunk_tokens=50, chunking__overlap_tokens=50)


@pytest.mark.parametrize("env, key", [("RAGPIPE_RETRIEVAL__TOP_K", "retrieval.top_k"),
                                      ("RAGPIPE_LLM__MAX_RETRIES", "llm.max_retries")])
def test_cli_exits_2_naming_the_key(env: str, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.md").write_text("text")
    monkeypatch.setenv(env, "-5" if "TOP_K" in env else "-3")
    assert main(["ask", "q?", "--docs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: setting '" + key + "'") and "greater than or equal" in err
    assert not (tmp_path / ".ragpipe").exists()  # refused before any indexing


def test_config_file_value_out_of_range_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("[retrieval]\ntop_k = -5\n")
    with pytest.raises(ConfigError, match=r"setting 'retrieval.top_k' \(config file .*settings.toml\)"):
        load_settings(config)


def test_top_k_flag_below_one_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ragpipe", "ask", "q?", "--docs", str(tmp_path), "--top-k", "-5"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--top-k" in proc.stderr and "Traceback" not in proc.stderr


def test_python_api_top_k_below_one_is_refused() -> None:
    from ragpipe.llm.scripted import ScriptedLLM
    from tests.faults.conftest import pipeline_over

    with pytest.raises(ConfigError, match="top_k must be at least 1"):
        pipeline_over(ScriptedLLM(echo=True)).ask("q?", top_k=-5)
