"""A small metadata filter language, shared by dense (Chroma) and BM25 retrieval.

Three spellings of the same thing:

* Python objects: ``And(Cond("source", "glob", "docs/*.md"), Cond("file_type", "eq", "md"))``;
* a Mongo/Chroma-style dict: ``{"source": {"$glob": "docs/*.md"}, "file_type": "md"}``;
* CLI strings: ``source~=docs/*.md``, ``file_type=pdf``, ``lang in en,de``, ``tags*=finance``,
  ``year>=2020``, alternatives joined with ``||``. Several strings are AND-ed.

``to_chroma_where`` translates what Chroma can evaluate (eq, ne, in, nin, comparisons, and/or)
in this one place; globs and substring ``contains`` cannot be pushed down, so ``matches`` is
always applied to the results as well (it is exact, and cheap on a few hundred candidates).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Union

from ragpipe.errors import ConfigError
from ragpipe.schema import Chunk

OPS = ("eq", "ne", "in", "nin", "contains", "glob", "gt", "gte", "lt", "lte")
_CHROMA_OPS = {"eq": "$eq", "ne": "$ne", "in": "$in", "nin": "$nin", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


@dataclass(frozen=True)
class Cond:
    """``field op value`` on one chunk field (``source``, ``file_type``, ``doc_id`` or any metadata key)."""

    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError(f"unknown filter operator '{self.op}'; use one of {', '.join(OPS)}")
        if self.op in ("in", "nin") and not isinstance(self.value, (list, tuple)):
            raise ConfigError(f"filter '{self.field} {self.op}' needs a list of values")


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]

    def __init__(self, *items: Filter) -> None:
        object.__setattr__(self, "items", tuple(items))


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]

    def __init__(self, *items: Filter) -> None:
        object.__setattr__(self, "items", tuple(items))


Filter = Union[Cond, And, Or]
FilterSpec = Union[Filter, Mapping[str, Any], str, Iterable[str], None]


# --------------------------------------------------------------------------- parsing

_CLI_PATTERN = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(!=|~=|\*=|>=|<=|=|>|<)\s*(.*?)\s*$")
_CLI_IN = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s+(not\s+in|in)\s+(.+?)\s*$", re.IGNORECASE)
_CLI_OPS = {"=": "eq", "!=": "ne", "~=": "glob", "*=": "contains", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def _scalar(text: str) -> Any:
    """CLI values are strings unless they read as numbers or booleans (metadata may hold those)."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_expression(text: str) -> Filter:
    """One CLI ``--where`` expression; ``||`` separates alternatives."""
    alternatives = [part for part in text.split("||") if part.strip()]
    if not alternatives:
        raise ConfigError(f"empty filter expression: {text!r}")
    conds: list[Filter] = []
    for part in alternatives:
        match_in = _CLI_IN.match(part)
        if match_in:
            field, op, values = match_in.groups()
            op = "nin" if op.lower().startswith("not") else "in"
            conds.append(Cond(field, op, [_scalar(v.strip()) for v in values.split(",") if v.strip()]))
            continue
        match = _CLI_PATTERN.match(part)
        if not match or not match.group(3):
            raise ConfigError(
                f"cannot read filter {part.strip()!r}; write key=value, key!=value, key~=glob, "
                "key*=text, key>=n or 'key in a,b'"
            )
        field, op, value = match.groups()
        op_name = _CLI_OPS[op]
        conds.append(Cond(field, op_name, value if op_name in ("glob", "contains") else _scalar(value)))
    return conds[0] if len(conds) == 1 else Or(*conds)


def from_dict(spec: Mapping[str, Any]) -> Filter:
    """A Mongo/Chroma-style dict: ``{"k": v}``, ``{"k": {"$in": [...]}}``, ``{"$or": [...]}``."""
    parts: list[Filter] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"filter '{key}' needs a non-empty list")
            children = [from_dict(child) for child in value]
            parts.append(And(*children) if key == "$and" else Or(*children))
        elif key.startswith("$"):
            raise ConfigError(f"unknown filter key '{key}'")
        elif isinstance(value, Mapping):
            for op, operand in value.items():
                parts.append(Cond(key, str(op).lstrip("$"), operand))
        else:
            parts.append(Cond(key, "eq", value))
    if not parts:
        raise ConfigError("empty filter")
    return parts[0] if len(parts) == 1 else And(*parts)


