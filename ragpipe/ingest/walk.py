"""Find the files to index under a folder, and refuse the ones that cannot be indexed safely.

Each refused file gets one reason (``Skipped``); nothing here raises for a single bad file.
Hidden files and folders (``.git``, ``.ragpipe``...) and the index's own folder are never walked.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragpipe.ingest.loaders import loader_for


@dataclass(frozen=True)
class FileEntry:
    path: Path
    rel: str  # POSIX path relative to the root: the file's identity in the index
    size: int
    mtime: float


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class WalkResult:
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unsupported: int = 0  # files of a type no loader handles (not errors, just counted)


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def walk_folder(
    root: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    index_dir: Path | None = None,
    max_bytes: int | None = None,
) -> WalkResult:
    """Every loadable file under ``root`` (recursively, sorted), with the refused ones and why."""
    root = root.resolve()
    index_dir = index_dir.resolve() if index_dir else None
    result = WalkResult()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (index_dir is None or (here / d).resolve() != index_dir)
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            rel = path.relative_to(root).as_posix()
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            if loader_for(path) is None:
                result.unsupported += 1
                continue
            reason = _refusal(path, root, max_bytes)
            if reason:
                result.skipped.append(Skipped(rel, reason))
                continue
            stat = path.stat()
            result.files.append(FileEntry(path, rel, stat.st_size, stat.st_mtime))
    return result


def _refusal(path: Path, root: Path, max_bytes: int | None) -> str | None:
    """Why ``path`` must not be loaded, or None."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return "broken symlink"
        if not target.is_relative_to(root):
            return f"symlink points outside the folder ({target})"
    try:
        stat = path.stat()
    except OSError as err:
        return f"cannot stat ({err.strerror})"
    if not path.is_file():
        return "not a regular file"
    if stat.st_size == 0:
        return "empty file"
    if max_bytes is not None and stat.st_size > max_bytes:
        return f"larger than the size limit ({stat.st_size / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB)"
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    return None
