"""Where each setting came from: sources merged key by key, with the source of every value kept.

Settings are read from several layers (connector profile, config file, environment, keyword
arguments, ``--set`` flags). Each layer is flattened to dotted keys, later layers replace earlier
ones key by key, and the source of each key is remembered, so an error can say "unknown setting
'retrieval.top_kk' (environment variable RAGPIPE_RETRIEVAL__TOP_KK): did you mean
'retrieval.top_k'?" and ``ragpipe config show`` can say where each value was set.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ragpipe.errors import ConfigError

Key = tuple[str, ...]

ENV_PREFIX = "RAGPIPE_"
# ``RAGPIPE_*`` variables that are not settings (every other one must name a setting).
NON_SETTING_ENV = frozenset({"RAGPIPE_CONFIG", "RAGPIPE_DATA", "RAGPIPE_DEBUG"})
NON_SETTING_ENV_PREFIXES = ("RAGPIPE_BENCH_",)


def dotted(key: Key) -> str:
    return ".".join(key)


def flatten(values: Mapping[str, Any], prefix: Key = ()) -> Iterator[tuple[Key, Any]]:
    """``(key, value)`` for every leaf; an empty table is a leaf of its own."""
    for name, value in values.items():
        key = (*prefix, str(name))
        if isinstance(value, Mapping) and value:
            yield from flatten(value, key)
        else:
            yield key, value


def _set_path(tree: dict[str, Any], key: Key, value: Any) -> None:
    node = tree
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[key[-1]] = dict(value) if isinstance(value, Mapping) else value


@dataclass
class Layers:
    """Nested setting values merged from several sources, and the source of each leaf."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[Key, str] = field(default_factory=dict)

    def add(self, values: Mapping[str, Any], source: str) -> None:
        for key, value in flatten(values):
            self.add_key(key, value, source)

    def add_key(self, key: Key, value: Any, source: str) -> None:
        _set_path(self.values, key, value)
        for known in [k for k in self.sources if k[: len(key)] == key and k != key]:
            del self.sources[known]  # a whole table replaced: its old leaves are gone
        self.sources[key] = source

    def source_of(self, key: Key) -> str | None:
        """Who set ``key`` (or the table holding it, or a value inside it); None for defaults."""
        for end in range(len(key), 0, -1):
            if key[:end] in self.sources:
                return self.sources[key[:end]]
        inside = [src for k, src in self.sources.items() if k[: len(key)] == key]
        return inside[0] if inside else None


# -- reading the sources -------------------------------------------------------------------------

def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML value when it is one (``5``, ``true``, ``["a", "b"]``), else the text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str) -> tuple[Key, Any]:
    """``section.key=value`` as given to ``--set``."""
    name, sep, raw = text.partition("=")
    key = tuple(part.strip() for part in name.split("."))
    if not sep or not all(key):
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. --set retrieval.top_k=10")
    return key, parse_value(raw.strip())


def keyword_key(name: str) -> Key:
    """``llm__model`` (the keyword-argument and environment form) as a key."""
    return tuple(name.split("__"))


def is_setting_env(name: str) -> bool:
    return (name.startswith(ENV_PREFIX) and name not in NON_SETTING_ENV
            and not name.startswith(NON_SETTING_ENV_PREFIXES))


def env_assignments(environ: Mapping[str, str]) -> Iterator[tuple[Key, Any, str]]:
    """``(key, value, variable)`` for every ``RAGPIPE_*`` setting variable.

    ``RAGPIPE_LLM__MODEL=x`` sets ``llm.model``; values that start with ``[`` or ``{`` are JSON.
    """
    for name in sorted(environ):
        if not is_setting_env(name):
            continue
        key = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        if not all(key):
            raise ConfigError(f"environment variable {name} is not a setting name: sections are joined with "
                              f"'__', e.g. RAGPIPE_RETRIEVAL__TOP_K")
        raw = environ[name]
        value: Any = raw
        if raw.lstrip()[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ConfigError(f"environment variable {name} is not valid JSON: {err}") from None
        yield key, value, f"environment variable {name}"


# -- explaining problems ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One invalid setting: where, what kind (pydantic's error type), the message and the bad value."""

    key: Key
    kind: str
    message: str
    value: Any = None

    @classmethod
    def from_pydantic(cls, error: Mapping[str, Any], prefix: Key = ()) -> Problem:
        message = str(error["msg"]).removeprefix("Value error, ")
        return cls((*prefix, *(str(p) for p in error["loc"])), error["type"], message, error.get("input"))


def describe(problems: Iterable[Problem], layers: Layers | None = None,
             valid_keys: Callable[[Key], list[str] | None] | None = None, *, label: str = "setting") -> str:
    """One message naming each problem's key, its source and the fix.

    The one wording for every settings-like input (settings, selector and verifier options,
    eval and prompt files): an unknown key gets the closest valid key (or the valid keys), a bad
    value says what is wrong with it and the value given.
    """
    lines = []
    for problem in problems:
        source = layers.source_of(problem.key) if layers is not None else None
        where = f" ({source})" if source else ""
        name = dotted(problem.key) or "(top level)"
        if problem.kind == "extra_forbidden":
            hint = _suggestion(problem.key, valid_keys) if valid_keys is not None else ""
            lines.append(f"unknown {label} '{name}'{where}{hint}")
        else:
            shown = "" if problem.kind in ("missing", "value_error") else f" (got {problem.value!r})"
            lines.append(f"{label} '{name}'{where}: {problem.message}{shown}")
    return "; ".join(lines)


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_table(model: type[ModelT], data: Mapping[str, Any], where: str, *, label: str = "field",
                   error: type[Exception] = ConfigError) -> ModelT:
    """``model`` built from ``data`` (selector options, a prompt or eval file), or one ``error``.

    The message starts with ``where`` (what the values came from) and names each bad key
    relative to ``model``, whose fields give the "did you mean" hint.
    """
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = [Problem.from_pydantic(e) for e in err.errors()]
        message = describe(problems, None, lambda table: model_keys(model, table), label=label)
        raise error(f"{where}: {message}") from None


def model_keys(model: type[BaseModel] | None, table: Key) -> list[str] | None:
    """The keys allowed in ``table`` (a path of nested fields) of ``model``; None where it is no model."""
    for part in table:
        if part.isdigit():  # an entry of a list of tables, e.g. variants.0
            continue
        field_info = model.model_fields.get(part) if model is not None else None
        annotation = field_info.annotation if field_info is not None else None
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return list(model.model_fields) if model is not None else None


def _suggestion(key: Key, valid_keys: Callable[[Key], list[str] | None]) -> str:
    choices = valid_keys(key[:-1])
    if not choices:
        return ""
    parent = dotted(key[:-1])
    close = difflib.get_close_matches(key[-1], choices, n=1, cutoff=0.6)
    if close:
        return f": did you mean '{dotted((*key[:-1], close[0]))}'?"
    where = f"[{parent}]" if parent else "the top level"
    return f"; valid keys in {where}: {', '.join(choices)}"
