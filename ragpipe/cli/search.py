"""``ragpipe search "query" --docs DIR``: show exactly what retrieval returns, before any LLM.

A table of rank, final score, the dense and BM25 ranks behind it, ``source#position`` and a
snippet — or, with ``--json``, one JSON document. Needs an existing index (``ragpipe index``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from ragpipe.cli import app
from ragpipe.cli.options import SET_OPTION
from ragpipe.cli.output import emit_json
from ragpipe.cli.terminal import console as cli_console
from ragpipe.cli.terminal import markup_safe
from ragpipe.errors import ConfigError, StoreError
from ragpipe.schema import ScoredChunk


HIT_FIELDS = ("rank", "score", "chunk_id", "id", "doc_id", "source", "position", "stage_scores", "stage_ranks",
              "metadata", "text")


def hit_to_json(hit: ScoredChunk) -> dict[str, Any]:
    """One result of ``ragpipe search --json`` (keys are a stable contract)."""
    return hit.flat(*HIT_FIELDS)


def _snippet(text: str, width: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def print_hits(query: str, mode: str, hits: list[ScoredChunk], console: Any) -> None:
    from rich.table import Table

    if not hits:
        console.print(f"no results for {markup_safe(repr(query))} ({mode})")
        return
    table = Table(title=f"{mode} results for {markup_safe(repr(query))}", expand=True)
    for col, justify in (("#", "right"), ("score", "right"), ("dense", "right"), ("bm25", "right"), ("source", "left")):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("text", overflow="fold")
    for hit in hits:
        table.add_row(
            str(hit.rank),
            f"{hit.score:.4f}",
            str(hit.stage_ranks.get("dense", "-")),
            str(hit.stage_ranks.get("bm25", "-")),
            markup_safe(f"{hit.chunk.source}#{hit.chunk.position}", one_line=True),
            markup_safe(_snippet(hit.chunk.text), one_line=True),
        )
    console.print(table)


def open_existing_index(docs: Path, settings: Any) -> Any:
    """The folder's index; a one-line error that says how to build it when there is none."""
    from ragpipe.ingest.indexer import open_index

    folder = docs.expanduser()
    if not folder.is_dir():
        raise ConfigError(f"documents folder {folder} does not exist")
    try:
        return open_index(folder, settings)
    except StoreError as err:
        if "no index" in str(err):
            raise StoreError(f"no index for {folder} yet: run `ragpipe index {docs}` first") from None
        raise


@app.command()
def search(
    query: str = typer.Argument(..., help="What to search for."),
    docs: Path = typer.Option(..., "--docs", help="Folder of documents (already indexed)."),
    index: Path = typer.Option(None, "--index", help="Index folder, when not <docs>/.ragpipe."),
    k: int = typer.Option(None, "--k", min=1, help="How many chunks to return (default: retrieval.top_k)."),
    mode: str = typer.Option(None, "--mode", help="hybrid (default), dense or bm25."),
    where: list[str] = typer.Option(
        None, "--where", help="Filter, repeatable (AND): source~=*.md, file_type=pdf, 'lang in en,de', year>=2020."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one machine-readable JSON document."),
    config: Path = typer.Option(None, "--config", help="TOML settings file."),
    assignments: list[str] = SET_OPTION,
) -> None:
    """Show what retrieval returns for a query: scores, dense/BM25 ranks, sources, snippets."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from ragpipe.config import load_settings
    from ragpipe.retrieve import MODES, Retriever, parse_filter

    if mode is not None and mode not in MODES:
        raise ConfigError(f"unknown --mode '{mode}'; use one of {', '.join(MODES)}")
    flt = parse_filter(list(where or [])) if where else None  # parse before loading any model
    settings = load_settings(
        config, assignments=assignments, overrides_source="command-line option", store__path=str(index.expanduser().resolve()) if index else None, retrieval__mode=mode
    )
    opened = open_existing_index(docs, settings)
    retriever = Retriever(opened.store, opened.embedder, settings.retrieval)
    hits = retriever.retrieve(query, k=k or settings.retrieval.top_k, filters=flt)
    used_mode = mode or settings.retrieval.mode
    if as_json:
        doc = {"query": query, "mode": used_mode, "k": k or settings.retrieval.top_k, "results": [hit_to_json(h) for h in hits]}
        emit_json(doc)
        return
    print_hits(query, used_mode, hits, cli_console())

