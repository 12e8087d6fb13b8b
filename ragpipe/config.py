"""Settings: the single source of truth for how ragpipe connects and behaves.

Sources, highest priority first:
  1. keyword overrides (what the CLI's flags pass),
  2. environment variables ``RAGPIPE_*`` (nested with ``__``: ``RAGPIPE_LLM__MODEL=...``),
  3. a TOML config file (``--config`` / ``RAGPIPE_CONFIG``),
  4. the named connector profile (``connectors/<name>.toml``; ``local`` by default),
  5. the defaults below.

API keys are never settings: a profile names the environment variable that holds the key
(``api_key_env``), and the key is read only when a client is built. Nothing here prints it.
"""

from __future__ import annotations

import contextvars
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ragpipe.errors import ConfigError
from ragpipe.resources import data_dir


class LLMSettings(BaseModel):
    backend: Literal["llamacpp", "openai", "vllm", "scripted"] = "llamacpp"
    model: str = "smollm2-135m-instruct"
    model_path: str | None = None  # GGUF file (llamacpp) or weights folder (vllm); None = packaged model
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(120.0, gt=0, le=3600)  # one HTTP attempt
    max_retries: int = Field(3, ge=0, le=10)
    # All LLM calls of one question together: past it, nodes fall back instead of waiting on.
    ask_deadline_s: float = Field(300.0, gt=0, le=86400)
    max_concurrency: int = Field(4, ge=1, le=256)
    context_window: int = Field(8192, ge=256, le=2_097_152)
    n_threads: int | None = Field(None, ge=1, le=1024)
    json_mode: Literal["json_schema", "json_object", "guided_json", "none"] = "json_schema"
    logprobs: bool = True  # does the server return logprobs? (selectors fall back to text when not)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    extra_body: dict[str, Any] = Field(default_factory=dict)


class EmbeddingSettings(BaseModel):
    backend: Literal["sentence-transformers", "openai"] = "sentence-transformers"
    model: str = "all-MiniLM-L6-v2"  # name or path; the default resolves to the packaged copy
    device: str | None = None  # None = CUDA when present, else CPU
    # None = 16 on CPU (the fastest in eval/bench_ingest.py's sweep: less padding per batch), 64 on a GPU
    # and for the openai backend
    batch_size: int | None = Field(None, ge=1, le=4096)
    base_url: str | None = None
    api_key_env: str | None = None
    # Query time: "auto" embeds questions with an ONNX export of the model when one exists
    # (no torch import, same vectors); "torch" always uses sentence-transformers.
    query_runtime: Literal["auto", "torch"] = "auto"
    encoder_cache: str = "~/.cache/ragpipe/encoders"


class StoreSettings(BaseModel):
    kind: Literal["persistent", "http"] = "persistent"
    path: str | None = None  # None = "<docs>/.ragpipe"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    collection: str = "ragpipe"


class ChunkSettings(BaseModel):
    chunk_tokens: int = Field(200, ge=16, le=100_000)  # clamped to the embedder's window when larger
    overlap_tokens: int = Field(30, ge=0, le=100_000)
    max_file_mb: float = Field(50.0, gt=0, le=10_000)
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> ChunkSettings:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens "
                             f"({self.chunk_tokens})")
        return self


class RetrievalSettings(BaseModel):
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    top_k: int = Field(30, ge=1, le=10_000)
    rrf_k: int = Field(60, ge=1, le=10_000)


class CacheSettings(BaseModel):
    enabled: bool = False
    path: str = "~/.cache/ragpipe/llm"


_connector_profile: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("connector_profile", default={})
_config_file: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("config_file", default={})


class _DictSource(PydanticBaseSettingsSource):
    """A settings source backed by a dict held in a context variable."""

    def __init__(self, settings_cls: type[BaseSettings], var: contextvars.ContextVar[dict[str, Any]]) -> None:
        super().__init__(settings_cls)
        self._values = var.get()

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGPIPE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    connector: str = "local"
    method: str = "meteora"
    verify: bool = True
    answer: Literal["extractive", "generate", "auto"] = "auto"  # auto: generate, quote the evidence when that fails
    prompts_dir: str | None = None
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    chunking: ChunkSettings = Field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _DictSource(settings_cls, _config_file),
            _DictSource(settings_cls, _connector_profile),
        )


def connector_names() -> list[str]:
    return sorted(p.stem for p in data_dir("connectors").glob("*.toml"))


def read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{what} {path} is not valid TOML: {err}") from None


def load_connector(name: str) -> dict[str, Any]:
    """The named connector profile as a dict of settings."""
    path = data_dir("connectors") / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown connector '{name}'; choose one of: {', '.join(connector_names())}")
    profile = read_toml(path, "connector profile")
    profile.pop("description", None)
    return profile


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings from overrides, environment, config file and connector profile.

    ``overrides`` use nested dicts or ``section__field`` keys: ``load_settings(llm__model="x")``.
    ``None`` values are ignored so CLI flags that were not given do not mask other sources.
    """
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, field = key.partition("__")
        if field:
            nested.setdefault(section, {})[field] = value
        else:
            nested[key] = value

    config_path = config_file or os.environ.get("RAGPIPE_CONFIG")
    file_values = read_toml(Path(config_path).expanduser(), "config file") if config_path else {}
    connector = nested.get("connector") or os.environ.get("RAGPIPE_CONNECTOR") or file_values.get("connector") or "local"
    profile = load_connector(connector)

    t1 = _config_file.set(file_values)
    t2 = _connector_profile.set(profile)
    try:
        return Settings(**{**nested, "connector": connector})
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        source = f" (config file {config_path})" if config_path else ""
        got = f" (got {first['input']!r})" if first["type"] not in ("missing", "value_error") else ""
        raise ConfigError(f"setting '{field}'{source}: {first['msg']}{got}") from None
    finally:
        _config_file.reset(t1)
        _connector_profile.reset(t2)
