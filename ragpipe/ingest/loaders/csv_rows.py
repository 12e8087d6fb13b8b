"""CSV: one segment per row, written as ``column: value`` lines so the header names stay with the data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ragpipe.errors import IngestError
from ragpipe.ingest.loaders.base import LoadedDocument, SegmentBuilder, read_text, register_loader


@register_loader(".csv", ".tsv")
def load_csv(path: Path) -> LoadedDocument:
    file = read_text(path)
    text = file.text
    try:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.Sniffer().sniff(text[:4096], ",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    except csv.Error as err:
        raise IngestError(str(path), f"malformed CSV ({err})") from None
    builder = SegmentBuilder(separator="\n")
    for number, row in enumerate(rows, start=1):
        lines = [f"{key}: {value}" for key, value in row.items() if key and value not in (None, "")]
        builder.add("\n".join(lines), [], row=number)
    return builder.build(rows=len(rows), encoding=file.encoding)
