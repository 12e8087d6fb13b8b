"""Settings: the single source of truth for how ragpipe connects and behaves.

Sources, highest priority first:
  1. ``--set section.key=value`` flags (``assignments``),
  2. keyword overrides (what the CLI's other flags pass; ``section__field=value``),
  3. environment variables ``RAGPIPE_*`` (nested with ``__``: ``RAGPIPE_LLM__MODEL=...``),
  4. a TOML config file (``--config`` / ``RAGPIPE_CONFIG``),
  5. the named connector profile (``connectors/<name>.toml``; ``local`` by default),
  6. the defaults below.

Every table forbids unknown keys: a typo is an error that names the key, where it was set and
the closest valid key. Selector options live in ``[select.<method>]`` tables, validated by the
options model each selector registers (``[select.fast]`` holds the no-LLM cutoff's options);
``[verifier]`` holds the verifier's.

API keys are never settings: a profile names the environment variable that holds the key
(``api_key_env``), and the key is read only when a client is built. Nothing here prints it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ragpipe.errors import ConfigError
from ragpipe.resources import data_dir
from ragpipe.settings_layers import (
    Key,
    Layers,
    Problem,
    describe,
    env_assignments,
    flatten,
    keyword_key,
    model_keys,
    parse_assignment,
)


class Section(BaseModel):
    """A settings table: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class LLMSettings(Section):
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


class EmbeddingSettings(Section):
    backend: Literal["sentence-transformers", "openai"] = "sentence-transformers"
    model: str = "all-MiniLM-L6-v2"  # name or path; the default resolves to the packaged copy
    device: str | None = None  # None = CUDA when present, else CPU
    # None = 16 on CPU (the fastest in eval/bench_ingest.py's sweep: less padding per batch), 64 on a GPU
    # and for the openai backend
    batch_size: int | None = Field(None, ge=1, le=4096)
    base_url: str | None = None
    api_key_env: str | None = None
    # "auto" embeds questions, and on a machine without a GPU also chunks, with an ONNX export of
    # the model when one exists (no torch import, same vectors); "torch" always uses sentence-transformers.
    query_runtime: Literal["auto", "torch"] = "auto"
    encoder_cache: str = "~/.cache/ragpipe/encoders"


class StoreSettings(Section):
    kind: Literal["persistent", "http"] = "persistent"
    path: str | None = None  # None = "<docs>/.ragpipe"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    collection: str = "ragpipe"


class ChunkSettings(Section):
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


class RetrievalSettings(Section):
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    top_k: int = Field(30, ge=1, le=10_000)
    # Hybrid mode: each retriever contributes this many candidates (at least top_k) before fusion.
    candidates: int = Field(100, ge=1, le=100_000)
    # "score": weighted normalised scores (keeps the score gaps); "rrf": reciprocal-rank fusion.
    fusion: Literal["score", "rrf"] = "score"
    normalisation: Literal["zscore", "minmax"] = "zscore"  # for fusion = "score"
    dense_weight: float = Field(0.8, ge=0, le=100)
    bm25_weight: float = Field(0.2, ge=0, le=100)
    rrf_k: int = Field(60, ge=1, le=10_000)  # for fusion = "rrf"
    # Threads (one pool per process) for blocking query-time work: embedding questions, store reads,
    # BM25, token counting. Few: the work holds the GIL, and each thread competes with the event loop.
    worker_threads: int = Field(2, ge=1, le=64)


class CacheSettings(Section):
    enabled: bool = False
    path: str = "~/.cache/ragpipe/llm"



class Settings(Section):
    model_config = ConfigDict(extra="forbid", validate_default=True)

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
    # ``[select.<method>]``: options of that selector (``fast``: the cutoff), checked against its model.
    select: dict[str, dict[str, Any]] = Field(default_factory=dict)
    verifier: dict[str, Any] = Field(default_factory=dict)  # VerifierConfig fields

    @model_validator(mode="after")
    def _options_valid(self, info: ValidationInfo) -> Settings:
        if info.context and info.context.get("options_checked"):  # resolve_settings checked them
            return self
        problems = option_problems(self.select, self.verifier)
        if problems:
            raise ValueError(describe(problems, None, valid_keys))
        return self

    def selector_options(self, method: str) -> dict[str, Any]:
        """The ``[select.<method>]`` options the user set, validated (the selector fills in the rest)."""
        options = self.select.get(method, {})
        return self.selector_config(method).model_dump(include=set(options)) if options else {}

    def selector_config(self, method: str) -> BaseModel:
        """The full options of ``method``: its defaults with the user's ``[select.<method>]`` on top."""
        return option_models()[method].model_validate(self.select.get(method, {}))

    def verifier_config(self) -> Any:
        """The verifier's ``VerifierConfig``: its defaults with ``[verifier]`` on top."""
        from ragpipe.verify.verifier import VerifierConfig

        merged = VerifierConfig().model_dump()
        for name, value in self.verifier.items():  # a table such as ``weights`` adds to the defaults
            default = merged.get(name)
            merged[name] = {**default, **value} if isinstance(default, dict) and isinstance(value, dict) else value
        return VerifierConfig.model_validate(merged)


