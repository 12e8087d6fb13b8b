"""``ragpipe doctor``: what is installed and usable here, and what to do about what is not. Offline."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import sqlite3
import sys
from typing import Any
from urllib.parse import urlparse

import typer

from ragpipe.cli import app
from ragpipe.cli.output import emit_json
from ragpipe.cli.terminal import printable
from ragpipe.errors import RagpipeError

OPTIONAL = {
    "llama_cpp": ("llama-cpp-python", "embedded llama.cpp backend and llama.cpp server", "local"),
    "vllm": ("vllm", "in-process vLLM backend (GPU)", "vllm"),
    "ranx": ("ranx", "IR metrics for eval runs", "eval"),
    "matplotlib": ("matplotlib", "plots in eval reports", "eval"),
}
REQUIRED = {
    "chromadb": "chromadb",
    "sentence_transformers": "sentence-transformers",
    "torch": "torch",
    "openai": "openai",
    "bm25s": "bm25s",
    "langchain_core": "langchain-core",
    "llama_index.core": "llama-index-core",
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _reachable(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def collect_checks(connector: str | None = None, probe: bool = False) -> list[dict[str, str]]:
    """Each check as {name, status: ok|missing|warn, detail}."""
    from ragpipe.config import load_settings
    from ragpipe.models import packaged_minilm, packaged_smollm2
    from ragpipe.prompts import PromptRegistry

    checks: list[dict[str, str]] = []

    def add(name: str, status: str, detail: str) -> None:
        checks.append({"name": name, "status": status, "detail": detail})

    add("python", "ok" if sys.version_info >= (3, 11) else "missing", sys.version.split()[0])
    sqlite_ok = sqlite3.sqlite_version_info >= (3, 35, 0)
    add("sqlite3", "ok" if sqlite_ok else "missing", f"{sqlite3.sqlite_version} (chromadb needs >= 3.35)")
    for module, dist in REQUIRED.items():
        version = _version(dist)
        add(dist, "ok" if version and _installed(module) else "missing", version or f"pip install {dist}")
    for module, (dist, purpose, extra) in OPTIONAL.items():
        version = _version(dist)
        ok = version is not None and _installed(module)
        add(dist, "ok" if ok else "missing", f"{version} ({purpose})" if ok else f"{purpose}: pip install 'ragpipe[{extra}]'")
    for name, locate in (("model: SmolLM2-135M-Instruct", packaged_smollm2), ("model: all-MiniLM-L6-v2", packaged_minilm)):
        try:
            add(name, "ok", str(locate()))
        except RagpipeError as err:
            add(name, "missing", str(err))
    try:
        registry = PromptRegistry()
        for prompt in registry.names():
            registry.get(prompt)
        add("prompts", "ok", f"{len(registry.names())} prompt files in {registry.dirs[-1]}")
    except RagpipeError as err:
        add("prompts", "missing", str(err))

    try:
        settings = load_settings(connector=connector)
    except RagpipeError as err:
        add("settings", "missing", str(err))
        return checks
    llm = settings.llm
    add("connector", "ok", f"{settings.connector}: llm={llm.backend}:{llm.model} store={settings.store.kind}")
    if llm.api_key_env:
        has_key = bool(os.environ.get(llm.api_key_env))
        needs_key = "api.openai.com" in (llm.base_url or "")
        status = "ok" if has_key or not needs_key else "missing"
        add("api key", status, f"{llm.api_key_env} is {'set' if has_key else 'not set'}")
    if llm.backend == "openai" and llm.base_url:
        if probe:
            up = _reachable(llm.base_url)
            add("llm server", "ok" if up else "warn", f"{llm.base_url} {'answers' if up else 'does not answer'}")
        else:
            add("llm server", "ok", f"{llm.base_url} (not probed; use --probe)")
    if settings.store.kind == "http":
        url = f"http://{settings.store.host}:{settings.store.port}"
        if probe:
            up = _reachable(url)
            add("chroma server", "ok" if up else "warn", f"{url} {'answers' if up else 'does not answer'}")
        else:
            add("chroma server", "ok", f"{url} (not probed; use --probe)")
    add("query encoder", *_query_encoder_check(settings))
    if _installed("torch"):
        import torch

        add("gpu", "ok", "CUDA available" if torch.cuda.is_available() else "none (CPU only)")
    return checks


def _query_encoder_check(settings: Any) -> tuple[str, str]:
    """Whether questions are embedded without torch (an ONNX export made at first indexing)."""
    from ragpipe.ingest.onnx_encoder import FAILED_FILE, META_FILE, encoder_dir

    if settings.embedding.backend != "sentence-transformers" or settings.embedding.query_runtime == "torch":
        return "ok", f"{settings.embedding.backend} (query_runtime={settings.embedding.query_runtime})"
    folder = encoder_dir(settings.embedding)
    if folder is None:
        return "ok", "sentence-transformers (model is not a local folder; no ONNX export)"
    if (folder / META_FILE).is_file():
        return "ok", f"ONNX export in {folder}"
    if (folder / FAILED_FILE).is_file():
        return "warn", f"ONNX export failed, queries load torch: {(folder / FAILED_FILE).read_text()[:200]}"
    return "ok", "sentence-transformers until the first index run exports an ONNX copy"


@app.command()
def doctor(
    connector: str = typer.Option(None, "--connector", help="Connector profile to check (default: the configured one)."),
    probe: bool = typer.Option(False, "--probe", help="Also try to connect to configured servers."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check which backends, models and stores are available here, and why not."""
    checks = collect_checks(connector, probe)
    if as_json:
        emit_json({"checks": checks})
    else:
        marks = {"ok": "ok  ", "missing": "MISS", "warn": "warn"}
        width = max(len(c["name"]) for c in checks)
        for c in checks:
            typer.echo(f"[{marks[c['status']]}] {c['name']:<{width}}  {printable(c['detail'], one_line=True)}")
    core_missing = [c for c in checks if c["status"] == "missing" and c["name"] not in {d for d, _, _ in OPTIONAL.values()}]
    raise typer.Exit(1 if core_missing else 0)
