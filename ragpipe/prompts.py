"""Prompt templates as data: one YAML file per task in ``prompts/``, rendered with strict Jinja2.

A prompt file declares its variables; loading fails if a template uses an undeclared one, and
rendering fails if a declared one is missing (or an unknown one is passed). Evidence text is
always rendered through the ``data`` filter, which wraps it in delimiters and neutralises any
look-alike delimiter and any chat-template control token inside the document, so a document
can neither close its own data block nor open a turn of its own.

A prompt may start with a shared **opening** (``opening: evidence.opening``): that file's system
message, then its user text, then the prompt's own user text. Prompts that read the same evidence
share it, so the first call's work on the documents is reused by the next one: llama.cpp keeps
the KV cache of the longest common prefix, and vLLM and hosted APIs cache shared prefixes too.

A user can point ``prompts_dir`` at a folder of their own: a file there with the same name
overrides the shipped one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragpipe.errors import PromptError
from ragpipe.llm.base import ChatOptions, Message, check_patterns
from ragpipe.llm.special_tokens import neutralise_special_tokens
from ragpipe.resources import data_dir
from ragpipe.schema import ScoredChunk
from ragpipe.settings_layers import validate_table

DATA_TAG = "data"
_LOOKALIKE = re.compile(r"<\s*(/?)\s*(data|evidence|document|passage)\b", re.IGNORECASE)


def escape_data(text: str) -> str:
    """Neutralise delimiter look-alikes and control-token strings: document text cannot end or fake
    a data block, nor become a special token of the model's chat template."""
    return _LOOKALIKE.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}", neutralise_special_tokens(text))


def as_data(text: Any, ident: Any = None) -> str:
    """Jinja filter: ``{{ chunk_text | data(3) }}`` -> ``<data id="3">…</data>``, escaped."""
    attr = f' id="{ident}"' if ident is not None else ""
    return f"<{DATA_TAG}{attr}>\n{escape_data(str(text))}\n</{DATA_TAG}>"


