"""The ``ragpipe`` command line. Each command lives in its own module and registers on ``app``.

Errors a user can act on (``RagpipeError``) print one line and exit non-zero; no tracebacks.
The line is printed through the terminal sanitiser (a file name in it cannot inject escapes or
break the line), and every log record is redacted of credentials.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from ragpipe import __version__
from ragpipe.errors import Interrupted, RagpipeError, install_log_redaction

app = typer.Typer(
    name="ragpipe",
    help="LLM-driven RAG evidence pipelines: index a folder, ask it questions, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per command; importing a module registers its command on ``app``.
COMMAND_MODULES = ("doctor", "ask", "graph", "index", "search", "eval", "config")


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
    install_log_redaction()
    from ragpipe.cli.terminal import printable

    try:
        result = app(args=argv, standalone_mode=False)
    except Interrupted as err:
        typer.secho(f"interrupted: {printable(err, one_line=True)}", err=True)
        return err.exit_code
    except RagpipeError as err:
        typer.secho(f"error: {printable(err, one_line=True)}", err=True, fg=typer.colors.RED)
        return err.exit_code
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        return 130
    except BrokenPipeError:  # `ragpipe search ... | head`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        # Usage errors (unknown command, bad option) print click's one-line message, no traceback.
        show, exit_code = getattr(err, "show", None), getattr(err, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        if type(err).__name__ == "Abort":
            return 1
        raise
    # In non-standalone mode click returns the exit code of ``typer.Exit`` instead of raising it;
    # typer turns Ctrl-C into a silent ``Exit(130)``.
    if result == 130:
        typer.secho("interrupted", err=True)
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script wrapper: exit with ``main``'s status."""
    sys.exit(main())
