"""The per-chunk LLM check: a JSON verdict ``{keep, flags, reason}`` for one chunk, parsed leniently.

The prompt shows the question, the rationales' flag instructions and the chunk (delimited as
data); no other evidence, so the verdict does not depend on which chunks came before. The reply is untrusted: JSON is searched and repaired, and a
``keep``/``flagged`` word is looked for when no JSON survives. ``keep is None`` means the reply
could not be read; what that means (fail-open or fail-closed) is the verifier's decision.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragpipe.context import RunContext
from ragpipe.errors import LLMError
from ragpipe.llm.json_reply import parse_json_lenient
from ragpipe.schema import Rationale, ScoredChunk, TraceEvent, Usage
from ragpipe.verify.calls import CallSite, call_failed, reply_events

DEFAULT_PROMPT = "verifier.default"
_TRUE = {"true", "yes", "1", "keep", "accept", "accepted", "valid"}
_FALSE = {"false", "no", "0", "drop", "reject", "rejected", "invalid", "flag", "flagged"}
_KEEP_WORD = re.compile(r"[\"']?\bkeep\b[\"']?\s*[:=]\s*[\"']?(\w+)", re.IGNORECASE)
_FLAGGED_WORD = re.compile(r"[\"']?\bflagged\b[\"']?\s*[:=]\s*[\"']?(\w+)", re.IGNORECASE)
_VERDICT_WORD = re.compile(r"^\W*(keep|accept|drop|reject)\b", re.IGNORECASE)
_KNOWN_FLAGS = ("instruction", "contradiction", "planted", "off_topic", "factual")


@dataclass
class ParsedVerdict:
    """What could be read from one reply; ``keep`` is None when nothing could."""

    keep: bool | None
    flags: list[str] = field(default_factory=list)
    reason: str = ""
    method: str = "none"


@dataclass
class LLMCheck:
    """One chunk's LLM verdict with its raw output, cost and audit events."""

    chunk_id: str
    verdict: ParsedVerdict
    raw: str = ""
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    trace: list[TraceEvent] = field(default_factory=list)


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().strip("\"'").lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def normalise_flag(flag: object) -> str:
    """Lower-case snake-case flag names; 'Flag 3' -> 'flag_3'; known names matched by substring."""
    text = re.sub(r"[^a-z0-9]+", "_", str(flag).strip().lower()).strip("_")
    numbered = re.fullmatch(r"flag_?(\d+)", text)
    if numbered:
        return f"flag_{numbered.group(1)}"
    for known in _KNOWN_FLAGS:
        if known.replace("_", "") in text.replace("_", ""):
            return known
    return text[:40]


def _flags_of(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value] if isinstance(value, str) and value.strip() else []
    flags = [normalise_flag(f) for f in items if str(f).strip()]
    return list(dict.fromkeys(f for f in flags if f and f not in ("none", "null")))


def parse_verdict(text: str) -> ParsedVerdict:
    """Read ``{keep, flags, reason}`` (or ``flagged``/``relevant`` variants) from a reply."""
    parsed = parse_json_lenient(text)
    value = parsed.value if parsed else None
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        keep = _as_bool(lowered.get("keep"))
        if keep is None and "flagged" in lowered:
            flagged = _as_bool(lowered["flagged"])
            keep = None if flagged is None else not flagged
        relevant = _as_bool(lowered.get("relevant"))
        if keep is None and relevant is not None:
            keep = relevant
        flags = _flags_of(lowered.get("flags", lowered.get("flag_types", [])))
        if keep is None and flags:
            keep = False
        reason = lowered.get("reason") or lowered.get("explanation") or ""
        if "<why" in str(reason):  # the prompt's placeholder copied back is no reason
            reason = ""
        if keep is not None:
            return ParsedVerdict(keep, flags, str(reason)[:500], f"json:{parsed.method}")
    for pattern, invert in ((_KEEP_WORD, False), (_FLAGGED_WORD, True)):
        match = pattern.search(text)
        if match and _as_bool(match.group(1)) is not None:
            keep = _as_bool(match.group(1))
            return ParsedVerdict(keep != invert, [], text.strip()[:200], "regex")
    match = _VERDICT_WORD.match(text)
    if match:
        keep = match.group(1).lower() in ("keep", "accept")
        return ParsedVerdict(keep, [], text.strip()[:200], "leading_word")
    return ParsedVerdict(None, [], "", "none")


def _rationale_rows(rationales: Sequence[Rationale]) -> list[dict[str, str | None]]:
    return [{"text": r.text, "flag_instructions": r.flag_instructions} for r in rationales]


async def check_chunk(
    question: str,
    chunk: ScoredChunk,
    rationales: Sequence[Rationale],
    ctx: RunContext,
    call: CallSite = CallSite(DEFAULT_PROMPT),
) -> LLMCheck:
    """One LLM call judging ``chunk``; never raises for LLM or parse failures."""
    template = ctx.prompts.get(call.prompt)
    messages = template.render(
        question=question,
        rationales=_rationale_rows(rationales),
        chunk_text=call.shown(chunk.chunk.text),
        chunk_id=chunk.id,
    )
    llm = ctx.llm_for(call.node)
    try:
        completion = await llm.chat(messages, max_tokens=template.max_tokens, temperature=0.0, stop=["}"])
    except LLMError as err:
        event = call_failed(call.node, f"verifier for {chunk.id}", err, chunk_id=chunk.id)
        return LLMCheck(chunk.id, ParsedVerdict(None), error=f"{type(err).__name__}: {err}", trace=[event],
                        usage=Usage(calls=1, failed_calls=1))
    text = completion.text
    if completion.finish_reason == "stop" and "{" in text and not text.rstrip().endswith("}"):
        text = text + "}"  # the verdict is a flat object: generation stops at its closing brace (saves tokens)
    verdict = parse_verdict(text)
    trace = reply_events(call.node, f"verdict for {chunk.id}", completion, method=verdict.method,
                         readable=verdict.keep is not None, ids={"chunk_id": chunk.id})
    return LLMCheck(chunk.id, verdict, raw=completion.text, usage=completion.usage.model_copy(update={"calls": 1}),
                    trace=trace)