def numbered_documents(evidence: Sequence[ScoredChunk], shown: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """The ``documents`` of the evidence prompts: number, source and (the ``shown`` part of the) text.

    The verifier and the generator both render evidence through this, so their prompts share the
    documents byte for byte and the backend's prefix cache reads them once.
    """
    return [{"n": i + 1, "source": c.chunk.source or c.chunk.doc_id, "text": shown(c.chunk.text)}
            for i, c in enumerate(evidence)]


class OutputSpec(BaseModel):
    """The JSON schema a prompt's answer must follow, sent to backends that constrain decoding."""

    model_config = ConfigDict(extra="forbid")

    json_schema: dict[str, Any] | None = None


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default

    name: str
    description: str = ""
    variables: list[str]
    opening: str | None = None
    system: str | None = None
    user: str
    max_tokens: int = 512
    stop: list[str] = Field(default_factory=list, description="text that ends the reply where it appears")
    abandon_at: list[str] = Field(default_factory=list, description="regular expressions that mark the reply as "
                                  "gone off course: the embedded backend stops there, keeping the match")
    output: OutputSpec = Field(default_factory=OutputSpec)

    @field_validator("abandon_at")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        check_patterns(value)
        return value


class Prompt:
    """A loaded, validated prompt that renders to chat messages."""

    def __init__(self, spec: PromptFile, path: Path, env: SandboxedEnvironment, opening: Prompt | None = None) -> None:
        self.spec = spec
        self.path = path
        self._env = env
        self.opening = opening
        declared = set(spec.variables)
        if opening is not None:
            if spec.system is not None:
                raise PromptError(f"{path}: a prompt with an 'opening' takes its system message from "
                                  f"'{opening.name}'; remove 'system' or the opening")
            missing = set(opening.spec.variables) - declared
            if missing:
                raise PromptError(f"{path}: its opening '{opening.name}' uses variable(s) {sorted(missing)}; "
                                  f"add them to 'variables'")
        self._templates = {}
        for part in ("system", "user"):
            source = getattr(spec, part)
            if source is None:
                continue
            try:
                used = meta.find_undeclared_variables(env.parse(source))
                self._templates[part] = env.from_string(source)
            except TemplateError as err:
                raise PromptError(f"{path}: the {part} template does not parse: {err}") from err
            undeclared = used - declared - set(env.globals)
            if undeclared:
                raise PromptError(
                    f"{path}: the {part} template uses undeclared variable(s) {sorted(undeclared)}; "
                    f"add them to 'variables'"
                )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_tokens(self) -> int:
        return self.spec.max_tokens

    @property
    def stop(self) -> list[str]:
        return self.spec.stop

    @property
    def abandon_at(self) -> list[str]:
        return self.spec.abandon_at

    def chat_options(self, max_tokens: int | None = None, extra_stop: Sequence[str] = ()) -> ChatOptions:
        """The call options this prompt declares: its output budget (unless ``max_tokens`` overrides
        it), its stop strings (plus ``extra_stop``) and where its reply is abandoned."""
        stop = list(dict.fromkeys([*self.spec.stop, *extra_stop]))
        return {"max_tokens": max_tokens or self.max_tokens, "stop": stop or None,
                "abandon_at": self.spec.abandon_at or None}

    @property
    def output(self) -> OutputSpec:
        return self.spec.output

    def render(self, **variables: Any) -> list[Message]:
        """Render to chat messages; a missing or unknown variable is a ``PromptError``."""
        declared = set(self.spec.variables)
        missing = declared - set(variables)
        if missing:
            raise PromptError(f"prompt '{self.name}' ({self.path}) needs variable(s) {sorted(missing)}")
        unknown = set(variables) - declared
        if unknown:
            raise PromptError(
                f"prompt '{self.name}' ({self.path}) does not declare variable(s) {sorted(unknown)}"
            )
        messages = self._opening_messages(variables)
        for role in ("system", "user"):
            template = self._templates.get(role)
            if template is None:
                continue
            try:
                content = template.render(**variables).strip()
            except TemplateError as err:
                raise PromptError(f"prompt '{self.name}' ({self.path}): {err}") from err
            if role == "user" and messages and messages[-1].role == "user":
                messages[-1] = Message(role="user", content=f"{messages[-1].content}\n\n{content}")
            else:
                messages.append(Message(role=role, content=content))
        return messages

    def _opening_messages(self, variables: Mapping[str, Any]) -> list[Message]:
        if self.opening is None:
            return []
        return self.opening.render(**{k: variables[k] for k in self.opening.spec.variables})


class PromptRegistry:
    """Finds prompts by name, user folders first, then the prompts shipped with ragpipe."""

    def __init__(self, user_dirs: Iterable[str | Path] = ()) -> None:
        self.dirs = [Path(d).expanduser() for d in user_dirs] + [data_dir("prompts")]
        for d in self.dirs[:-1]:
            if not d.is_dir():
                raise PromptError(f"prompts folder {d} does not exist; fix the 'prompts_dir' setting")
        self._cache: dict[str, Prompt] = {}

    @cached_property
    def _env(self) -> SandboxedEnvironment:
        env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
        env.filters["data"] = as_data
        env.filters["escape_data"] = escape_data
        return env

    def names(self) -> list[str]:
        found = {p.stem for d in self.dirs for p in d.glob("*.yaml")}
        return sorted(found)

    def path_of(self, name: str) -> Path:
        for d in self.dirs:
            candidate = d / f"{name}.yaml"
            if candidate.is_file():
                return candidate
        raise PromptError(f"no prompt named '{name}' in {', '.join(str(d) for d in self.dirs)}")

    def get(self, name: str) -> Prompt:
        if name not in self._cache:
            self._cache[name] = self._load(self.path_of(name))
        return self._cache[name]

    def _load(self, path: Path, as_opening: bool = False) -> Prompt:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise PromptError(f"{path}: cannot read prompt file: {err}") from err
        if not isinstance(raw, Mapping):
            raise PromptError(f"{path}: a prompt file must be a YAML mapping with 'variables' and 'user'")
        spec = validate_table(PromptFile, {"name": path.stem, **raw}, str(path), error=PromptError)
        if spec.opening is None:
            return Prompt(spec, path, self._env)
        if as_opening:
            raise PromptError(f"{path}: it is used as an opening but has an opening of its own; "
                              f"an opening must be a plain prompt")
        return Prompt(spec, path, self._env, self._load(self.path_of(spec.opening), as_opening=True))


_default_registry: PromptRegistry | None = None


def default_registry() -> PromptRegistry:
    """The registry over the shipped prompts only (no user overrides)."""
    global _default_registry
    if _default_registry is None:
        _default_registry = PromptRegistry()
    return _default_registry
