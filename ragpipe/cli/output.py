"""What every ``--json`` document shares: a ``schema_version`` first, one document on stdout.

The version counts breaking changes of the documents' keys (a key renamed, removed or retyped);
new keys may appear without a new version, so readers should ignore keys they do not know.
"""

from __future__ import annotations

import json
import sys
from typing import Any

JSON_SCHEMA_VERSION = 1


def versioned(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``schema_version`` as its first key."""
    return {"schema_version": JSON_SCHEMA_VERSION, **doc}


def emit_json(doc: dict[str, Any]) -> None:
    """Write ``doc`` (versioned) to stdout as one indented JSON document."""
    json.dump(versioned(doc), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()
