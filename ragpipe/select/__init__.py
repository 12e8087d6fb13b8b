"""Evidence selectors: a registry of methods that rank candidates and keep the evidence.

Built-in selectors register themselves when their module is imported; third-party selectors
register through the ``ragpipe.selectors`` entry-point group. Adding one is a module, a prompt
file, a ``@register_selector`` line and a test file.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from ragpipe.errors import ConfigError
from ragpipe.select.base import _REGISTRY, register_selector

_BUILTIN_MODULES = ("retrieval_order", "listwise", "groupwise", "pairwise", "pointwise", "meteora")
_loaded = False

def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(f"ragpipe.select.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"ragpipe.select.{module}":
                raise
    for entry in entry_points(group="ragpipe.selectors"):
        entry.load()


def available_selectors() -> list[str]:
    """Names of every registered selector."""
    _load_all()
    return sorted(_REGISTRY)


def selector_configs() -> dict[str, type[BaseModel]]:
    """The options model of every registered selector, by name (what ``[select.<name>]`` accepts)."""
    _load_all()
    return {name: cls.Config for name, cls in sorted(_REGISTRY.items())}


def get_selector(name: str, **config: Any) -> Any:
    """An instance of the selector registered as ``name``, configured with ``config``."""
    _load_all()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown selector '{name}'; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**config)


__all__ = ["register_selector", "available_selectors", "get_selector", "selector_configs"]
