"""The CLI's contract: --version, doctor, and one-line errors with non-zero exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ragpipe import __version__
from ragpipe.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragpipe", *args], capture_output=True, text=True, timeout=120
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ragpipe {__version__}"


def test_doctor_reports_every_check_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1
    checks = doc["checks"]
    names = {c["name"] for c in checks}
    assert {"python", "sqlite3", "chromadb", "prompts", "connector"} <= names
    assert all(c["status"] in {"ok", "missing", "warn"} for c in checks)
    core_missing = [c for c in checks if c["status"] == "missing" and c["name"] not in {"vllm", "ranx", "matplotlib", "llama-cpp-python"}]
    assert code == (1 if core_missing else 0)


def test_doctor_names_the_extra_for_a_missing_optional_backend(capsys: pytest.CaptureFixture[str]) -> None:
    main(["doctor", "--json"])
    vllm = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "vllm")
    if vllm["status"] == "missing":
        assert "pip install 'ragpipe[vllm]'" in vllm["detail"]


def test_doctor_never_prints_an_api_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-print-me")
    main(["doctor", "--connector", "openai"])
    out = capsys.readouterr()
    assert "sk-do-not-print-me" not in out.out + out.err
    assert "OPENAI_API_KEY is set" in out.out


def test_unknown_connector_is_one_line_and_nonzero() -> None:
    result = run_cli("doctor", "--connector", "nope")
    # doctor reports the bad connector as a failed check rather than crashing
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "unknown connector 'nope'" in result.stdout + result.stderr


def test_usage_error_has_no_traceback() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_import_ragpipe_stays_light() -> None:
    """Heavy libraries are imported on use, never by ``import ragpipe``."""
    heavy = ("torch", "chromadb", "sentence_transformers", "llama_cpp", "langchain_core", "llama_index", "openai")
    code = f"import ragpipe, sys; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
