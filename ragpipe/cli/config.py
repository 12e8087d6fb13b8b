"""``ragpipe config show`` (every effective setting and where it came from) and ``config check FILE``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ragpipe.cli import app
from ragpipe.cli.options import SET_OPTION

config_app = typer.Typer(help="Show the effective settings, or check a settings file.", no_args_is_help=True)
app.add_typer(config_app, name="config")

def effective_settings(settings: Any, layers: Any) -> list[dict[str, Any]]:
    """Every setting as ``{"key", "value", "source"}``, with the active method's and the verifier's options."""
    from ragpipe.config import option_models
    from ragpipe.settings_layers import dotted, flatten

    data = settings.model_dump(mode="json", exclude={"select", "verifier"})
    tables = [method for method in (settings.method, *settings.select) if method in option_models()]
    for method in dict.fromkeys(tables):
        data.setdefault("select", {})[method] = settings.selector_config(method).model_dump(mode="json")
    data["verifier"] = settings.verifier_config().model_dump(mode="json")
    return [{"key": dotted(key), "value": value, "source": layers.source_of(key) or "default"}
            for key, value in flatten(data)]


@config_app.command("show")
def show(
    config: Path = typer.Option(None, "--config", help="TOML settings file."),
    connector: str = typer.Option(None, "--connector", help="Connector profile (see connectors/)."),
    method: str = typer.Option(None, "--method", help="Show this method's options (default: the method setting)."),
    assignments: list[str] = SET_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print one machine-readable JSON document."),
) -> None:
    """Print every effective setting, its value and its source (default, profile, file, env var, flag)."""
    from ragpipe.config import resolve_settings

    settings, layers = resolve_settings(config, assignments=assignments, overrides_source="command-line option",
                                        connector=connector, method=method)
    rows = effective_settings(settings, layers)
    if as_json:
        from ragpipe.cli.output import emit_json

        emit_json({"settings": rows})
        return
    width = min(56, max(len(row["key"]) + len(_shown(row["value"])) for row in rows) + 3)
    for row in rows:
        assignment = f"{row['key']} = {_shown(row['value'])}"
        typer.echo(f"{assignment:<{width}}  # {row['source']}")


@config_app.command("check")
def check(file: Path = typer.Argument(..., help="TOML settings file to validate.")) -> None:
    """Validate a settings file (over its connector profile's defaults; the environment is ignored)."""
    from ragpipe.config import resolve_settings

    _settings, layers = resolve_settings(file, environ={})
    count = sum(1 for source in layers.sources.values() if source.startswith("config file"))
    typer.echo(f"{file}: ok ({count} setting{'s' if count != 1 else ''})")


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