def option_models() -> dict[str, type[BaseModel]]:
    """The options model of every ``[select.<name>]`` table: the cutoff's, then each selector's."""
    from ragpipe.select import selector_configs
    from ragpipe.select.cutoff import CutoffConfig

    return {"fast": CutoffConfig, **selector_configs()}


def option_problems(select: Any, verifier: Any) -> list[Problem]:
    """What is wrong in the ``select`` and ``verifier`` tables (loaded only when they are set)."""
    problems: list[Problem] = []
    if isinstance(select, Mapping) and select:
        models = option_models()
        for name, options in select.items():
            if name not in models:
                problems.append(Problem(("select", str(name)), "extra_forbidden", "unknown selector"))
                continue
            try:
                models[name].model_validate(options)
            except ValidationError as err:
                problems += [Problem.from_pydantic(e, ("select", str(name))) for e in err.errors()]
    if isinstance(verifier, Mapping) and verifier:
        from ragpipe.verify.verifier import VerifierConfig

        try:
            VerifierConfig.model_validate(verifier)
        except ValidationError as err:
            problems += [Problem.from_pydantic(e, ("verifier",)) for e in err.errors()]
    return problems


def options_error(table: Key, err: ValidationError) -> ConfigError:
    """A ``ConfigError`` naming each invalid option of ``table`` (``("select", "fast")``, …)."""
    return ConfigError(describe([Problem.from_pydantic(e, table) for e in err.errors()], None, valid_keys))


def valid_keys(table: Key) -> list[str] | None:
    """The keys allowed in ``table`` (``()`` is the top level), for "did you mean" hints."""
    model: type[BaseModel] | None = Settings
    rest = table
    if table[:1] == ("select",):
        models = option_models()
        if len(table) == 1:
            return sorted(models)
        model, rest = models.get(table[1]), table[2:]
    elif table[:1] == ("verifier",):
        from ragpipe.verify.verifier import VerifierConfig

        model, rest = VerifierConfig, table[1:]
    return model_keys(model, rest)


def connector_names() -> list[str]:
    return sorted(p.stem for p in data_dir("connectors").glob("*.toml"))


def read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder; pass a .toml file") from None
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


def resolve_settings(
    config_file: str | Path | None = None,
    *,
    assignments: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    overrides_source: str | None = None,
    **overrides: Any,
) -> tuple[Settings, Layers]:
    """The settings and the source of every value that is not a default (see ``load_settings``)."""
    environ = os.environ if environ is None else environ
    upper: list[tuple[Key, Any, str]] = []  # above the connector profile, lowest priority first
    config_path = config_file or environ.get("RAGPIPE_CONFIG")
    if config_path:
        path = Path(config_path).expanduser()
        upper += [(key, value, f"config file {path}") for key, value in flatten(read_toml(path, "config file"))]
    upper += list(env_assignments(environ))
    for name, value in overrides.items():
        if value is not None:  # a flag that was not given must not mask other sources
            upper.append((keyword_key(name), value, overrides_source or f"keyword argument {name}"))
    for text in assignments:
        key, value = parse_assignment(text)
        upper.append((key, value, f"--set {text}"))

    connector = next((v for k, v, _ in reversed(upper) if k == ("connector",)), "local")
    layers = Layers()
    layers.add(load_connector(str(connector)), f"connector profile '{connector}'")
    for key, value, source in upper:
        leaves = list(flatten({key[-1]: value}, key[:-1])) if isinstance(value, Mapping) else [(key, value)]
        for leaf, leaf_value in leaves:
            layers.add_key(leaf, leaf_value, source)

    problems = option_problems(layers.values.get("select"), layers.values.get("verifier"))
    if problems:
        raise ConfigError(describe(problems, layers, valid_keys))
    try:
        return Settings.model_validate(layers.values, context={"options_checked": True}), layers
    except ValidationError as err:
        raise ConfigError(describe([Problem.from_pydantic(e) for e in err.errors()], layers, valid_keys)) from None


def load_settings(
    config_file: str | Path | None = None,
    *,
    assignments: Sequence[str] = (),
    overrides_source: str | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve settings from ``--set`` assignments, overrides, environment, config file and profile.

    ``overrides`` use ``section__field`` keys or nested dicts: ``load_settings(llm__model="x")``;
    ``None`` values are ignored so CLI flags that were not given do not mask other sources.
    ``assignments`` are ``section.key=value`` strings (the ``--set`` flag), values read as TOML.
    """
    return resolve_settings(config_file, assignments=assignments, overrides_source=overrides_source,
                            **overrides)[0]

