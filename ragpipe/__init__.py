"""ragpipe: LLM-driven RAG evidence pipelines.

Importing the package is cheap on purpose: heavy libraries (torch, chromadb,
llama.cpp, langchain) are imported by the modules that need them, when used.
``ragpipe.Pipeline`` and ``ragpipe.Answer`` are resolved on first access.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import Any

try:
    __version__ = _version("ragpipe")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+local"

_LAZY = {
    "Pipeline": "ragpipe.pipeline",
    "Answer": "ragpipe.schema",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ragpipe' has no attribute {name!r}")


__all__ = ["__version__", "Pipeline", "Answer"]
