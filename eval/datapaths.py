"""Where the evaluation data is: one convention for every benchmark script.

The data folder is ``--data DIR`` if given, else the ``RAGPIPE_DATA`` environment variable, else
the ``shared/data`` folder beside the repository (``<repo>/../shared/data``). Each dataset is a
sub-folder named after it; ``eval/datasets.md`` says where each public dataset comes from and
how to lay it out.

Every script calls :func:`add_data_arguments` on its parser and :func:`open_data` before it
loads any model. ``--check-data`` stops there: it prints the datasets found with their record
counts and exits 0, so a moved or incomplete folder is caught in a second, without models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DATASETS_DOC = "eval/datasets.md"


class DataError(Exception):
    """A missing or incomplete data folder; the message says which files and what to do."""


@dataclass(frozen=True)
class DataFolder:
    """The resolved data folder, how it was chosen, and the datasets a run found in it."""

    root: Path
    source: str
    counts: dict[str, int]

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def describe(self) -> dict[str, object]:
        """What a results file records about the data it ran on."""
        return {"folder": str(self.root), "chosen_by": self.source, "datasets": dict(self.counts)}


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--data`` and ``--check-data`` to a benchmark's parser."""
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help=f"evaluation data folder (default: $RAGPIPE_DATA, else {DEFAULT_DATA}); layout in {DATASETS_DOC}",
    )
    parser.add_argument(
        "--check-data",
        action="store_true",
        help="check that the datasets this run needs are present, print their sizes and exit",
    )


def resolve_data_root(cli_value: str | None = None) -> tuple[Path, str]:
    """The data folder and what chose it: the flag, the environment, or the default."""
    if cli_value:
        return Path(cli_value).expanduser().resolve(), "--data"
    env = os.environ.get("RAGPIPE_DATA")
    if env:
        return Path(env).expanduser().resolve(), "RAGPIPE_DATA"
    return DEFAULT_DATA.resolve(), "default"


def count_records(path: Path) -> int:
    """Records in a dataset file: JSON lines, or data rows of a TSV with a header."""
    with path.open(encoding="utf-8") as fh:
        lines = sum(1 for line in fh if line.strip())
    return lines - 1 if path.suffix == ".tsv" else lines


def open_data(args: argparse.Namespace, needs: dict[str, tuple[str, ...]]) -> DataFolder:
    """Resolve and check the data folder for a script run; exit 2 with the reason if it is unusable.

    ``needs`` maps a dataset name to the files the script reads from its folder (the first one is
    counted). With ``--check-data`` the datasets are listed with their record counts and the
    process exits 0.
    """
    try:
        data = find_data(getattr(args, "data", None), needs)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if getattr(args, "check_data", False):
        print(json.dumps(data.describe(), indent=2))
        raise SystemExit(0)
    return data


def find_data(cli_value: str | None, needs: dict[str, tuple[str, ...]]) -> DataFolder:
    """The data folder with each dataset in ``needs`` checked; :class:`DataError` names what is missing."""
    root, source = resolve_data_root(cli_value)
    if not root.is_dir():
        raise DataError(
            f"data folder {root} (chosen by {source}) does not exist: pass --data DIR or set RAGPIPE_DATA; "
            f"see {DATASETS_DOC} for where each dataset comes from and how to lay it out"
        )
    counts: dict[str, int] = {}
    problems: list[str] = []
    for name, files in needs.items():
        folder = root / name
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            problems.append(f"{folder}: missing {', '.join(missing)} (expected {', '.join(files)})")
            continue
        counts[name] = count_records(folder / files[0])
    if problems:
        raise DataError(
            f"incomplete data folder {root} (chosen by {source}):\n  "
            + "\n  ".join(problems)
            + f"\nsee {DATASETS_DOC} for each dataset's source and layout, or pass --datasets to run fewer"
        )
    return DataFolder(root=root, source=source, counts=counts)
