"""A corpus of clean technical text found on the machine: the cheap signals must stay quiet on it.

It is gathered at test time, never copied into the repository: the standard library's own
documentation (rendered by ``pydoc``), the manual pages under ``/usr/share/man/man1`` and the
long descriptions (READMEs) of installed distributions under permissive licences. These are
code-heavy (``print("...")``, "Output:" examples, shell sessions, chat-template and LLM API
docs that talk about assistants and system prompts), exactly where loose instruction patterns
misfire.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.metadata as metadata
import pydoc
import re
from collections.abc import Iterator
from pathlib import Path

STDLIB_MODULES = (
    "argparse subprocess json pathlib logging unittest.mock doctest sqlite3 re shutil tarfile zipfile csv "
    "http.server urllib.request socket ssl threading multiprocessing concurrent.futures functools itertools "
    "collections dataclasses typing datetime string textwrap pdb timeit venv email.message configparser hashlib "
    "secrets base64 tempfile glob inspect ast tokenize traceback warnings contextlib enum pprint difflib "
    "gettext codecs io struct pickle heapq bisect weakref statistics random decimal"
).split()
PERMISSIVE = re.compile(r"\b(MIT|BSD|Apache|PSF|Python Software Foundation|ISC)\b")
_ROFF = re.compile(r"^\.[A-Za-z]+\s?|\\f[BIRP]|\\-|\\\(..|\\&|\\e", re.MULTILINE)


def chunks_of(text: str, size: int = 900) -> Iterator[str]:
    """Paragraph-packed chunks of about ``size`` characters, as the ingest chunker makes them."""
    buffer = ""
    for paragraph in re.split(r"\n\s*\n", text):
        if buffer and len(buffer) + len(paragraph) > size:
            yield buffer.strip()
            buffer = ""
        buffer += paragraph + "\n\n"
    if buffer.strip():
        yield buffer.strip()


def stdlib_docs() -> Iterator[tuple[str, str]]:
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        yield f"pydoc:{name}", pydoc.render_doc(module, renderer=pydoc.plaintext)


def man_pages(limit: int = 150) -> Iterator[tuple[str, str]]:
    folder = Path("/usr/share/man/man1")
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.1*.gz"))[:limit]:
        try:
            raw = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        except (OSError, EOFError):
            continue
        yield f"man:{path.name}", _ROFF.sub("", raw)


def package_readmes() -> Iterator[tuple[str, str]]:
    for dist in metadata.distributions():
        meta = dist.metadata
        text = meta.get("Description") or (meta.get_payload() if hasattr(meta, "get_payload") else "") or ""
        licence = " ".join([meta.get("License") or "", *(meta.get_all("Classifier") or [])])
        if len(text) > 1500 and PERMISSIVE.search(licence) and meta.get("Name") != "ragpipe":
            yield f"readme:{meta.get('Name')}", text


def clean_technical_chunks() -> list[tuple[str, str]]:
    """(source, chunk text) over every source available on this machine."""
    out = []
    for source, text in (*stdlib_docs(), *man_pages(), *package_readmes()):
        out.extend((source, chunk) for chunk in chunks_of(text) if len(chunk) > 80)
    return out
