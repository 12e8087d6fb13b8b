"""Find the files to index under a folder, and refuse the ones that cannot be indexed safely.

Each refused file gets one reason (``Skipped``); nothing here raises for a single bad file.
Hidden files and folders (``.git``, ``.ragpipe``...) and the index's own folder are never walked;
symlinked folders are never followed (no loops), an unreadable folder is listed with its reason,
and a file reached by several paths (symlink, hard link) is indexed once.
"""

from __future__ import annotations

import errno
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

    def unreadable(err: OSError) -> None:
        folder = Path(err.filename or "")
        if folder != root:
            rel = folder.relative_to(root).as_posix() + "/"
            result.skipped.append(Skipped(rel, f"unreadable folder ({err.strerror or err})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (index_dir is None or (here / d).resolve() != index_dir)
        )
        for name in [d for d in dirnames if (here / d).is_symlink()]:
            dirnames.remove(name)  # never followed: no loops, nothing from outside the folder
            rel = (here / name).relative_to(root).as_posix()
            if not (include and not _matches(rel, include)) and not (exclude and _matches(rel, exclude)):
                result.skipped.append(Skipped(rel + "/", "symlinked folder (not followed)"))
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
    _drop_duplicates(result)
    result.skipped.sort(key=lambda s: s.path)
    return result


def _drop_duplicates(result: WalkResult) -> None:
    """One entry per real file: symlinks and hard links to a file already listed are skipped.

    The file itself (not a link) is kept when it is in the folder, else the first path in order.
    """
    by_inode: dict[tuple[int, int], list[FileEntry]] = {}
    for entry in result.files:
        stat = entry.path.stat()
        by_inode.setdefault((stat.st_dev, stat.st_ino), []).append(entry)
    dropped: set[str] = set()
    for entries in by_inode.values():
        if len(entries) < 2:
            continue
        keep = min(entries, key=lambda e: (e.path.is_symlink(), e.rel))
        for entry in entries:
            if entry is not keep:
                dropped.add(entry.rel)
                result.skipped.append(Skipped(entry.rel, f"same file as {keep.rel} (indexed once)"))
    if dropped:
        result.files = [e for e in result.files if e.rel not in dropped]


def _refusal(path: Path, root: Path, max_bytes: int | None) -> str | None:
    """Why ``path`` must not be loaded, or None."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except RuntimeError:
            return "symlink loop"
        except OSError as err:
            return "symlink loop" if err.errno == errno.ELOOP else "broken symlink"
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
