"""``ragpipe graph --method X``: print a pipeline preset as ASCII (default), Mermaid or JSON."""

from __future__ import annotations

import typer

from ragpipe.cli import app
from ragpipe.cli.output import emit_json


@app.command()
def graph(
    method: str = typer.Option("meteora", "--method", help="Preset or selector name: fast, listwise, groupwise, meteora, …"),
    no_verify: bool = typer.Option(False, "--no-verify", help="Show the graph without the verifier."),
    mermaid: bool = typer.Option(False, "--mermaid", help="Print Mermaid flowchart text instead of ASCII."),
    as_json: bool = typer.Option(False, "--json", help="Print the node tree as one JSON document."),
) -> None:
    """Show the nodes a pipeline runs, and what each reads and writes."""
    from ragpipe.graph import build_graph

    built = build_graph(method, verify=not no_verify)
    if as_json:
        from ragpipe.graph.draw import describe

        emit_json({"method": method, "verify": not no_verify, "graph": describe(built)})
        return
    typer.echo(built.draw_mermaid() if mermaid else built.draw_ascii())
