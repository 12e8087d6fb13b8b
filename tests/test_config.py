"""Settings resolve from overrides > environment > config file > connector profile > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragpipe.config import connector_names, load_connector, load_settings
from ragpipe.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("RAGPIPE_"):
            monkeypatch.delenv(key)


def test_shipped_connectors_cover_the_documented_profiles() -> None:
    assert {"local", "openai", "vllm", "ollama", "llamacpp-server", "chroma-server"} <= set(connector_names())
    for name in connector_names():
        load_settings(connector=name)  # every profile validates


def test_default_is_the_offline_local_profile() -> None:
    settings = load_settings()
    assert settings.connector == "local"
    assert settings.llm.backend == "llamacpp"
    assert settings.store.kind == "persistent"
    assert settings.cache.enabled is False


def test_priority_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ragpipe.toml"
    config.write_text('connector = "ollama"\n[llm]\nmodel = "from-file"\ntimeout_s = 5\nmax_retries = 7\n')
    # connector profile only
    assert load_settings(config_file=config).llm.base_url == "http://127.0.0.1:11434/v1"
    # file beats profile
    assert load_settings(config_file=config).llm.model == "from-file"
    # env beats file
    monkeypatch.setenv("RAGPIPE_LLM__MODEL", "from-env")
    monkeypatch.setenv("RAGPIPE_LLM__TIMEOUT_S", "9")
    settings = load_settings(config_file=config)
    assert settings.llm.model == "from-env" and settings.llm.timeout_s == 9
    assert settings.llm.max_retries == 7  # untouched fields keep the file's value
    # explicit overrides (CLI flags) beat env; None means "flag not given"
    settings = load_settings(config_file=config, llm__model="from-flag", llm__timeout_s=None)
    assert settings.llm.model == "from-flag" and settings.llm.timeout_s == 9


def test_connector_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGPIPE_CONNECTOR", "vllm")
    assert load_settings().llm.base_url == "http://127.0.0.1:8000/v1"


def test_unknown_connector_lists_choices() -> None:
    with pytest.raises(ConfigError, match="unknown connector 'nope'; choose one of: .*local"):
        load_connector("nope")


def test_bad_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[llm\nmodel=")
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_settings(config_file=config)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "absent.toml")


def test_invalid_value_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[llm]\nbackend = "gpt-magic"\n')
    with pytest.raises(ConfigError, match=r"setting 'llm.backend' \(config file .*c.toml\)"):
        load_settings(config_file=config)


def test_unknown_setting_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("typo_setting = 1\n")
    with pytest.raises(ConfigError, match="typo_setting"):
        load_settings(config_file=config)


def test_api_keys_are_never_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    settings = load_settings(connector="openai")
    assert settings.llm.api_key_env == "OPENAI_API_KEY"
    dumped = settings.model_dump_json() + repr(settings)
    assert "sk-secret-value-123" not in dumped
