"""JSON and JSON Lines: each record becomes one segment (chunks never mix two records).

A record's text is its ``text``/``content``/``body`` field when it has one, else its scalar
fields as ``key: value`` lines; a ``title``/``name`` field becomes the segment's heading.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ragpipe.errors import IngestError
from ragpipe.ingest.loaders.base import LoadedDocument, SegmentBuilder, read_text, register_loader

log = logging.getLogger(__name__)
TEXT_FIELDS = ("text", "content", "body", "page_content", "contents")
TITLE_FIELDS = ("title", "name", "heading")
ID_FIELDS = ("_id", "id", "doc_id")


def record_text(record: Any) -> tuple[str, str | None, Any]:
    """(text, heading, record id) of one JSON value."""
    if not isinstance(record, dict):
        return (record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)), None, None
    heading = next((str(record[k]) for k in TITLE_FIELDS if isinstance(record.get(k), str) and record[k]), None)
    rec_id = next((record[k] for k in ID_FIELDS if isinstance(record.get(k), str | int)), None)
    body = next((record[k] for k in TEXT_FIELDS if isinstance(record.get(k), str)), None)
    if body is None:
        body = "\n".join(
            f"{key}: {value}" for key, value in record.items() if isinstance(value, str | int | float | bool)
        )
    return body, heading, rec_id


def records_document(records: list[Any]) -> LoadedDocument:
    builder = SegmentBuilder()
    for index, record in enumerate(records):
        body, heading, rec_id = record_text(record)
        text = f"{heading}\n{body}" if heading and not body.startswith(heading) else body
        meta = {"record": index} if rec_id is None else {"record": index, "record_id": str(rec_id)}
        builder.add(text, [heading] if heading else [], **meta)
    return builder.build(records=len(records))


@register_loader(".json")
def load_json(path: Path) -> LoadedDocument:
    file = read_text(path)
    try:
        value = json.loads(file.text)
    except json.JSONDecodeError as err:
        raise IngestError(str(path), f"invalid JSON (line {err.lineno}: {err.msg})") from None
    records = value if isinstance(value, list) else [value]
    document = records_document(records)
    document.metadata["encoding"] = file.encoding
    return document


@register_loader(".jsonl", ".ndjson")
def load_jsonl(path: Path) -> LoadedDocument:
    records, bad = [], []
    file = read_text(path)
    for number, line in enumerate(file.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            bad.append(number)
    if bad and not records:
        raise IngestError(str(path), "no valid JSON line")
    if bad:
        log.warning("%s: skipped %d invalid JSON line(s), first at line %d", path, len(bad), bad[0])
    document = records_document(records)
    document.metadata["invalid_lines"] = len(bad)
    document.metadata["encoding"] = file.encoding
    return document
