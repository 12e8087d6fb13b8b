"""ragpipe: LLM-driven RAG evidence pipelines.

Importing the package is cheap on purpose: heavy libraries (torch, chromadb,
llama.cpp, langchain) are imported by the modules that need them, when used.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("ragpipe")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
