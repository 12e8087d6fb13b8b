"""Find and repair the JSON value inside an LLM reply: the one lenient JSON reader.

Models wrap JSON in prose or code fences, add trailing commas, quote with ``'`` or stop half-way
through an object. The reader tries, in order: the whole reply, a fenced code block, the first (or
last) bracket-balanced span, and finally ``json_repair`` on that span. It returns ``None`` when
nothing JSON-like is there, never raises, and says which step worked and what it repaired, so each
caller can record the repair in its trace and apply its own fallback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import json_repair

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_OPENERS = {dict: "{", list: "["}
_CLOSERS = {"{": "}", "[": "]"}


@dataclass(frozen=True)
class ParsedJSON:
    """A decoded JSON value and how it was obtained.

    ``method`` is ``strict`` (the whole reply), ``fenced`` (a code block), ``span`` (a balanced
    span inside prose) or ``repaired`` (``json_repair`` fixed its syntax); ``repairs`` says the same
    in words for a trace.
    """

    value: Any
    method: str
    repairs: tuple[str, ...] = ()

    @property
    def repaired(self) -> bool:
        return self.method != "strict"


def _first_span(text: str, openers: str) -> str | None:
    """The first balanced span opened by one of ``openers`` (string-aware), or the unclosed tail."""
    starts = [i for i in (text.find(o) for o in openers) if i >= 0]
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


def _last_span(text: str, openers: str) -> str | None:
    """The balanced span that ends at the last closer of ``openers``, or the unclosed tail.

    Rankers that reason first put their answer last; an example object in the reasoning must not
    be taken for it.
    """
    closers = "".join(_CLOSERS[o] for o in openers)
    end = max(text.rfind(c) for c in closers)
    if end >= 0:
        depth = 0
        for i in range(end, -1, -1):
            if text[i] in closers:
                depth += 1
            elif text[i] in openers:
                depth -= 1
                if depth == 0:
                    return text[i : end + 1]
    start = max(text.rfind(o) for o in openers)
    return text[start:] if start >= 0 else None


def _strict(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except (json.JSONDecodeError, ValueError):
        return None


def parse_json_lenient(text: str, *, last: bool = False,
                       want: tuple[type, ...] = (dict, list)) -> ParsedJSON | None:
    """The JSON object or array in ``text``, or ``None`` when there is nothing usable.

    ``last`` reads the last fenced block and the last balanced span instead of the first; ``want``
    narrows the accepted values (``(dict,)`` for an answer that must be an object).
    """
    stripped = text.strip()
    if not stripped:
        return None
    value = _strict(stripped)
    if isinstance(value, want):
        return ParsedJSON(value, "strict")
    repairs: list[str] = []
    fences = _FENCE.findall(stripped)
    fence = (fences[-1] if last else fences[0]).strip() if fences else None
    if fence is not None:
        repairs.append("read the JSON from a fenced block")
        value = _strict(fence)
        if isinstance(value, want):
            return ParsedJSON(value, "fenced", tuple(repairs))
    source = fence if fence is not None else stripped
    openers = "".join(_OPENERS[kind] for kind in (dict, list) if kind in want)
    span = (_last_span if last else _first_span)(source, openers)
    if span is None:
        return None
    if span.strip() != source:
        repairs.append("ignored text around the JSON value")
    value = _strict(span)
    if isinstance(value, want):
        return ParsedJSON(value, "span", tuple(repairs))
    try:
        value = json_repair.loads(span)
    except Exception:  # the repair library is best effort; never let it crash a query
        return None
    if isinstance(value, want) and value:
        repairs.append("repaired the JSON syntax (quotes, commas, keys or unclosed brackets)")
        return ParsedJSON(value, "repaired", tuple(repairs))
    return None


__all__ = ["ParsedJSON", "parse_json_lenient"]
