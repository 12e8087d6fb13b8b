"""One judge call: render an ``eval.*`` prompt, ask the judge LLM, parse its JSON leniently.

Where the backend can constrain decoding to a JSON schema, the prompt's ``output`` schema is sent
with the call: small judges (0.5B and below) otherwise drift into prose or half-closed JSON.
The judge's output is still untrusted. Whatever goes wrong (timeout, cut-off output, prose instead of
JSON, an exception from the backend) comes back as a ``JudgeReply`` with a failure status and
the raw text, never as an exception, so one bad row cannot stop a run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ragpipe.errors import LLMError, LLMTimeout, PromptError
from ragpipe.llm.base import LLM
from ragpipe.prompts import PromptRegistry, default_registry
from ragpipe.schema import TraceEvent
from ragpipe.llm.json_reply import parse_json_lenient


@dataclass
class Judge:
    """The judge LLM and how to call it (prompts, seed, per-call time limit)."""

    llm: LLM
    prompts: PromptRegistry = field(default_factory=default_registry)
    seed: int = 0
    timeout_s: float | None = None
    trace: list[TraceEvent] = field(default_factory=list)


@dataclass
class JudgeReply:
    """A parsed judge output (``value``) or the reason there is none (``status``)."""

    value: Any
    status: str
    raw: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


async def ask_judge(
    judge: Judge, prompt_name: str, *, temperature: float = 0.0, seed_offset: int = 0,
    schema: dict[str, Any] | None = None, max_tokens: int | None = None, **variables: Any
) -> JudgeReply:
    """Ask the judge with prompt ``prompt_name`` and return its JSON value (dict or list).

    ``schema`` replaces the prompt's own output schema for this call (e.g. to fix a list's length)
    and ``max_tokens`` its reply budget (e.g. one scaled to the number of items asked for).
    """
    prompt = judge.prompts.get(prompt_name)
    messages = prompt.render(**variables)
    if not judge.llm.capabilities.json_schema:
        schema = None
    elif schema is None:
        schema = prompt.spec.output.json_schema
    call = judge.llm.chat(
        messages, max_tokens=max_tokens or prompt.max_tokens, temperature=temperature, seed=judge.seed + seed_offset,
        json_schema=schema,
    )
    try:
        completion = await (asyncio.wait_for(call, judge.timeout_s) if judge.timeout_s else call)
    except (asyncio.TimeoutError, LLMTimeout) as err:
        return _failure(judge, prompt_name, "timeout", "", f"the judge timed out: {err}")
    except PromptError:
        raise  # a broken prompt file is a configuration error, not a bad row
    except LLMError as err:
        return _failure(judge, prompt_name, "error", "", f"the judge call failed: {err}")
    except Exception as err:  # any backend failure is recorded against the row, never raised
        return _failure(judge, prompt_name, "error", "", f"the judge call failed: {type(err).__name__}: {err}")
    raw = completion.text
    if completion.finish_reason == "length":
        return _failure(judge, prompt_name, "truncated", raw, "the judge output was cut off at max_tokens")
    parsed = parse_json_lenient(raw)
    if parsed is None:
        return _failure(judge, prompt_name, "parse_error", raw, "the judge output holds no JSON")
    if parsed.repaired:
        judge.trace.append(
            TraceEvent(node="judge", kind="repair", message=f"{prompt_name}: JSON recovered ({parsed.method})",
                       data={"raw": raw[:500]})
        )
    return JudgeReply(parsed.value, "ok", raw)


def _failure(judge: Judge, prompt_name: str, status: str, raw: str, reason: str) -> JudgeReply:
    judge.trace.append(
        TraceEvent(node="judge", kind="fallback", message=f"{prompt_name}: {reason}",
                   data={"status": status, "raw": raw[:500]})
    )
    return JudgeReply(None, status, raw, reason)


def field_list(value: Any, key: str) -> list[Any] | None:
    """``value[key]`` as a list, also when the judge returned the bare list or a single item."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        found = value.get(key)
        if isinstance(found, list):
            return found
        if found is not None:
            return [found]
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def as_binary(value: Any) -> int | None:
    """A verdict as 0/1 from the shapes judges write: 1, "1", true, "yes", "Yes.", 0.9 ..."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return 1 if value >= 0.5 else 0
    if isinstance(value, str):
        word = value.strip().strip(".").lower()
        if word in {"1", "yes", "true", "supported", "attributed", "useful", "correct", "y"}:
            return 1
        if word in {"0", "no", "false", "unsupported", "not attributed", "not useful", "incorrect", "n", "-1"}:
            return 0
    return None


def verdict_of(item: Any, *keys: str) -> int | None:
    """The 0/1 verdict of one judged item (a dict with one of ``keys``, or a bare value)."""
    if isinstance(item, dict):
        for key in keys:
            if key in item:
                return as_binary(item[key])
        return None
    return as_binary(item)
