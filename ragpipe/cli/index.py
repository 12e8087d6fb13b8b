"""``ragpipe index DIR``: bring a folder's index up to date, with a phased progress bar and a summary."""

from __future__ import annotations

from pathlib import Path

import typer

from ragpipe.cli import app
from ragpipe.cli.options import SET_OPTION
from ragpipe.cli.output import emit_json
from ragpipe.cli.terminal import console as cli_console
from ragpipe.cli.terminal import markup_safe


def _progress_renderer(console):  # noqa: ANN001, ANN202 - rich types imported lazily
    """A rich progress display with one bar per phase (parse files, embed chunks, write files).

    Without a terminal (a log, a pipe) bars would print nothing until the end: plain lines instead.
    """
    if not console.is_terminal:
        import contextlib

        from ragpipe.ingest.report import ProgressLines

        return contextlib.nullcontext(), ProgressLines(console.file)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description:<6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, int] = {}
    units = {"parse": "files", "embed": "chunks", "write": "files"}

    def on_event(event) -> None:  # noqa: ANN001
        if event.phase not in units:
            return
        if event.phase not in tasks:
            tasks[event.phase] = bars.add_task(event.phase, total=event.total, unit=units[event.phase], rate="")
        rate = f"{event.embeddings_per_s:.1f} emb/s" if event.embeddings_per_s else ""
        update = {"rate": rate} if rate else {}
        bars.update(tasks[event.phase], completed=event.done, total=event.total, **update)

    return bars, on_event


def _summary(report, console) -> None:  # noqa: ANN001
    prefix = "dry run, nothing written: " if report.dry_run else ""
    console.print(
        f"{prefix}[bold]{markup_safe(report.index_dir, one_line=True)}[/]: added {len(report.added)}, updated {len(report.updated)}, "
        f"removed {len(report.removed)}, unchanged {report.unchanged}, skipped {len(report.skipped)} files"
    )
    if not report.dry_run:
        console.print(
            f"chunks: +{report.chunks_added} -{report.chunks_removed}"
            + (f" (total {report.chunks_total})" if report.chunks_total is not None else "")
            + f"; embedded {report.embedded} at {report.embeddings_per_s:.1f}/s; {report.seconds:.1f} s"
        )
    for skipped in report.skipped:
        console.print(f"  [yellow]skipped[/] {markup_safe(skipped.path, one_line=True)}: "
                      f"{markup_safe(skipped.reason, one_line=True)}")
    if report.unsupported:
        console.print(f"  ({report.unsupported} files of unsupported types ignored)")
    for event in report.trace:
        console.print(f"  [dim]{markup_safe(event.kind)}[/]: {markup_safe(event.message, one_line=True)}")


@app.command()
def index(
    docs_dir: Path = typer.Argument(..., help="Folder of documents to index (recursively)."),
    index_path: Path | None = typer.Option(None, "--index", help="Where the index lives (default: DIR/.ragpipe)."),
    include: list[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Skip files matching this glob (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
    config: Path | None = typer.Option(None, "--config", help="TOML config file."),
    connector: str | None = typer.Option(None, "--connector", help="Connector profile (e.g. chroma-server)."),
    assignments: list[str] = SET_OPTION,
) -> None:
    """Index DIR: new and changed files are embedded, deleted files removed, unchanged files skipped."""
    import logging

    from ragpipe.config import load_settings
    from ragpipe.ingest import index_folder

    overrides: dict[str, object] = {"connector": connector, "store__path": str(index_path) if index_path else None}
    if include:
        overrides["chunking__include"] = include
    if exclude:
        overrides["chunking__exclude"] = exclude
    settings = load_settings(config, assignments=assignments, overrides_source="command-line option", **overrides)
    console = cli_console(stderr=True)
    logging.getLogger("ragpipe.ingest").setLevel(logging.ERROR)  # skips are listed in the summary
    if as_json:
        report = index_folder(docs_dir, settings, dry_run=dry_run)
        emit_json(report.to_dict())
        return
    bars, on_event = _progress_renderer(console)
    with bars:
        report = index_folder(docs_dir, settings, dry_run=dry_run, progress=on_event)
    _summary(report, console)
