"""Evaluation run configs: TOML files under ``eval/configs/`` naming a dataset and the variants to compare.

    name = "hotpotqa_fast_vs_meteora"
    seed = 0
    limit = 10                       # queries (seeded sample); --limit overrides
    out = "eval/results/eval_hotpotqa_fast_vs_meteora"
    work_dir = "eval/work/hotpotqa"  # documents folder + its index, shared by all variants

    [dataset]
    path = "${RAGPIPE_DATA}/hotpotqa_hipporag_train100"   # env vars expand; --dataset overrides
    kind = "qa"                      # beir | qa | poisoning (detected when left out)
    corpus = "all"                   # all | queries (only the sampled queries' documents)

    [metrics]
    ir = ["ndcg@10", "recall@10", "mrr"]
    rel_lvl = 1
    judged = ["faithfulness", "answer_relevancy", "context_precision", "context_recall", "correctness"]

    [settings]                       # section__field overrides shared by every variant
    retrieval__top_k = 20

    [[variants]]
    name = "fast"
    method = "fast"
    verify = false
    overrides = { "retrieval__mode" = "dense" }

``${RAGPIPE_DATA}`` is the data folder: ``ragpipe eval --data DIR``, else the ``RAGPIPE_DATA``
environment variable, else ``shared/data`` beside the checkout (the convention of every ``eval/``
script, see ``ragpipe.evaluate.datafolder``). Other relative paths are taken from the working folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragpipe.errors import ConfigError
from ragpipe.evaluate.datafolder import ENV_VAR, DataError, missing_root_message, resolve_data_root
from ragpipe.settings_layers import validate_table

JUDGED_METRICS: tuple[str, ...] = ("faithfulness", "answer_relevancy", "context_precision", "context_recall",
                                   "correctness")
# Settings that change what is indexed: one index is shared, so variants may not override them.
INDEX_SECTIONS: tuple[str, ...] = ("embedding", "chunking", "store")


class _Table(BaseModel):
    """An eval-config table: unknown keys are errors, so a misspelt option never passes silently."""

    model_config = ConfigDict(extra="forbid")


class VariantConfig(_Table):
    name: str
    method: str = "fast"
    verify: bool = False
    generate: bool = True
    top_k: int | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _no_index_overrides(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key.split("__", 1)[0] in INDEX_SECTIONS:
                raise ValueError(f"'{key}' changes the shared index; set it in [settings] for all variants")
        return value


class DatasetConfig(_Table):
    path: str
    kind: Literal["beir", "qa", "poisoning"] | None = None
    corpus: Literal["all", "queries"] = "all"


class MetricsConfig(_Table):
    ir: list[str] = Field(default_factory=lambda: ["ndcg@10", "recall@10", "mrr"])
    rel_lvl: int = 1
    answers: bool = True
    judged: list[str] = Field(default_factory=list)
    strictness: int = 3
    judge_timeout_s: float | None = None

    @field_validator("judged")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = set(value) - set(JUDGED_METRICS)
        if unknown:
            raise ValueError(f"unknown judged metric(s) {sorted(unknown)}; choose from {list(JUDGED_METRICS)}")
        return value


class EvalConfig(_Table):
    name: str
    dataset: DatasetConfig
    variants: list[VariantConfig]
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    settings: dict[str, Any] = Field(default_factory=dict)
    judge: dict[str, Any] = Field(default_factory=dict)  # llm__* overrides for a separate judge LLM
    limit: int | None = None
    seed: int = 0
    out: str | None = None
    work_dir: str | None = None
    plot_curves: int = 4

    @field_validator("variants")
    @classmethod
    def _unique(cls, value: list[VariantConfig]) -> list[VariantConfig]:
        names = [v.name for v in value]
        if not value or len(set(names)) != len(names):
            raise ValueError("variants need at least one entry and unique names")
        return value

    def fingerprint(self) -> str:
        """What must match for a checkpoint to be resumed (everything but limit and output place)."""
        payload = self.model_dump(exclude={"limit", "out", "work_dir"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def out_dir(self) -> Path:
        return Path(self.out or f"eval/results/eval_{self.name}")

    def docs_dir(self) -> Path:
        return Path(self.work_dir or f"eval/work/{self.name}") / "docs"


def expand_path(text: str, data: str | Path | None = None) -> str:
    """``${VAR}`` and ``~`` expanded; ``${RAGPIPE_DATA}`` is the data folder, which must exist."""
    if f"${{{ENV_VAR}}}" in text:
        root, source = resolve_data_root(data)
        if not root.is_dir():
            raise DataError(missing_root_message(root, source))
        text = text.replace(f"${{{ENV_VAR}}}", str(root))
    for key, value in os.environ.items():
        text = text.replace(f"${{{key}}}", value)
    return os.path.expanduser(text)


def load_eval_config(path: str | Path, *, data: str | Path | None = None, **overrides: Any) -> EvalConfig:
    """Read and validate a run config; ``overrides`` (limit, out, dataset path ...) win over the file.

    ``data`` is the data folder ``${RAGPIPE_DATA}`` stands for (default: the variable, else beside the checkout).
    """
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"eval config {file} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"eval config {file} is not valid TOML: {err}") from None
    raw.setdefault("name", file.stem)
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "dataset_path":
            raw.setdefault("dataset", {})["path"] = value
        else:
            raw[key] = value
    config = validate_table(EvalConfig, raw, f"eval config {file}")
    config.dataset.path = expand_path(config.dataset.path, data)
    return config
