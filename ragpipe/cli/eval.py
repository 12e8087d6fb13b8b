"""``ragpipe eval CONFIG``: run pipeline variants side by side over one dataset and report.

Writes ``report.json``, ``summary.md``, PNG plots and the ``rows.jsonl`` checkpoint into the
output folder; an interrupted run resumes where it stopped. ``--dry-run`` estimates the LLM
tokens from the prompt files and the tokenizer without calling any model.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ragpipe.cli import app
from ragpipe.cli.output import emit_json
from ragpipe.cli.terminal import printable
from ragpipe.errors import Interrupted


def _token_counter(settings: Any) -> tuple[Callable[[str], int], str]:
    """The LLM's own tokenizer when it is a local GGUF (vocabulary only), else a high estimate."""
    from ragpipe.llm.base import estimate_tokens

    if settings.llm.backend == "llamacpp":
        try:
            from llama_cpp import Llama

            from ragpipe.models import resolve_gguf

            vocab = Llama(model_path=str(resolve_gguf(settings.llm.model, settings.llm.model_path)), vocab_only=True,
                          verbose=False)
            return (lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))), \
                f"{settings.llm.model} tokenizer"
        except Exception:  # no local tokenizer: fall back to the estimate, and say so
            pass
    return estimate_tokens, "3-characters-per-token estimate"


def _saved(cfg: Any) -> str:
    """What an interrupted run kept, and how to go on."""
    from ragpipe.evaluate.checkpoint import Checkpoint

    checkpoint = Checkpoint(cfg.out_dir(), cfg.fingerprint())
    try:
        done = len(checkpoint.rows()) if checkpoint.path.exists() else 0
    except Exception:  # an unreadable checkpoint must not hide the interrupt
        done = 0
    if not done:
        return "no results saved yet; run the same command again to start"
    where = printable(checkpoint.path, one_line=True)
    return (f"{done} (variant, query) results saved in {where}; run the same command again to resume, "
            "or add --report-only for a report of what is done")


@app.command("eval")
def eval_command(
    config: Path = typer.Argument(..., help="Run config (TOML), e.g. eval/configs/hotpotqa_fast_vs_meteora.toml."),
    limit: int = typer.Option(None, "--limit", help="Evaluate only this many queries (seeded sample)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Skip (variant, query) pairs already done."),
    out: Path = typer.Option(None, "--out", help="Output folder (default from the config)."),
    dataset: Path = typer.Option(None, "--dataset", help="Dataset folder (overrides the config's)."),
    data: Path = typer.Option(None, "--data", help="Data folder that ${RAGPIPE_DATA} in the config stands for "
                              "(default: $RAGPIPE_DATA, else shared/data beside the checkout; see eval/datasets.md)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Estimate LLM calls and tokens; call no model."),
    json_out: bool = typer.Option(False, "--json", help="Print the aggregates (or estimate) as JSON."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with ETA."),
    report_only: bool = typer.Option(False, "--report-only",
                                     help="Rebuild the reports from the rows already done; run nothing."),
) -> None:
    """Evaluate pipeline variants on a dataset (IR, answers, RAGAS-style, poisoning, cost)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ragpipe.evaluate.build import eval_settings, prepared_dataset, report_from_checkpoint, run_config
    from ragpipe.evaluate.config import load_eval_config

    cfg = load_eval_config(config, data=data, limit=limit, out=str(out) if out else None,
                           dataset_path=str(dataset) if dataset else None)
    if dry_run:
        from ragpipe.evaluate.estimate import estimate_run

        counter, how = _token_counter(eval_settings(cfg))
        estimate = estimate_run(cfg, prepared_dataset(cfg), counter)
        estimate["tokenizer"] = how
        if json_out:
            emit_json(estimate)
            return
        typer.echo(f"{printable(cfg.name, one_line=True)}: {estimate['queries']} queries, counted with the {how}")
        for name, totals in {**estimate["variants"], "judge": estimate["judge"]}.items():
            typer.echo(f"  {name:<24} calls {totals['calls']:>7.0f}  prompt tokens {totals['prompt_tokens']:>10.0f}"
                       f"  completion tokens <= {totals['max_completion_tokens']:>9.0f}")
        return
    command = "ragpipe " + " ".join(sys.argv[1:])
    if report_only:
        report = report_from_checkpoint(cfg, command=command)
    else:
        try:
            report = run_config(cfg, resume=resume, progress=progress and sys.stderr.isatty(), command=command)
        except KeyboardInterrupt:
            raise Interrupted(_saved(cfg)) from None
    if json_out:
        emit_json({"aggregates": report["aggregates"]})
    else:
        typer.echo(printable((cfg.out_dir() / "summary.md").read_text(encoding="utf-8")))
        typer.echo(f"reports in {printable(cfg.out_dir(), one_line=True)}")
