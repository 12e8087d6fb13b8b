"""The ``ragpipe`` command line. Each command lives in its own module and registers on ``app``.

Errors a user can act on (``RagpipeError``) print one line and exit non-zero; no tracebacks.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ragpipe import __version__
from ragpipe.errors import RagpipeError

app = typer.Typer(
    name="ragpipe",
    help="LLM-driven RAG evidence pipelines: index a folder, ask it questions, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per command; importing a module registers its command on ``app``.
COMMAND_MODULES = ("doctor",)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ragpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """ragpipe: better evidence than top-k, fewer tokens, safe against poisoned documents."""


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"ragpipe.cli.{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ragpipe`` script."""
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except RagpipeError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        return err.exit_code
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        return 130
    except typer.Exit as exit_:
        return exit_.exit_code
    except Exception as err:  # click usage errors and the like
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            return err.exit_code
        if isinstance(err, click.exceptions.Abort):
            return 1
        raise
    return 0


def run() -> None:
    """Console-script wrapper: exit with ``main``'s status."""
    sys.exit(main())
