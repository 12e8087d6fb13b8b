"""``ragpipe ask "question" --docs DIR``: index on first use, answer with numbered citations.

Prints the answer as the model writes it, then its citations and an evidence table (or, with
``--json``, one JSON document with ``answer``, ``citations``, ``evidence``, ``dropped``,
``fallbacks``, ``usage`` and ``timings``). When a node fell back (an LLM call failed, timed out or answered garbage) a line
says so, as does a line for an answer that cites no evidence. Progress, a status line while the
LLM is slow, and errors go to stderr, so ``--json`` output stays machine-readable. Any failure
ends with one line on stderr and a non-zero exit code (with ``--json``, also a JSON error document
on stdout); set ``RAGPIPE_DEBUG=1`` to see the traceback of an unexpected one. Everything taken
from documents or file names is printed through ``printable``.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import typer

from ragpipe.cli import app
from ragpipe.cli.options import SET_OPTION
from ragpipe.cli.output import emit_json
from ragpipe.cli.terminal import console as cli_console
from ragpipe.cli.terminal import markup_safe, printable
from ragpipe.errors import ConfigError, RagpipeError, redact, redact_data
from ragpipe.schema import Answer, ScoredChunk, Verdict

# Trace events that mean a node did not do its job as asked and used a fallback instead.
FALLBACK_KINDS = ("fallback", "llm_error")
STATUS_AFTER_S = 2.0  # a call waits this long before a terminal shows the status line
STATUS_EVERY_S = 30.0  # without a terminal: one status line this often while waiting


class UnexpectedError(RagpipeError):
    """An error ragpipe did not anticipate; shown as one line unless RAGPIPE_DEBUG is set."""

    exit_code = 1

def _verdict(verdicts: dict[str, Verdict], chunk_id: str) -> dict[str, Any] | None:
    verdict = verdicts.get(chunk_id)
    if verdict is None:
        return None
    return {"keep": verdict.keep, "reason": verdict.reason, "flags": list(verdict.flags)}


EVIDENCE_FIELDS = ("chunk_id", "id", "source", "position", "text", "score")


def _evidence_row(item: ScoredChunk, verdicts: dict[str, Verdict]) -> dict[str, Any]:
    return {**item.flat(*EVIDENCE_FIELDS), "verdict": _verdict(verdicts, item.chunk.id)}


def fallbacks(answer: Answer) -> list[dict[str, str]]:
    """Every time a node fell back, as ``{"node", "reason"}`` in the order it happened."""
    return [{"node": e.node, "reason": redact(e.message)} for e in answer.trace if e.kind in FALLBACK_KINDS]


def uncited(answer: Answer) -> bool:
    """True for an answer that cites none of the evidence (a refusal, a guess, broken output)."""
    return not answer.abstained and not answer.citations


def answer_to_json(answer: Answer, *, method: str, include_trace: bool = False) -> dict[str, Any]:
    """The machine-readable form of ``ragpipe ask --json`` (keys are a stable contract)."""
    verdicts = {v.chunk_id: v for v in answer.verdicts}
    doc: dict[str, Any] = {
        "question": answer.question,
        "method": method,
        "answer": answer.text,
        "abstained": answer.abstained,
        "uncited": uncited(answer),
        "answer_mode": answer.mode,
        "citations": [c.model_dump() for c in answer.citations],
        "evidence": [_evidence_row(e, verdicts) for e in answer.evidence],
        "dropped": [
            {**_evidence_row(d.chunk, verdicts), "reason": d.reason, "flags": list(d.flags)} for d in answer.dropped
        ],
        "fallbacks": fallbacks(answer),
        "usage": {
            "total": answer.usage.model_dump(),
            "by_node": {node: usage.model_dump() for node, usage in answer.usage_by_node.items()},
        },
        "timings": answer.timings,
    }
    if include_trace:
        doc["trace"] = [redact_data(event.model_dump()) for event in answer.trace]
    return doc


def error_to_json(err: RagpipeError) -> dict[str, Any]:
    """The JSON document ``ragpipe ask --json`` prints on stdout when the question fails."""
    return {"error": {"type": type(err).__name__, "message": str(err), "exit_code": err.exit_code}}


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def fallback_lines(answer: Answer) -> list[str]:
    """One line per node that fell back (its first reason, and how many more times it did)."""
    by_node: dict[str, list[str]] = {}
    for item in fallbacks(answer):
        by_node.setdefault(item["node"], []).append(item["reason"])
    lines = []
    for node, reasons in by_node.items():
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        lines.append(f"fallback: {node}: {reasons[0]}{more}")
    if uncited(answer):
        lines.append("warning: the answer cites none of the evidence; it may not come from the documents")
    return lines


def print_answer(answer: Answer, *, console: Any, show_trace: bool = False, streamed: str | None = None) -> None:
    """Answer, fallback notes, numbered citations, evidence and dropped tables, usage line (and the trace).

    ``streamed`` is the raw text already written as it was generated; the answer is printed again
    only when checking its citations changed it (a marker removed or renumbered, a retried answer).
    """
    from rich.table import Table

    if streamed is None:
        console.print(f"[bold]{markup_safe(answer.text)}[/bold]")
    elif streamed.strip() != answer.text.strip():
        console.print("[dim]answer with checked citations:[/dim]")
        console.print(f"[bold]{markup_safe(answer.text)}[/bold]")
    if answer.mode == "extracted":
        console.print("[dim](quoted from the documents; no model wrote this answer)[/dim]")
    for line in fallback_lines(answer):
        console.print(f"[yellow]{markup_safe(line, one_line=True)}[/yellow]")
    if answer.citations:
        console.print()
        for c in answer.citations:
            span = f" chars {c.start_char}-{c.end_char}" if c.start_char is not None else ""
            if c.quote_start_char is not None:
                span += f" (sentence {c.quote_start_char}-{c.quote_end_char})"
            console.print(f"  \\[{c.n}] {markup_safe(c.source, one_line=True)} #{c.position}{span}", soft_wrap=True)
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
                f"\\[{cited[item.id]}]" if item.id in cited else "",
                markup_safe(item.chunk.source, one_line=True),
                str(item.chunk.position),
                f"{item.score:.3f}",
                "kept" if v is None or v.keep else "dropped",
                markup_safe(_snippet(item.chunk.text), one_line=True),
            )
        console.print(table)
    if answer.dropped:
        table = Table(title="Dropped evidence", expand=True)
        for col in ("source", "pos", "reason"):
            table.add_column(col)
        for d in answer.dropped:
            table.add_row(markup_safe(d.chunk.chunk.source, one_line=True), str(d.chunk.chunk.position),
                          markup_safe(d.reason, one_line=True))
        console.print(table)
    u = answer.usage
    total_s = sum(answer.timings.values())
    console.print(
        f"[dim]{u.calls} LLM call(s), {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens, "
        f"{total_s:.2f} s ("
        + ", ".join(f"{markup_safe(node)} {secs:.2f}" for node, secs in answer.timings.items())
        + ")[/dim]"
    )
    if show_trace:
        console.rule("trace")
        for event in answer.trace:
            console.print(f"[cyan]{markup_safe(event.node)}[/cyan] {markup_safe(event.kind)}: "
                          f"{markup_safe(redact(event.message))}")
            if event.kind == "llm_call":
                for m in event.data.get("messages", []):
                    console.print(f"  [magenta]{markup_safe(m['role'])}[/magenta]: {markup_safe(redact(m['content']))}")
                if "raw" in event.data:
                    console.print(f"  [green]output[/green]: {markup_safe(redact(str(event.data['raw'])))}")


def _stderr_console() -> Any:
    return cli_console(stderr=True)


def _has_documents(folder: Path) -> bool:
    return any(p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
               for p in folder.rglob("*"))


def check_folder(docs: Path) -> Path:
    """The documents folder, or a one-line error when it is a file, missing or empty."""
    from ragpipe.pipeline import not_a_folder_message

    folder = docs.expanduser()
    if not folder.is_dir():
        raise ConfigError(not_a_folder_message(folder))
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
        typer.echo(f"{hit.rank}\t{hit.score:.4f}\t{printable(hit.chunk.source, one_line=True)}#{hit.chunk.position}")


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question to answer from the documents."),
    docs: Path = typer.Option(..., "--docs", help="Folder of documents (indexed on first use)."),
    index: Path = typer.Option(None, "--index", help="Index folder, when not <docs>/.ragpipe."),
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
    assignments: list[str] = SET_OPTION,
) -> None:
    """Answer a question from a folder of documents, with numbered citations and an evidence table."""
    try:
        _ask(question, docs, method, no_verify, connector, top_k, as_json, trace, config, retrieve_only, answer_mode,
             index, assignments)
    except (typer.Exit, KeyboardInterrupt, BrokenPipeError):
        raise
    except RagpipeError as err:
        _json_error(err, as_json)
        raise
    except Exception as err:  # keep the one-line contract for anything unanticipated
        if os.environ.get("RAGPIPE_DEBUG"):
            raise
        unexpected = UnexpectedError(f"{type(err).__name__}: {err} (set RAGPIPE_DEBUG=1 for the traceback)")
        _json_error(unexpected, as_json)
        raise unexpected from err


def _json_error(err: RagpipeError, as_json: bool) -> None:
    """With ``--json`` a failed question still prints one JSON document on stdout."""
    if as_json:
        emit_json(error_to_json(err))


class StatusLine:
    """A line on stderr while the LLM is slow: rewritten in place on a terminal, periodic otherwise."""

    def __init__(self, budget: Any, stream: Any = None) -> None:
        self.budget = budget
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ragpipe-status", daemon=True)
        self._shown = False

    def __enter__(self) -> StatusLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop and clear the line (safe to call twice); the answer text may follow on the terminal."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        if self._shown and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def text(self) -> str | None:
        waiting = self.budget.waiting()
        if waiting is None:
            return None
        calls = f", {waiting.calls} calls in flight" if waiting.calls > 1 else ""
        left = f"; gives up in {waiting.remaining_s:.0f} s" if waiting.remaining_s is not None else ""
        return f"waiting for the LLM ({printable(waiting.node, one_line=True)}): {waiting.seconds:.0f} s{calls}{left}"

    def _loop(self) -> None:
        last_line = 0.0
        waited = 0.0
        tick = 0.5 if self.tty else min(1.0, STATUS_EVERY_S)
        while not self._stop.wait(tick):
            waiting = self.budget.waiting()
            if waiting is None:
                continue
            waited += tick
            text = self.text()
            if text is None:
                continue
            if self.tty and waiting.seconds >= STATUS_AFTER_S:
                self.stream.write("\r\x1b[K" + text)
                self._shown = True
            elif not self.tty and waited - last_line >= STATUS_EVERY_S:
                self.stream.write(text + "\n")
                last_line = waited
            else:
                continue
            self.stream.flush()


def _ask(question: str, docs: Path, method: str | None, no_verify: bool, connector: str | None, top_k: int | None,
         as_json: bool, trace: bool, config: Path | None, retrieve_only: bool, answer_mode: str | None = None,
         index_path: Path | None = None, assignments: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from ragpipe.config import load_settings

    settings = load_settings(config, assignments=assignments or (), overrides_source="command-line option",
                             connector=connector, method=method, retrieval__top_k=top_k,
                             verify=False if no_verify else None, answer=answer_mode,
                             store__path=str(index_path.expanduser().resolve()) if index_path else None)
    folder = check_folder(docs)
    from ragpipe.graph import build_graph

    build_graph(settings.method, verify=settings.verify)  # an unknown method fails before any indexing
    index = open_index_for(folder, settings, quiet=as_json)
    if index.partial:
        _stderr_console().print(f"[yellow]notice[/]: {markup_safe(index.partial, one_line=True)}")
    if retrieve_only:
        _retrieve_only(question, index, settings, top_k)
        return
    from ragpipe.pipeline import Pipeline

    pipe = Pipeline.from_settings(index=index, settings=settings)
    preload = getattr(pipe.ctx.llm, "preload", None)  # an in-process model loads while retrieval runs
    if callable(preload):
        preload()
    budget = pipe.new_budget()
    if as_json:
        with StatusLine(budget):
            answer = pipe.ask(question, trace=trace, budget=budget)
        emit_json(answer_to_json(answer, method=pipe.method, include_trace=trace))
        return
    if not sys.stdout.isatty():  # a pipe cannot take back streamed text that checking then rejects
        with StatusLine(budget):
            answer = pipe.ask(question, trace=trace, budget=budget)
        print_answer(answer, console=cli_console(), show_trace=trace)
        return
    from ragpipe.llm.base import run_sync

    with StatusLine(budget) as status:
        answer, streamed = run_sync(lambda: stream_answer(pipe, question, trace=trace, budget=budget,
                                                          out=sys.stdout, status=status))
    print_answer(answer, console=cli_console(), show_trace=trace, streamed=streamed)


async def stream_answer(pipe: Any, question: str, *, trace: bool, budget: Any, out: Any,
                        status: StatusLine | None = None) -> tuple[Answer, str | None]:
    """Write the answer to ``out`` as the model generates it; returns the final answer and the raw text.

    The first piece of text ends the status line, so the two never share a terminal line. When
    checking replaced the streamed text (a degenerate answer retried or quoted from the evidence,
    citations renumbered), a terminal gets the streamed text erased and the raw text is ``None``:
    only the checked answer stays on screen.
    """
    from ragpipe.generate.generator import AnswerEvent

    pieces: list[str] = []
    answer: Answer | None = None
    async for event in pipe.astream(question, trace=trace, budget=budget):
        if isinstance(event, AnswerEvent):
            answer = event.answer
            continue
        if not event.text:
            continue
        if status is not None and not pieces:
            status.stop()
        pieces.append(event.text)
        out.write(printable(event.text))
        out.flush()
    if pieces:
        out.write("\n")
        out.flush()
    assert answer is not None, "the answer stream ended without its answer"
    streamed = "".join(pieces)
    if streamed.strip() != answer.text.strip() and take_back(out, printable(streamed)):
        return answer, None
    return answer, streamed


def take_back(out: Any, printed: str) -> bool:
    """Erase ``printed`` (just written to ``out``, then a newline) from a terminal; False elsewhere."""
    if not printed or not bool(getattr(out, "isatty", lambda: False)()):
        return False
    columns = max(1, shutil.get_terminal_size().columns)
    rows = sum(max(1, math.ceil(len(line) / columns)) for line in printed.split("\n"))
    out.write(f"\x1b[{rows}F\x1b[J")  # up to the first streamed row, then clear to the end of the screen
    out.flush()
    return True