def parse_filter(spec: FilterSpec) -> Filter | None:
    """Any accepted spelling → a ``Filter`` (or ``None`` for no filter)."""
    if spec is None:
        return None
    if isinstance(spec, (Cond, And, Or)):
        return spec
    if isinstance(spec, Mapping):
        return from_dict(spec) if spec else None
    if isinstance(spec, str):
        return parse_expression(spec)
    items = [parse_filter(item) for item in spec]
    items = [item for item in items if item is not None]
    if not items:
        return None
    return items[0] if len(items) == 1 else And(*items)


# --------------------------------------------------------------------------- evaluation


def chunk_fields(chunk: Chunk) -> dict[str, Any]:
    """The fields a filter can name: chunk metadata plus the chunk's own attributes."""
    source = chunk.source or str(chunk.metadata.get("source", ""))
    suffix = PurePosixPath(source).suffix.lstrip(".").lower()
    return {
        **chunk.metadata,
        "source": source,
        "doc_id": chunk.doc_id,
        "position": chunk.position,
        "title": chunk.title,
        "file_type": chunk.metadata.get("file_type") or suffix,
    }


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if op == "in":
        return actual in expected
    if op == "nin":
        return actual not in expected
    if op == "glob":
        return actual is not None and fnmatch.fnmatchcase(str(actual), str(expected))
    if op == "contains":
        if isinstance(actual, (list, tuple, set)):
            return expected in actual
        return actual is not None and str(expected) in str(actual)
    try:
        if op == "gt":
            return actual > expected
        if op == "gte":
            return actual >= expected
        if op == "lt":
            return actual < expected
        return actual <= expected
    except TypeError:  # None or mixed types: a comparison that cannot hold
        return False


def evaluate(flt: Filter, fields: Mapping[str, Any]) -> bool:
    """Whether a chunk (given as its ``chunk_fields``) passes the filter."""
    if isinstance(flt, Cond):
        return _compare(fields.get(flt.field), flt.op, flt.value)
    if isinstance(flt, And):
        return all(evaluate(item, fields) for item in flt.items)
    return any(evaluate(item, fields) for item in flt.items)


def matches(flt: Filter | None, chunk: Chunk) -> bool:
    return flt is None or evaluate(flt, chunk_fields(chunk))


# --------------------------------------------------------------------------- Chroma


def to_chroma_where(flt: Filter | None, stored: Collection[str] | None = None) -> dict[str, Any] | None:
    """The part of ``flt`` that Chroma can evaluate, as a ``where`` dict (or ``None``).

    ``stored`` names the metadata keys the store actually writes (``None``: any key); a field it
    does not hold (e.g. a derived ``file_type``) is left to post-filtering instead of matching
    nothing. The result is never stricter than ``flt``: an AND keeps its translatable children,
    an OR is pushed down only when all of its children are. Callers post-filter with ``matches``.
    """
    if flt is None:
        return None
    if isinstance(flt, Cond):
        if flt.op not in _CHROMA_OPS or (stored is not None and flt.field not in stored):
            return None
        value = list(flt.value) if flt.op in ("in", "nin") else flt.value
        return {flt.field: {_CHROMA_OPS[flt.op]: value}}
    children = [to_chroma_where(item, stored) for item in flt.items]
    if isinstance(flt, Or):
        if any(child is None for child in children):
            return None
        return children[0] if len(children) == 1 else {"$or": children}
    kept = [child for child in children if child is not None]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else {"$and": kept}


def is_fully_pushed_down(flt: Filter | None, stored: Collection[str] | None = None) -> bool:
    """True when Chroma evaluates the whole filter, so no over-fetching is needed."""
    if flt is None:
        return True
    if isinstance(flt, Cond):
        return flt.op in _CHROMA_OPS and (stored is None or flt.field in stored)
    return all(is_fully_pushed_down(item, stored) for item in flt.items)
