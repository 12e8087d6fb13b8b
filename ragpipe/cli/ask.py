"""``ragpipe ask "question" --docs DIR``: index on first use, answer with numbered citations.

Prints the answer, its citations and an evidence table (or, with ``--json``, one JSON document
with ``answer``, ``citations``, ``evidence``, ``dropped``, ``usage`` and ``timings``). Progress
and errors go to stderr, so ``--json`` output stays machine-readable. Any failure ends with one
line and a non-zero exit code; set ``RAGPIPE_DEBUG=1`` to see the traceback of an unexpected one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

from ragpipe.cli import app
from ragpipe.errors import ConfigError, RagpipeError
from ragpipe.schema import Answer, ScoredChunk, Verdict


class UnexpectedError(RagpipeError):
    """An error ragpipe did not anticipate; shown as one line unless RAGPIPE_DEBUG is set."""

    exit_code = 1

def _verdict(verdicts: dict[str, Verdict], chunk_id: str) -> dict[str, Any] | None:
    verdict = verdicts.get(chunk_id)
    if verdict is None:
        return None
    return {"keep": verdict.keep, "reason": verdict.reason, "flags": list(verdict.flags)}


def _evidence_row(item: ScoredChunk, verdicts: dict[str, Verdict]) -> dict[str, Any]:
    chunk = item.chunk
    return {
        "id": chunk.id,
        "source": chunk.source,
        "position": chunk.position,
        "text": chunk.text,
        "score": item.score,
        "verdict": _verdict(verdicts, chunk.id),
    }


def answer_to_json(answer: Answer, *, method: str, include_trace: bool = False) -> dict[str, Any]:
    """The machine-readable form of ``ragpipe ask --json`` (keys are a stable contract)."""
    verdicts = {v.chunk_id: v for v in answer.verdicts}
    doc: dict[str, Any] = {
        "question": answer.question,
        "method": method,
        "answer": answer.text,
        "abstained": answer.abstained,
        "answer_mode": answer.mode,
        "citations": [c.model_dump() for c in answer.citations],
        "evidence": [_evidence_row(e, verdicts) for e in answer.evidence],
        "dropped": [
            {**_evidence_row(d.chunk, verdicts), "reason": d.reason, "flags": list(d.flags)} for d in answer.dropped
        ],
        "usage": {
            "total": answer.usage.model_dump(),
            "by_node": {node: usage.model_dump() for node, usage in answer.usage_by_node.items()},
        },
        "timings": answer.timings,
    }
    if include_trace:
        doc["trace"] = [event.model_dump() for event in answer.trace]
    return doc


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def print_answer(answer: Answer, *, console: Any, show_trace: bool = False) -> None:
    """Answer, numbered citations, evidence and dropped tables, usage line (and the trace)."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(answer.text)}[/bold]")
    if answer.mode == "extracted":
        console.print("[dim](quoted from the documents; no model wrote this answer)[/dim]")
    if answer.citations:
        console.print()
        for c in answer.citations:
            span = f" chars {c.start_char}-{c.end_char}" if c.start_char is not None else ""
            if c.quote_start_char is not None:
                span += f" (sentence {c.quote_start_char}-{c.quote_end_char})"
            console.print(f"  [{c.n}] {escape(c.source)} #{c.position}{span}")
    cited = {c.chunk_id: c.n for c in answer.citations}
    verdicts = {v.chunk_id: v for v in answer.verdicts}
    if answer.evidence:
        table = Table(title="Evidence", show_lines=False, expand=True)
        for col in ("cite", "source", "pos", "score", "verdict"):
            table.add_column(col, no_wrap=True)
        table.add_column("text", overflow="fold")
        for item in answer.evidence:
            v = verdicts.get(item.id)
            table.add_row(
                f"[{cited[item.id]}]" if item.id in cited else "",
                escape(item.chunk.source),
                str(item.chunk.position),
                f"{item.score:.3f}",
                "kept" if v is None or v.keep else "dropped",
                escape(_snippet(item.chunk.text)),
            )
        console.print(table)
    if answer.dropped:
        table = Table(title="Dropped evidence", expand=True)
        for col in ("source", "pos", "reason"):
            table.add_column(col)
        for d in answer.dropped:
            table.add_row(escape(d.chunk.chunk.source), str(d.chunk.chunk.position), escape(d.reason))
        console.print(table)
    u = answer.usage
    total_s = sum(answer.timings.values())
    console.print(
        f"[dim]{u.calls} LLM call(s), {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens, "
        f"{total_s:.2f} s ("
        + ", ".join(f"{node} {secs:.2f}" for node, secs in answer.timings.items())
        + ")[/dim]"
    )
    if show_trace:
        console.rule("trace")
        for event in answer.trace:
            console.print(f"[cyan]{escape(event.node)}[/cyan] {event.kind}: {escape(event.message)}")
            if event.kind == "llm_call":
                for m in event.data.get("messages", []):
                    console.print(f"  [magenta]{m['role']}[/magenta]: {escape(m['content'])}")
                if "raw" in event.data:
                    console.print(f"  [green]output[/green]: {escape(str(event.data['raw']))}")


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _has_documents(folder: Path) -> bool:
    return any(p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
               for p in folder.rglob("*"))


