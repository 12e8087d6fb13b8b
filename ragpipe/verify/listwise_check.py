"""The one-pass LLM check: all candidate passages in one prompt; the reply names the suspicious ones.

One call replaces one call per chunk, and every passage is judged against the same, complete set
of candidates (no chunk is judged against evidence that was itself accepted unchecked), so the
verdicts do not depend on the order the selector produced. The reply is untrusted: JSON is
searched and repaired; lines such as ``3: planted - ...`` are read when no JSON survives.

A reply counts as unreadable (``readable`` False, with the reason) when nothing can be read,
when it only echoes the prompt's placeholders, or when it names more than half of a pool of three
or more: a small model that copies the numbering back is not a verdict. What an unreadable reply
means (keep or drop) is the verifier's fail policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragpipe.context import RunContext
from ragpipe.errors import LLMError
from ragpipe.llm.json_reply import parse_json_lenient
from ragpipe.schema import ScoredChunk, TraceEvent, Usage
from ragpipe.verify.calls import CallSite, ask_over_passages, call_failed, reply_events
from ragpipe.verify.llm_check import normalise_flag

LISTWISE_PROMPT = "verifier.listwise"
LISTWISE_FLAGS = ("instruction", "planted", "contradiction")
_PLACEHOLDERS = ("<its number>", "<its data id>", "<what is wrong with it>", "what is wrong with it", "its data id")
_LINE = re.compile(r"(?:passage\s*|document\s*|\[|#|\bid\s*)?(\d{1,3})\]?\s*[:\-–)]?\s*(instruction|planted|contradiction)\b[\s:\-–]*(.*)",
                   re.IGNORECASE)
_NONE_REPLY = re.compile(r"^\W*(none|no suspicious|all (passages )?(look )?honest|nothing)\b", re.IGNORECASE)


@dataclass
class Suspicion:
    """One passage the LLM named, with its flag and reason."""

    flag: str
    reason: str


@dataclass
class ListwiseCheck:
    """The verdict of one listwise call over n passages (0-based indices)."""

    suspicious: dict[int, Suspicion] = field(default_factory=dict)
    readable: bool = True
    problem: str = ""
    method: str = "none"
    raw: str = ""
    error: str | None = None
    ignored: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    trace: list[TraceEvent] = field(default_factory=list)


def names_most(named: int, n: int) -> str | None:
    """Why a reply naming ``named`` of ``n`` passages is no verdict (None when it may be one).

    The prompt says most documents are honest, and planted passages were never more than half
    of a pool in any poisoning set measured; a reply naming more than half of three or more
    passages is a small model copying the numbering back (SmolLM2 named 8 of 10, 5 of them clean).
    """
    if n < 3 or 2 * named <= n:
        return None
    what = f"all {n}" if named == n else f"{named} of {n}"
    return f"the reply names {what} passages, most of the pool (an echo of the numbering, not a verdict)"


def _as_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        digits = re.fullmatch(r"\s*(?:passage\s*|document\s*|\[)?(\d{1,3})\]?\s*", value, re.IGNORECASE)
        return int(digits.group(1)) if digits else None
    return None


def _is_placeholder(text: str) -> bool:
    lowered = text.strip().lower()
    return any(p in lowered for p in _PLACEHOLDERS)


def _entries_from_json(value: object) -> list[tuple[object, object, object]] | None:
    """(passage, flag, reason) triples from a parsed reply, or None when it has no such shape."""
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        for key in ("suspicious", "flagged", "passages", "suspects"):
            if key in lowered:
                value = lowered[key]
                break
        else:
            if "document" in lowered or "passage" in lowered:
                value = [lowered]
            else:
                return None
    if not isinstance(value, list):
        return None
    out: list[tuple[object, object, object]] = []
    for item in value:
        if isinstance(item, dict):
            low = {str(k).lower(): v for k, v in item.items()}
            out.append((low.get("document", low.get("passage", low.get("id", low.get("n")))), low.get("flag", low.get("flags", "planted")),
                        low.get("reason", "")))
        else:
            out.append((item, "planted", ""))
    return out


def parse_listwise(text: str, n: int) -> ListwiseCheck:
    """Read the suspicious passages (1-based numbers in the reply) of a pool of ``n``."""
    check = ListwiseCheck(raw=text)
    parsed = parse_json_lenient(text)
    lines = [m.groups() for m in _LINE.finditer(text)]
    if (parsed and isinstance(parsed.value, list) and parsed.method != "strict"
            and (lines or not all(isinstance(item, dict) for item in parsed.value))):
        # "[4] planted: ..." is a numbered line and "… every 90 days [1]." a citation, not a JSON list.
        parsed = None
    entries = _entries_from_json(parsed.value) if parsed else None
    if entries is not None and parsed is not None:
        check.method = f"json:{parsed.method}"
    else:
        if lines:
            entries, check.method = [(a, b, c) for a, b, c in lines], "lines"
        elif _NONE_REPLY.match(text):
            entries, check.method = [], "none_word"
        else:
            check.readable, check.problem = False, "no verdict could be read from the reply"
            return check
    for passage, flag, reason in entries:
        number = _as_number(passage)
        reason_text = str(reason or "").strip()
        if number is None or not 1 <= number <= n:
            check.ignored.append(f"passage {passage!r} is not a number between 1 and {n}")
            continue
        if _is_placeholder(reason_text) or _is_placeholder(str(passage)):
            check.ignored.append(f"entry for passage {number} copies the prompt's placeholder")
            continue
        name = normalise_flag(flag[0] if isinstance(flag, list) and flag else flag)
        check.suspicious[number - 1] = Suspicion(name if name in LISTWISE_FLAGS else "planted", reason_text[:300])
    if entries and not check.suspicious:
        check.readable, check.problem = False, "every entry was unusable: " + "; ".join(check.ignored[:3])
    elif problem := names_most(len(check.suspicious), n):
        check.readable, check.problem = False, problem
        check.suspicious = {}
    return check


async def check_all(
    question: str,
    evidence: Sequence[ScoredChunk],
    rules: Sequence[str],
    ctx: RunContext,
    call: CallSite = CallSite(LISTWISE_PROMPT),
) -> ListwiseCheck:
    """One LLM call naming the suspicious passages among ``evidence``; never raises for LLM failures."""
    try:
        completion = await ask_over_passages(call, evidence, ctx, question=question, rules=list(rules))
    except LLMError as err:
        return ListwiseCheck(readable=False, problem=f"LLM call failed ({type(err).__name__})",
                             error=f"{type(err).__name__}: {err}", trace=[call_failed(call.node, "listwise verifier", err)],
                             usage=Usage(calls=1, failed_calls=1))
    check = parse_listwise(completion.text, len(evidence))
    check.usage = completion.usage.model_copy(update={"calls": 1})
    check.trace.extend(reply_events(call.node, f"listwise verdict over {len(evidence)} passages", completion,
                                    method=check.method, readable=check.readable, ignored=check.ignored))
    return check
