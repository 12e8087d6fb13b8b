"""Lenient parsers for what LLM rankers emit: permutations, JSON score maps, integers, yes/no.

LLM output is untrusted. Every parser here either returns a usable value together with the
list of repairs it made (so the caller can trace them) or raises ``OutputParseError`` with the
raw text, so the caller can fall back. None of them returns ``None`` for a failure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ragpipe.errors import OutputParseError
from ragpipe.llm.base import Completion, TokenLogprob
from ragpipe.llm.json_reply import parse_json_lenient

Label = TypeVar("Label")

# Digits that small models emit instead of ASCII ones: superscripts, subscripts, circled, full-width.
_FAKE_DIGITS = str.maketrans(
    "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉⓪①②③④⑤⑥⑦⑧⑨０１２３４５６７８９",
    "0123456789" "0123456789" "0123456789" "0123456789",
)
_ID = r"\[\s*([0-9]{1,3}|[A-Za-z])\s*\]"
_CHAIN = re.compile(_ID + r"(?:\s*(?:>|,|>>|→|->)\s*" + _ID + r")+")
_ONE_ID = re.compile(_ID)
_BRACKETED = re.compile(r"\[(\d{1,3}|[A-Za-z])\]")
# Lines a small model copies from the prompt before (or instead of) answering.
_ECHO_LINE = re.compile(r"^\s*(?:question|query|search query)\s*:.*$\n?",
                        re.IGNORECASE | re.MULTILINE)
# The answer options as the prompts spell them: an echo of them is not a choice.
_ECHO_OPTIONS = re.compile(r"passage\s+a\s+or\s+passage\s+b|\byes\s+or\s+no\b|\(?\b0\s*(?:-|to)\s*10\b\)?",
                           re.IGNORECASE)


def strip_thinking(text: str) -> str:
    """Drop a reasoning preamble that ends in ``</think>``."""
    head, sep, tail = text.rpartition("</think>")
    return tail if sep else text


def strip_echo(text: str) -> str:
    """Drop copied prompt lines (``Question: …``, ``Query: …``) and echoed answer options
    (``Passage A or Passage B``, ``Yes or No``, ``0-10``); the whole text if nothing else is left."""
    kept = _ECHO_OPTIONS.sub(" ", _ECHO_LINE.sub("", text))
    return kept if kept.strip() else _ECHO_OPTIONS.sub(" ", text)


def normalise_digits(text: str) -> str:
    return text.translate(_FAKE_DIGITS)


def neutralise_identifiers(text: str) -> str:
    """Rewrite ``[n]`` / ``[X]`` inside passages and queries to ``(n)`` so they cannot pose as ids."""
    return _BRACKETED.sub(r"(\1)", text)


def identifier_to_index(ident: str) -> int:
    """``"3"`` -> 2 and ``"C"`` (or ``"c"``) -> 2 (0-based)."""
    return int(ident) - 1 if ident.isdigit() else ord(ident.upper()) - ord("A")


def letter_ids(n: int) -> list[str]:
    """Single-letter identifiers A, B, ... for a window of ``n`` (at most 26)."""
    if n > 26:
        raise ValueError(f"letter identifiers support at most 26 passages, got {n}")
    return [chr(ord("A") + i) for i in range(n)]


def ideal_permutation(n: int, *, letters: bool = False) -> str:
    """The answer a perfect model would give: ``[1] > [2] > … > [n]`` (its length sizes max_tokens)."""
    ids = letter_ids(n) if letters else [str(i) for i in range(1, n + 1)]
    return " > ".join(f"[{i}]" for i in ids)


@dataclass
class PermutationParse:
    """A complete permutation of ``range(n)`` and how it was obtained from the raw text."""

    order: list[int]
    status: str  # rank_llm's taxonomy: ok | missing_documents | repetition
    repairs: list[str] = field(default_factory=list)


def complete_permutation(ids: Iterable[int], n: int) -> tuple[list[int], list[str]]:
    """Dedupe (first wins), drop out-of-range ids, append the missing ones in input order."""
    repairs: list[str] = []
    seen: set[int] = set()
    order: list[int] = []
    duplicates: list[int] = []
    out_of_range: list[int] = []
    for i in ids:
        if not 0 <= i < n:
            out_of_range.append(i + 1)
        elif i in seen:
            duplicates.append(i + 1)
        else:
            seen.add(i)
            order.append(i)
    if duplicates:
        repairs.append(f"removed repeated id(s) {duplicates}")
    if out_of_range:
        repairs.append(f"dropped out-of-range id(s) {out_of_range}")
    missing = [i for i in range(n) if i not in seen]
    if missing:
        repairs.append(f"appended {len(missing)} missing id(s) in input order")
        order.extend(missing)
    return order, repairs


def parse_permutation(text: str, n: int) -> PermutationParse:
    """Read a ``[a] > [b] > …`` ranking of ``n`` passages, repairing what can be repaired.

    The text must contain a chain of at least two bracketed ids joined by ``>`` (or commas);
    a lone id such as ``Received passage [20].`` is not a ranking and raises ``OutputParseError``.
    The longest chain in the text is used; a window of one passage needs no ranking at all.
    """
    if n == 1:
        return PermutationParse(order=[0], status="ok")
    cleaned = normalise_digits(strip_echo(strip_thinking(text)))
    chains = [m.group(0) for m in _CHAIN.finditer(cleaned)]
    if not chains:
        raise OutputParseError(f"wrong_format: no '[a] > [b]' ranking in the output: {text[:200]!r}", raw=text)
    chain = max(chains, key=lambda c: len(_ONE_ID.findall(c)))
    ids = [identifier_to_index(x) for x in _ONE_ID.findall(chain)]
    order, repairs = complete_permutation(ids, n)
    if len(chains) > 1:
        repairs.insert(0, f"used the longest of {len(chains)} rankings in the output")
    if len(ids) > n or len(set(ids)) < len(ids):
        status = "repetition"
    elif len({i for i in ids if 0 <= i < n}) < n:
        status = "missing_documents"
    else:
        status = "ok"
    return PermutationParse(order=order, status=status, repairs=repairs)


# ---------------------------------------------------------------- JSON score maps

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def extract_json_object(text: str) -> tuple[dict, list[str]]:
    """The JSON object in a model answer: ``<answer>`` body, last fenced block, else last ``{…}``.

    Rankers that reason first put their answer last, so the last object is read; what the
    reader repaired comes back as the list of repairs.
    """
    body = strip_thinking(text)
    answer = _ANSWER.search(body)
    if answer:
        body = answer.group(1)
    parsed = parse_json_lenient(body, last=True, want=(dict,))
    if parsed is None:
        raise OutputParseError(f"no usable JSON object in the output: {text[:200]!r}", raw=text)
    return parsed.value, list(parsed.repairs)


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = re.search(r"-?\d+(?:\.\d+)?", value)
        return float(match.group(0)) if match else None
    if isinstance(value, Mapping):
        for key in ("score", "relevance", "value"):
            if key in value:
                return _as_number(value[key])
    return None


def parse_score_map(obj: Mapping, n: int, *, low: float = 0.0, high: float = 10.0) -> tuple[dict[int, float], list[str]]:
    """Map keys like ``"1"``, ``"[1]"``, ``"doc 1"`` to 0-based positions; clamp values to [low, high]."""
    scores: dict[int, float] = {}
    repairs: list[str] = []
    ignored: list[str] = []
    clamped: list[int] = []
    for key, raw in obj.items():
        match = re.search(r"\d+", normalise_digits(str(key)))
        number = _as_number(raw)
        if match is None or number is None or not 1 <= int(match.group(0)) <= n:
            ignored.append(str(key))
            continue
        index = int(match.group(0)) - 1
        if index in scores:
            ignored.append(str(key))
            continue
        if not low <= number <= high:
            clamped.append(index + 1)
            number = min(max(number, low), high)
        scores[index] = number
    if ignored:
        repairs.append(f"ignored unusable key(s) {ignored[:10]}")
    if clamped:
        repairs.append(f"clamped out-of-range score(s) of id(s) {clamped} to [{low:g}, {high:g}]")
    if not scores:
        raise OutputParseError(f"no usable scores in {dict(list(obj.items())[:10])!r}", raw=json.dumps(obj, default=str))
    return scores, repairs


# ---------------------------------------------------------------- single answers

_INTEGER = re.compile(r"(?<![\d.\-])(\d{1,2})(?!\d|\.\d)")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_int_score(text: str, low: int = 0, high: int = 10) -> int:
    """The last integer in [low, high] in the answer (``"Score: 7"``, ``"7/10"`` -> 7)."""
    body = normalise_digits(strip_echo(strip_thinking(text)))
    body = re.sub(r"(\d+)\s*/\s*10\b", r"\1", body)
    values = [int(v) for v in _INTEGER.findall(body) if low <= int(v) <= high]
    if not values:
        raise OutputParseError(f"no integer score in [{low}, {high}]: {text[:200]!r}", raw=text)
    return values[-1]


def parse_yes_no(text: str) -> bool:
    """The first standalone yes/no in the answer (``"Not relevant (NO)"`` -> False)."""
    match = _YES_NO.search(strip_echo(strip_thinking(text)))
    if match is None:
        raise OutputParseError(f"no yes/no in the output: {text[:200]!r}", raw=text)
    return match.group(1).lower() == "yes"


def parse_ab(text: str) -> str:
    """``"Passage A"`` / ``"B"`` -> ``"A"`` / ``"B"``; anything else raises."""
    body = strip_echo(strip_thinking(text)).strip()
    match = re.search(r"passage\s*:?\s*\(?([AB])\b", body, re.IGNORECASE) or re.match(r"^\W*([AB])\b", body)
    if match is None:
        raise OutputParseError(f"neither passage A nor B named: {text[:200]!r}", raw=text)
    return match.group(1).upper()


def bare_token(token: str) -> str:
    """A top-logprob token without surrounding whitespace and brackets (``" [C"`` -> ``"C"``)."""
    return token.strip().strip("[]()").strip()


# What a model writes before the identifier it means: "[", "Passage", "Passage:", "**", "(".
_OPENERS = {"", "passage", "passage:", "document", "answer", "answer:", "score", "score:", "relevance",
            "relevance:", ":", "**", "*"}


def answer_position(positions: Sequence[TokenLogprob] | None, is_answer: Callable[[str], bool]
                    ) -> TokenLogprob | None:
    """The generated position that carries the answer: the first whose chosen token is one.

    Opening tokens (``[``, ``Passage``, ``Score:``) are skipped: at those positions answer tokens
    show up only as unlikely alternatives, and reading them there gives a near-random order.
    Returns ``None`` when the model chose something else first (prose, a refusal).
    """
    for position in positions or []:
        word = bare_token(position.token)
        if is_answer(word):
            return position
        if word.lower() not in _OPENERS:
            return None
    return None


def answer_mass(completion: Completion, label: Callable[[str], Label | None]
                ) -> tuple[TokenLogprob, dict[Label, float]] | None:
    """The answer position and the probability mass per answer among its top alternatives.

    ``label`` maps a bare token to the answer it spells (``"yes"``, ``"A"``, ``7``) or ``None``;
    every spelling of an answer (``"A"``, ``" A"``, ``"[A"``) adds to that answer's mass. ``None``
    when the model chose something other than an answer first.
    """
    position = answer_position(completion.logprobs, lambda word: label(word) is not None)
    if position is None:
        return None
    mass: dict[Label, float] = {}
    for token, logprob in position.top_dict().items():
        key = label(bare_token(token))
        if key is not None:
            mass[key] = mass.get(key, 0.0) + math.exp(logprob)
    return position, mass