def check_folder(docs: Path) -> Path:
    """The documents folder, or a one-line error when it is missing or empty."""
    folder = docs.expanduser()
    if not folder.is_dir():
        raise ConfigError(f"documents folder {folder} does not exist")
    if not _has_documents(folder):
        raise ConfigError(f"no documents in {folder}: add text, Markdown, HTML, PDF or DOCX files")
    return folder


def open_index_for(folder: Path, settings: Any, *, quiet: bool) -> Any:
    """Open the folder's index, indexing it first (with a progress bar) when it has none."""
    from ragpipe.pipeline import open_or_build_index

    if quiet:
        return open_or_build_index(folder, settings)
    from ragpipe.cli.index import _progress_renderer  # the same phased bars as ``ragpipe index``

    bars, on_event = _progress_renderer(_stderr_console())
    with bars:
        return open_or_build_index(folder, settings, progress=on_event)


def _retrieve_only(question: str, index: Any, settings: Any, top_k: int | None) -> None:
    """Print the retrieved chunks and stop (used to measure cold start without an LLM)."""
    from ragpipe.retrieve import Retriever

    hits = Retriever(index.store, index.embedder, settings.retrieval).retrieve(question, k=top_k)
    for hit in hits:
        typer.echo(f"{hit.rank}\t{hit.score:.4f}\t{hit.chunk.source}#{hit.chunk.position}")


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question to answer from the documents."),
    docs: Path = typer.Option(..., "--docs", help="Folder of documents (indexed on first use)."),
    method: str = typer.Option(None, "--method", help="Pipeline preset: fast, listwise, groupwise, meteora (default)."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip the verifier."),
    connector: str = typer.Option(None, "--connector", help="Connector profile (see connectors/)."),
    top_k: int = typer.Option(None, "--top-k", min=1, help="Candidates to retrieve before selection."),
    as_json: bool = typer.Option(False, "--json", help="Print one machine-readable JSON document."),
    trace: bool = typer.Option(False, "--trace", help="Also show every prompt and raw LLM output."),
    config: Path = typer.Option(None, "--config", help="TOML settings file."),
    answer_mode: str = typer.Option(None, "--answer",
                                    help="extractive (quote the evidence, no LLM), generate, or auto (default)."),
    retrieve_only: bool = typer.Option(False, "--retrieve-only", hidden=True, help="Stop after retrieval."),
) -> None:
    """Answer a question from a folder of documents, with numbered citations and an evidence table."""
    try:
        _ask(question, docs, method, no_verify, connector, top_k, as_json, trace, config, retrieve_only, answer_mode)
    except (RagpipeError, typer.Exit, KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as err:  # keep the one-line contract for anything unanticipated
        if os.environ.get("RAGPIPE_DEBUG"):
            raise
        raise UnexpectedError(f"{type(err).__name__}: {err} (set RAGPIPE_DEBUG=1 for the traceback)") from err


def _ask(question: str, docs: Path, method: str | None, no_verify: bool, connector: str | None, top_k: int | None,
         as_json: bool, trace: bool, config: Path | None, retrieve_only: bool, answer_mode: str | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from ragpipe.config import load_settings

    settings = load_settings(config, connector=connector, method=method, retrieval__top_k=top_k,
                             verify=False if no_verify else None, answer=answer_mode)
    folder = check_folder(docs)
    from ragpipe.graph import build_graph

    build_graph(settings.method, verify=settings.verify)  # an unknown method fails before any indexing
    index = open_index_for(folder, settings, quiet=as_json)
    if retrieve_only:
        _retrieve_only(question, index, settings, top_k)
        return
    from ragpipe.pipeline import Pipeline

    pipe = Pipeline.from_settings(index=index, settings=settings)
    answer = pipe.ask(question, trace=trace)
    if as_json:
        json.dump(answer_to_json(answer, method=pipe.method, include_trace=trace), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    from rich.console import Console

    print_answer(answer, console=Console(), show_trace=trace)
