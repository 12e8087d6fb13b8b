"""Locate the data folders shipped with ragpipe (prompts, connector profiles).

In a wheel they live inside the package as ``ragpipe/_prompts`` and
``ragpipe/_connectors``; in a source checkout they are the top-level
``prompts/`` and ``connectors/`` folders.
"""

from __future__ import annotations

from pathlib import Path

from ragpipe.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder of shipped data called ``name`` ("prompts" or "connectors")."""
    for candidate in (_PACKAGE_DIR / f"_{name}", _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        f"ragpipe's '{name}' folder is missing from the installation ({_PACKAGE_DIR}); reinstall ragpipe"
    )
