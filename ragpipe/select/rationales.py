"""Question-conditioned rationales: search facets with a rule for rejecting chunks on each facet.

The LLM is asked for JSON, but its output is untrusted: ``parse_rationales`` accepts JSON, the
``<rationale_i>`` tag format, ``Rationale n:`` blocks, numbered lists and finally plain lines,
strips ``[label]`` prefixes and ``Flag Instructions:`` suffixes, and deduplicates.
``generate_rationales`` never raises for a bad reply: when nothing usable comes back it falls
back to the question itself as the only rationale and says so in the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ragpipe.context import RunContext
from ragpipe.errors import LLMError
from ragpipe.schema import Rationale, TraceEvent, Usage
from ragpipe.llm.json_reply import parse_json_lenient

DEFAULT_PROMPT = "rationale.default"
NODE = "meteora"
# Output budget per rationale asked for: a label, one or two sentences and a flag rule, as JSON.
TOKENS_PER_RATIONALE = 96
REPLY_FRAME_TOKENS = 16  # the {"rationales": [...]} around them

_TEXT_KEYS = ("text", "rationale", "strategy", "search", "facet", "description", "content")
_FLAG_KEYS = ("flag_instructions", "flag_instruction", "flag", "flags", "reject_if", "flag_rule")
_STRICT_TAGS = re.compile(r"<rationale_?(\d+)>(.*?)</rationale_?\1>", re.DOTALL | re.IGNORECASE)
_LOOSE_TAGS = re.compile(r"<rationale_?(\d+)>(.*?)(?=</?rationale_?\d+>|\Z)", re.DOTALL | re.IGNORECASE)
_RATIONALE_N = re.compile(
    r"(?:^|\n)\s*\**\s*rationale\s*#?(\d+)\s*\**\s*[:.)\-]\s*(.*?)(?=\n\s*\**\s*rationale\s*#?\d+\s*\**\s*[:.)\-]|\Z)",
    re.DOTALL | re.IGNORECASE,
)
_NUMBERED = re.compile(r"(?:^|\n)\s*(\d{1,2})\s*[.)]\s+(.*?)(?=\n\s*\d{1,2}\s*[.)]\s+|\Z)", re.DOTALL)
_FLAG_SPLIT = re.compile(r"\**\s*flag[ _-]?instructions?\s*\**\s*[:\-]\s*", re.IGNORECASE)
_LABEL = re.compile(r"^\s*\[([^\]\n]{1,80})\]\s*[:\-]?\s*")
_BOLD_LABEL = re.compile(r"^\s*\*\*([^*\n]{1,80})\*\*\s*[:\-]\s*")
_MARKUP = re.compile(r"</?[a-zA-Z_][\w\-]*\d*>")
_BULLET = re.compile(r"^\s*(?:[-*•]+\s+|\d{1,2}\s*[.)]\s+)")
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|sorry,)", re.IGNORECASE)
_MIN_WORDS = 3


@dataclass
class RationaleParse:
    """Parsed rationales and the format they were found in (``json``, ``tags``, ``lines``, ``none``...)."""

    rationales: list[Rationale]
    method: str
    dropped: int = 0


@dataclass
class RationaleOutcome:
    """What ``generate_rationales`` produced, with its cost and everything worth auditing."""

    rationales: list[Rationale]
    fallback: bool
    method: str
    trace: list[TraceEvent] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


def _clean(raw: str) -> tuple[str, str | None, str | None]:
    """Split one raw rationale into (text, label, flag_instructions), markup removed."""
    text = _MARKUP.sub(" ", raw).strip()
    flag: str | None = None
    parts = _FLAG_SPLIT.split(text, maxsplit=1)
    if len(parts) == 2:
        text, flag = parts[0].strip(), parts[1].strip() or None
    text = _BULLET.sub("", text, count=1)
    label: str | None = None
    for pattern in (_LABEL, _BOLD_LABEL):
        match = pattern.match(text)
        if match:
            label, text = match.group(1).strip(), text[match.end() :]
            break
    text = " ".join(text.replace("**", "").split()).strip(" -:;")
    if flag:
        flag = " ".join(flag.replace("**", "").split())
    return text, label, flag


def _from_json(value: Any) -> list[tuple[str, str | None, str | None]] | None:
    items: Any = value
    if isinstance(value, dict):
        items = value.get("rationales")
        if not isinstance(items, list):
            items = next((v for v in value.values() if isinstance(v, list)), None)
    if not isinstance(items, list):
        return None
    found = []
    for item in items:
        if isinstance(item, str):
            found.append(_clean(item))
        elif isinstance(item, dict):
            text = next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)), "")
            flag = next((item[k] for k in _FLAG_KEYS if item.get(k)), None)
            if isinstance(flag, list):
                flag = "; ".join(str(f) for f in flag)
            cleaned, label, inline_flag = _clean(text)
            label = item.get("label") if isinstance(item.get("label"), str) else label
            found.append((cleaned, (label or "").strip("[] ") or None, (str(flag).strip() if flag else inline_flag)))
    return found


def _from_patterns(text: str) -> tuple[list[tuple[str, str | None, str | None]], str]:
    for name, pattern in (("tags", _STRICT_TAGS), ("loose_tags", _LOOSE_TAGS), ("rationale_n", _RATIONALE_N)):
        matches = pattern.findall(text)
        if matches:
            ordered = sorted(matches, key=lambda m: int(m[0]))
            return [_clean(body) for _, body in ordered], name
    numbered = _NUMBERED.findall(text)
    if len(numbered) >= 2:
        return [_clean(body) for _, body in numbered], "numbered"
    lines = [line for line in text.splitlines() if line.strip()]
    return [_clean(line) for line in lines], "lines"


def _keep_usable(raw: list[tuple[str, str | None, str | None]]) -> tuple[list[Rationale], int]:
    """Drop fragments, refusals and duplicates; number what is left from 1."""
    kept: list[Rationale] = []
    seen: set[str] = set()
    for body, label, flag in raw:
        key = body.lower()
        if len(re.findall(r"[^\W\d_]{2,}", body)) < _MIN_WORDS or _REFUSAL.match(body) or key in seen:
            continue
        seen.add(key)
        kept.append(Rationale(index=len(kept) + 1, text=body, label=label, flag_instructions=flag))
    return kept, len(raw) - len(kept)


def parse_rationales(text: str, *, limit: int | None = None) -> RationaleParse:
    """Rationales found in an LLM reply, in the order given; empty when nothing usable is there."""
    if "Query:" in text:  # some models echo the prompt; keep what follows the last echo
        tail = text.rsplit("Query:", 1)[1]
        text = tail.split("\n", 1)[1] if "\n" in tail else text
    parsed = parse_json_lenient(text)
    from_json = _from_json(parsed.value) if parsed else None
    kept, dropped = _keep_usable(from_json or [])
    method = f"json:{parsed.method}" if parsed and kept else ""
    if not kept:
        raw, method = _from_patterns(text)
        kept, dropped = _keep_usable(raw)
    if limit is not None and len(kept) > limit:
        dropped += len(kept) - limit
        kept = kept[:limit]
    return RationaleParse(kept, method if kept else "none", dropped)


def _ends_the_reply(text: str, reply: str) -> bool:
    """Whether ``text`` (a parsed rationale) runs to the end of a cut ``reply``, so it may be cut too.

    Only markup may follow it; a rationale followed by more words (the start of the next one) is whole.
    """
    words = text.split()[-3:]
    tail = re.search(r"\W*".join(re.escape(w) for w in words) + r"(.*)\Z", reply, re.DOTALL) if words else None
    return tail is None or not re.search(r"[^\W_]{2,}", tail.group(1))


def at_most(schema: dict[str, Any] | None, n: int) -> dict[str, Any] | None:
    """``schema`` with its ``rationales`` array capped at ``n`` items, so a constrained decoder closes
    the reply after the count asked for instead of repeating rationales until max_tokens."""
    array = ((schema or {}).get("properties") or {}).get("rationales")
    if not isinstance(array, dict) or array.get("type") != "array":
        return schema
    capped = {**array, "maxItems": min(n, array.get("maxItems", n))}
    return {**schema, "properties": {**schema["properties"], "rationales": capped}}


def question_rationale(question: str) -> Rationale:
    """The fallback rationale: the question itself, with no flag rule."""
    return Rationale(index=1, text=question.strip(), label="question")


async def generate_rationales(
    question: str,
    ctx: RunContext,
    *,
    num_rationales: int = 8,
    prompt: str = DEFAULT_PROMPT,
    node: str = NODE,
    temperature: float = 0.0,
    seed: int | None = None,
) -> RationaleOutcome:
    """Ask the LLM for ``num_rationales`` rationales; fall back to the question when that fails."""
    template = ctx.prompts.get(prompt)
    messages = template.render(question=question, num_rationales=num_rationales)
    llm = ctx.llm_for(node)
    schema = at_most(template.output.json_schema, num_rationales) if llm.capabilities.json_schema else None
    trace: list[TraceEvent] = []
    usage = Usage()
    # Decoding dominates on a CPU: stop near the count asked for, not at the prompt's ceiling.
    max_tokens = min(template.max_tokens, num_rationales * TOKENS_PER_RATIONALE + REPLY_FRAME_TOKENS)
    try:
        completion = await llm.chat(
            messages, max_tokens=max_tokens, temperature=temperature, seed=seed, json_schema=schema
        )
    except LLMError as err:
        trace.append(
            TraceEvent(node=node, kind="fallback", message=f"rationale call failed ({type(err).__name__}: {err}); "
                       "using the question as the only rationale", data={"error": str(err)})
        )
        return RationaleOutcome([question_rationale(question)], True, "none", trace, Usage(calls=1, failed_calls=1))
    usage = completion.usage.model_copy(update={"calls": 1})
    trace.append(
        TraceEvent(node=node, kind="llm_reply", message="rationales",
                   data={"prompt": prompt, "raw": completion.text, "finish_reason": completion.finish_reason})
    )
    parse = parse_rationales(completion.text, limit=num_rationales)
    rationales = parse.rationales
    if completion.truncated and len(rationales) > 1 and _ends_the_reply(rationales[-1].text, completion.text):
        rationales = rationales[:-1]
        trace.append(
            TraceEvent(node=node, kind="truncation", message="reply hit max_tokens; dropped the last, "
                       "possibly cut, rationale", data={"kept": len(rationales)})
        )
    elif completion.truncated:
        trace.append(
            TraceEvent(node=node, kind="truncation", message="reply hit max_tokens after the last whole rationale; "
                       "kept them all", data={"kept": len(rationales)})
        )
    if parse.method not in ("json:strict", "none"):
        trace.append(
            TraceEvent(node=node, kind="repair", message=f"rationales parsed leniently ({parse.method})",
                       data={"method": parse.method, "dropped": parse.dropped})
        )
    if not rationales:
        trace.append(
            TraceEvent(node=node, kind="fallback", message="no usable rationale in the reply; using the "
                       "question as the only rationale", data={"raw": completion.text[:500]})
        )
        return RationaleOutcome([question_rationale(question)], True, "none", trace, usage)
    return RationaleOutcome(rationales, False, parse.method, trace, usage)
