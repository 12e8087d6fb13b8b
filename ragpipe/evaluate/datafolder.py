"""Where the evaluation data is: one convention for ``ragpipe eval`` and every ``eval/`` script.

The data folder is the one given on the command line (``--data DIR``), else the ``RAGPIPE_DATA``
environment variable, else ``shared/data`` beside the source checkout (``<checkout>/../shared/data``).
Each dataset is a sub-folder named after it; ``eval/datasets.md`` says where each public dataset
comes from and how to lay it out. Checking a folder reads every file it needs once (counting
records and the first record's fields), so a moved, partial or mis-converted folder is reported
before any model is loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ragpipe.errors import ConfigError

ENV_VAR = "RAGPIPE_DATA"
DATASETS_DOC = "eval/datasets.md"
CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = CHECKOUT.parent / "shared" / "data"

# Fields the first record of each known file must have (the rest of a record is free).
JSONL_FIELDS: dict[str, tuple[str, ...]] = {
    "corpus.jsonl": ("_id", "text"),
    "queries.jsonl": ("_id", "text"),
    "qa.jsonl": ("id", "question", "answers", "contexts"),
    "poison.jsonl": ("id", "question", "target_answer", "poisoned_texts"),
}
TSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "qrels.tsv": ("query-id", "corpus-id", "score"),
    "qrels_all.tsv": ("query-id", "corpus-id", "score"),
    "run_bm25_top100.tsv": ("query-id", "corpus-id", "rank", "score"),
    "run_candidates.tsv": ("query-id", "corpus-id", "rank", "score"),
}


class DataError(ConfigError):
    """A missing or incomplete data folder; the message names the folder, the files and what to do."""


@dataclass(frozen=True)
class DataFolder:
    """The resolved data folder, what chose it, and the records of each dataset file a run checked."""

    root: Path
    source: str
    files: dict[str, dict[str, int]] = field(default_factory=dict)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def counts(self) -> dict[str, int]:
        """Records per dataset: those of the first file the run needs from it (its queries or questions)."""
        return {name: next(iter(files.values())) for name, files in self.files.items() if files}

    def describe(self) -> dict[str, object]:
        """What a results file records about the data it ran on."""
        return {"folder": display_path(self.root), "chosen_by": self.source, "datasets": self.counts,
                "files": {name: dict(files) for name, files in self.files.items()}}


def display_path(path: Path) -> str:
    """``path`` relative to the checkout when it is beside it (the default layout), else absolute."""
    try:
        return os.path.relpath(path, CHECKOUT) if path.is_relative_to(CHECKOUT.parent) else str(path)
    except ValueError:  # another drive
        return str(path)


def resolve_data_root(cli_value: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The data folder and what chose it: ``--data``, the ``RAGPIPE_DATA`` variable, or the default."""
    if cli_value:
        return Path(cli_value).expanduser().resolve(), "--data"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve(), ENV_VAR
    return DEFAULT_DATA.resolve(), "default"


def missing_root_message(root: Path, source: str) -> str:
    return (f"data folder {root} (chosen by {source}) does not exist: pass --data DIR or set {ENV_VAR}; "
            f"see {DATASETS_DOC} for where each dataset comes from and how to lay it out")


def count_records(path: Path) -> int:
    """Records in a dataset file (JSON lines, or the data rows of a TSV with a header); checks the format.

    The first record of a known file must have its format's fields, so a wrongly converted file is
    named here rather than failing deep inside a benchmark.
    """
    with path.open(encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    if path.suffix == ".tsv":
        header = lines[0].rstrip("\n").split("\t") if lines else []
        wanted = TSV_COLUMNS.get(path.name, ())
        if wanted and tuple(header[: len(wanted)]) != wanted:
            raise DataError(f"{path}: header {header} is not {list(wanted)} (tab-separated); see {DATASETS_DOC}")
        return max(0, len(lines) - 1)
    if lines and path.suffix == ".jsonl":
        try:
            first = json.loads(lines[0])
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:1: not valid JSON ({err}); see {DATASETS_DOC}") from None
        missing = [key for key in JSONL_FIELDS.get(path.name, ()) if not isinstance(first, dict) or key not in first]
        if missing:
            raise DataError(f"{path}:1: record lacks {', '.join(missing)}; see {DATASETS_DOC} for the format")
    return len(lines)


def find_data(cli_value: str | os.PathLike[str] | None, needs: Mapping[str, Iterable[str]],
              *, fewer_hint: str | None = None) -> DataFolder:
    """The data folder with each dataset in ``needs`` (name -> files read from its folder) checked.

    Raises :class:`DataError` naming the folder, every missing or empty file and ``eval/datasets.md``;
    ``fewer_hint`` (e.g. "pass --datasets to run fewer") ends the message where a run can skip datasets.
    """
    root, source = resolve_data_root(cli_value)
    if not root.is_dir():
        raise DataError(missing_root_message(root, source))
    found: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for name, wanted in needs.items():
        files = tuple(wanted)
        folder = root / name
        missing = [f for f in files if not (folder / f).is_file()]
        if not folder.is_dir():
            problems.append(f"{folder}: no such folder (needs {', '.join(files)})")
            continue
        if missing:
            problems.append(f"{folder}: missing {', '.join(missing)} (needs {', '.join(files)})")
            continue
        counts = {f: count_records(folder / f) for f in files}
        empty = [f for f, n in counts.items() if n == 0]
        if empty:
            problems.append(f"{folder}: no records in {', '.join(empty)}")
            continue
        found[name] = counts
    if problems:
        hint = f", or {fewer_hint}" if fewer_hint else ""
        raise DataError(f"incomplete data folder {root} (chosen by {source}):\n  " + "\n  ".join(problems)
                        + f"\nsee {DATASETS_DOC} for each dataset's source and layout{hint}")
    return DataFolder(root=root, source=source, files=found)


def merge_descriptions(records: Iterable[Mapping[str, object] | None]) -> dict[str, object] | None:
    """One ``describe()`` record for results merged from several runs (their datasets together)."""
    present = [r for r in records if r]
    if not present:
        return None
    merged: dict[str, object] = {key: _one_or_all(r[key] for r in present) for key in ("folder", "chosen_by")}
    merged |= {"datasets": {}, "files": {}}
    for record in present:
        merged["datasets"].update(record.get("datasets", {}))  # type: ignore[union-attr]
        merged["files"].update(record.get("files", {}))  # type: ignore[union-attr]
    return merged


def _one_or_all(values: Iterable[object]) -> object:
    distinct = list(dict.fromkeys(str(v) for v in values))
    return distinct[0] if len(distinct) == 1 else distinct


def format_description(data: DataFolder) -> str:
    """The lines ``--check-data`` prints: the folder, then each dataset with its files' record counts."""
    lines = [f"data folder {data.root} (chosen by {data.source})"]
    width = max((len(name) for name in data.files), default=0)
    for name, files in data.files.items():
        lines.append(f"  {name:<{width}}  " + ", ".join(f"{f}: {n}" for f, n in files.items()))
    return "\n".join(lines)
