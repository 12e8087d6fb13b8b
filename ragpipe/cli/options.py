"""Options several commands share, declared once so their names and help stay the same."""

from __future__ import annotations

import typer

SET_OPTION = typer.Option([], "--set", metavar="SECTION.KEY=VALUE",
                          help="Set any setting (repeatable), e.g. --set retrieval.top_k=10.")
