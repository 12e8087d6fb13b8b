"""Validate and renumber the ``[n]`` markers of a generated answer.

Models cite numbers that do not exist (``[7]`` with four documents), repeat markers, and
write ``[1, 2]`` or ``[1-3]``. This module keeps the markers that point at real evidence,
removes the others (recording each removal), and renumbers what is left 1, 2, 3… in order of
first appearance so ``Answer.citations`` lists only the chunks actually cited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ragpipe.schema import Citation, ScoredChunk, TraceEvent

# [3]  [1, 2]  [1;2]  [1-3]  [ 2 ]
MARKER = re.compile(r"\s?\[(\s*\d+(?:\s*[-–,;]\s*\d+)*\s*)\]")
_MAX_RANGE = 20


@dataclass
class CitedText:
    """An answer text with valid, renumbered markers and the citations they resolve to."""

    text: str
    citations: list[Citation]
    events: list[TraceEvent] = field(default_factory=list)


def _numbers(inside: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", inside.strip()):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            numbers.extend(range(lo, hi + 1) if 0 < hi - lo <= _MAX_RANGE else [lo, hi])
        elif part.isdigit():
            numbers.append(int(part))
    return numbers


def resolve_citations(text: str, evidence: list[ScoredChunk], node: str = "generate") -> CitedText:
    """Keep in-range markers, drop the rest, renumber by first appearance, build citations."""
    renumber: dict[int, int] = {}
    dropped: list[int] = []

    def replace(match: re.Match[str]) -> str:
        kept: list[int] = []
        for n in _numbers(match.group(1)):
            if not 1 <= n <= len(evidence):
                dropped.append(n)
                continue
            new = renumber.setdefault(n, len(renumber) + 1)
            if new not in kept:
                kept.append(new)
        if not kept:
            return ""
        lead = " " if match.group(0).startswith((" ", "\t", "\n")) else ""
        return lead + "".join(f"[{n}]" for n in kept)

    cleaned = MARKER.sub(replace, text).strip()
    events: list[TraceEvent] = []
    if dropped:
        events.append(
            TraceEvent(
                node=node,
                kind="repair",
                message=f"removed {len(dropped)} citation marker(s) outside 1..{len(evidence)}",
                data={"out_of_range": dropped, "evidence_count": len(evidence)},
            )
        )
    if renumber and any(old != new for old, new in renumber.items()):
        events.append(
            TraceEvent(node=node, kind="repair", message="renumbered citations in order of first use",
                       data={"mapping": {str(o): n for o, n in renumber.items()}})
        )
    citations = []
    for old, new in sorted(renumber.items(), key=lambda kv: kv[1]):
        chunk = evidence[old - 1].chunk
        citations.append(
            Citation(
                n=new,
                chunk_id=chunk.id,
                source=chunk.source,
                position=chunk.position,
                start_char=chunk.start_char,
                end_char=chunk.end_char,
            )
        )
    return CitedText(text=cleaned, citations=citations, events=events)
