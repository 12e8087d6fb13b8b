"""Wire a config to real components: dataset documents on disk, one shared index, one cached LLM,
one ``Pipeline`` per variant, and the scorer. Then run and report.

The LLM response cache is always on for evaluation runs (re-runs and resumed runs cost nothing
for calls already made); it only caches temperature-0 calls.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragpipe.errors import ConfigError
from ragpipe.evaluate.checkpoint import Checkpoint
from ragpipe.evaluate.config import EvalConfig
from ragpipe.evaluate.datasets import EvalDataset, load_dataset, write_documents
from ragpipe.evaluate.report import write_report
from ragpipe.evaluate.runner import PipelineVariant, run_eval
from ragpipe.evaluate.scoring import Scorer, source_doc_id


def prepared_dataset(config: EvalConfig) -> EvalDataset:
    dataset = load_dataset(config.dataset.path, config.dataset.kind)
    return dataset.subset(config.limit, seed=config.seed, corpus=config.dataset.corpus)


def eval_settings(config: EvalConfig, variant_overrides: dict[str, Any] | None = None) -> Any:
    from ragpipe.config import load_settings

    return load_settings(**{**config.settings, **(variant_overrides or {}), "cache__enabled": True})


def _build_llm(settings: Any) -> Any:
    try:
        from ragpipe.llm.factory import build_llm
    except ImportError as err:
        raise ConfigError(f"no LLM backend is available in this installation: {err}") from None
    return build_llm(settings)


def needs_llm(config: EvalConfig) -> bool:
    return bool(config.metrics.judged) or any(v.generate or v.method != "fast" or v.verify for v in config.variants)


def run_config(config: EvalConfig, *, resume: bool = True, progress: bool = True, command: str = "",
               index_progress: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run ``config`` end to end and write its reports; returns the report dict."""
    from ragpipe.ingest.indexer import index_folder, open_index
    from ragpipe.pipeline import Pipeline

    dataset = prepared_dataset(config)
    docs = config.docs_dir()
    stems = write_documents(dataset, docs)
    base = eval_settings(config)
    index_folder(docs, base, progress=index_progress)
    index = open_index(docs, base)
    llm = _build_llm(base) if needs_llm(config) else None
    variants = []
    for v in config.variants:
        settings = eval_settings(config, v.overrides)
        pipeline = Pipeline.from_settings(index=index, method=v.method, verify=v.verify, settings=settings,
                                          llm=llm if llm is not None else _NoLLM(), top_k=v.top_k)
        variants.append(PipelineVariant(v.name, pipeline, generate=v.generate))
    judge_llm = None
    if config.metrics.judged:
        judge_llm = _build_llm(eval_settings(config, config.judge)) if config.judge else llm
    scorer = Scorer(config.metrics, source_doc_id(stems), count_tokens=_token_counter(llm, index.embedder),
                    judge_llm=judge_llm, embedder=index.embedder, seed=config.seed)
    out = config.out_dir()
    rows = asyncio.run(run_eval(dataset.queries, variants, scorer, Checkpoint(out, config.fingerprint()),
                                resume=resume, progress=progress))
    return write_report(out, config=config.model_dump(), dataset=dataset_card(dataset), rows=rows,
                        variants=[v.name for v in config.variants], command=command or " ".join(sys.argv),
                        curves=config.plot_curves)


def report_from_checkpoint(config: EvalConfig, *, command: str = "") -> dict[str, Any]:
    """Rebuild the reports from the rows already checkpointed (e.g. of an interrupted run), calling no model."""
    dataset = prepared_dataset(config)
    checkpoint = Checkpoint(config.out_dir(), config.fingerprint())
    if not checkpoint.path.exists():
        raise ConfigError(f"no checkpoint at {checkpoint.path}; run the evaluation first")
    done = {(r["variant"], r["query_id"]): r for r in checkpoint.rows()}
    names = [v.name for v in config.variants]
    rows = [done[(v, q.id)] for q in dataset.queries for v in names if (v, q.id) in done]
    return write_report(config.out_dir(), config=config.model_dump(), dataset=dataset_card(dataset), rows=rows,
                        variants=names, command=command or " ".join(sys.argv), curves=config.plot_curves)


def dataset_card(dataset: EvalDataset) -> dict[str, Any]:
    return {"name": dataset.name, "kind": dataset.kind, "path": dataset.path, "queries": len(dataset.queries),
            "documents": len(dataset.documents),
            "poisoned_documents": sum(1 for d in dataset.documents.values() if d.poisoned)}


def _token_counter(llm: Any, embedder: Any) -> Callable[[str], int]:
    """Kept evidence is measured in the generator's tokens when there is one."""
    if llm is not None:
        return llm.count_tokens
    return embedder.count_tokens


class _NoLLM:
    """Stands in for the LLM of evidence-only runs; any call is a configuration error."""

    backend = "none"
    model = "none"

    @property
    def capabilities(self) -> Any:
        from ragpipe.llm.base import Capabilities

        return Capabilities()

    async def chat(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("this evaluation variant needs an LLM; set generate = true or configure [settings] llm")

    def count_tokens(self, text: str) -> int:
        from ragpipe.llm.base import estimate_tokens

        return estimate_tokens(text)


def output_paths(config: EvalConfig) -> dict[str, Path]:
    out = config.out_dir()
    return {"report": out / "report.json", "summary": out / "summary.md", "rows": out / "rows.jsonl"}
