"""Find and repair the JSON value inside an LLM reply.

Models wrap JSON in prose, code fences or half-finished braces. This module tries, in order:
the whole reply, a fenced code block, the first brace/bracket-balanced span, and finally
``json_repair`` on that span. It reports which step worked, so callers can record the repair.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import json_repair

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class ParsedJSON:
    """A decoded JSON value and how it was obtained (``strict``, ``fenced``, ``span``, ``repaired``)."""

    value: Any
    method: str

    @property
    def repaired(self) -> bool:
        return self.method != "strict"


def _balanced_span(text: str) -> str | None:
    """The first ``{...}`` or ``[...]`` span with balanced brackets (string-aware), or the open tail."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]  # unclosed: let the repair step try


def _strict(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except (json.JSONDecodeError, ValueError):
        return None


def parse_json_lenient(text: str) -> ParsedJSON | None:
    """The JSON object or array in ``text``, or ``None`` when there is nothing JSON-like."""
    stripped = text.strip()
    if not stripped:
        return None
    value = _strict(stripped)
    if isinstance(value, (dict, list)):
        return ParsedJSON(value, "strict")
    fence = _FENCE.search(stripped)
    if fence:
        value = _strict(fence.group(1).strip())
        if isinstance(value, (dict, list)):
            return ParsedJSON(value, "fenced")
    span = _balanced_span(fence.group(1) if fence else stripped)
    if span is None:
        return None
    value = _strict(span)
    if isinstance(value, (dict, list)):
        return ParsedJSON(value, "span")
    try:
        value = json_repair.loads(span)
    except Exception:  # the repair library is best effort; never let it crash a query
        return None
    if isinstance(value, (dict, list)) and value:
        return ParsedJSON(value, "repaired")
    return None
