"""Where the evaluation data is, for every benchmark script: ``--data`` and ``--check-data``.

The data folder is ``--data DIR`` if given, else the ``RAGPIPE_DATA`` environment variable, else
the ``shared/data`` folder beside the repository (``<repo>/../shared/data``); ``ragpipe eval``
follows the same rule (the convention itself lives in ``ragpipe.evaluate.datafolder``). Each
dataset is a sub-folder named after it; ``eval/datasets.md`` says where each public dataset comes
from and how to lay it out.

Every script calls :func:`add_data_arguments` on its parser and :func:`open_data` right after
parsing, before it loads any model. ``--check-data`` stops there: it prints the datasets found
with their record counts and exits 0, so a moved or incomplete folder is caught in a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the checkout's ragpipe, also when a script runs as `python eval/x.py`
    sys.path.insert(0, str(REPO))

from ragpipe.evaluate.datafolder import (  # noqa: E402
    DATASETS_DOC,
    DEFAULT_DATA,
    DataError,
    DataFolder,
    count_records,
    find_data,
    format_description,
    merge_descriptions,
    resolve_data_root,
)

__all__ = ["DATASETS_DOC", "DEFAULT_DATA", "DataError", "DataFolder", "add_data_arguments", "count_records",
           "find_data", "merge_descriptions", "open_data", "resolve_data_root"]

DATA_EPILOG = (f"Data folder: --data DIR, else $RAGPIPE_DATA, else {DEFAULT_DATA};\n"
               f"one sub-folder per dataset, laid out as {DATASETS_DOC} says. --check-data checks it without\n"
               "loading a model.")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--data`` and ``--check-data`` to a benchmark's parser (and the data convention to its help)."""
    parser.epilog = f"{parser.epilog}\n\n{DATA_EPILOG}" if parser.epilog else DATA_EPILOG
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help=f"evaluation data folder (default: $RAGPIPE_DATA, else {DEFAULT_DATA}); layout in {DATASETS_DOC}",
    )
    parser.add_argument(
        "--check-data",
        action="store_true",
        help="check that the datasets this run needs are present, print their record counts and exit",
    )


def open_data(args: argparse.Namespace, needs: Mapping[str, Iterable[str]]) -> DataFolder:
    """Resolve and check the data folder for a script run; exit 2 with the reason if it is unusable.

    ``needs`` maps a dataset name to the files the script reads from its folder (the first one is
    the count a results file records). With ``--check-data`` the datasets are listed with the
    record counts of each file and the process exits 0.
    """
    fewer = "pass --datasets to run fewer" if getattr(args, "datasets", None) is not None else None
    try:
        data = find_data(getattr(args, "data", None), needs, fewer_hint=fewer)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if getattr(args, "check_data", False):
        print(format_description(data))
        raise SystemExit(0)
    return data
