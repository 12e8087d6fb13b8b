"""The run's checkpoint: one JSON line per finished (variant, query), appended and fsynced.

An interrupted run (Ctrl-C, a crash, a killed machine) resumes by skipping the pairs already in
the file. A line cut off by a crash is dropped on reopening, and a checkpoint written by a
different config is refused rather than mixed in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ragpipe.errors import ConfigError

ROWS_FILE = "rows.jsonl"
META_FILE = "checkpoint.json"


class Checkpoint:
    def __init__(self, out_dir: str | Path, fingerprint: str) -> None:
        self.dir = Path(out_dir)
        self.path = self.dir / ROWS_FILE
        self.meta = self.dir / META_FILE
        self.fingerprint = fingerprint

    def open(self, *, resume: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """Prepare the files and return the rows already done, keyed by (variant, query id)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and self.meta.exists():
            previous = json.loads(self.meta.read_text(encoding="utf-8")).get("fingerprint")
            if previous != self.fingerprint:
                raise ConfigError(
                    f"{self.path} was written by a different config; rerun with --no-resume to start over "
                    f"or choose another --out folder"
                )
        self.meta.write_text(json.dumps({"fingerprint": self.fingerprint}), encoding="utf-8")
        self._drop_partial_line()
        return {(r["variant"], r["query_id"]): r for r in self.rows()}

    def _drop_partial_line(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row in the file; a later row for the same pair replaces an earlier one."""
        if not self.path.exists():
            return []
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[(row["variant"], row["query_id"])] = row
        return list(rows.values())

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
