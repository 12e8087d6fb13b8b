"""Robust mode: isolate, then aggregate (RobustRAG's idea) as an ``answer_consistency`` signal.

Each passage answers the question on its own, in a few words (one short LLM call per passage;
the calls share the prompt prefix, which llama.cpp and vLLM cache, and run concurrently where
the backend allows). Answers are grouped; a group's support is the number of *independent*
sources behind it, where passages that are near-duplicates of each other count once, since
planted passages are paraphrases of one claim. Passages whose answer disagrees with a
clearly better-supported answer are flagged. Symmetric: every passage is treated alike, none is
a reference for the others. Cost: one call per passage, so it is opt-in.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ragpipe.context import RunContext
from ragpipe.errors import LLMError
from ragpipe.schema import ScoredChunk, TraceEvent, Usage
from ragpipe.verify.calls import CallSite
from ragpipe.verify.signals import SignalResult, components, similarity_links

ANSWER_CONSISTENCY = "answer_consistency"
ISOLATED_PROMPT = "verifier.isolated"
_ABSTAIN = re.compile(r"\b(unknown|not (stated|mentioned|given|specified|provided)|no answer|does not (say|answer|mention)|"
                      r"cannot|can't|i don'?t know|n/?a)\b", re.IGNORECASE)
_STOP = frozenset("a an the of in on at to for by with and or is was are were be been it its this that as from new "
                  "study which who what when where how answer passage question".split())


@dataclass
class IsolatedAnswers:
    """Each passage's own answer (None = abstained or failed) and the call cost."""

    answers: list[str | None]
    usage: Usage = field(default_factory=Usage)
    trace: list[TraceEvent] = field(default_factory=list)
    failed: int = 0


def answer_key(answer: str | None) -> frozenset[str]:
    """Content words of a short answer; empty for an abstention."""
    if not answer or _ABSTAIN.search(answer):
        return frozenset()
    words = re.findall(r"[a-z0-9]+", answer.lower())
    return frozenset(w for w in words if w not in _STOP)


def same_answer(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a and b) and (a <= b or b <= a or len(a & b) / len(a | b) >= 0.5)


def answer_consistency_signal(
    answers: Sequence[str | None],
    texts: Sequence[str],
    embeddings: np.ndarray | None = None,
    *,
    margin: int = 2,
    source_rouge: float = 0.4,
    source_cosine: float = 0.8,
    clusters: Sequence[int] | None = None,
) -> SignalResult:
    """Flag passages whose answer loses to an answer backed by ``margin`` more independent sources.

    With ``clusters`` (the near-duplicate cluster of each passage) a passage of a cluster is also
    flagged when its answer is *uncorroborated*: no passage outside its cluster gives that
    answer. A cluster that is the whole pool, or that one outside source agrees with, is never
    flagged this way: there is nothing independent to check it against, or it is corroborated.
    """
    n = len(answers)
    keys = [answer_key(a) for a in answers]
    groups: list[list[int]] = []
    for i, key in enumerate(keys):
        if not key:
            continue
        for group in groups:
            if same_answer(keys[group[0]], key):
                group.append(i)
                break
        else:
            groups.append([i])
    same_source = similarity_links(texts, embeddings, source_rouge, source_cosine)[0]

    def support(group: list[int]) -> int:
        return len(components(same_source[np.ix_(group, group)]))

    supports = [support(g) for g in groups]
    flagged, scores, details = [False] * n, [0.0] * n, [""] * n
    best = int(np.argmax(supports)) if supports else -1
    for gi, group in enumerate(groups):
        for i in group:
            lead = supports[best] - supports[gi] if best >= 0 else 0
            scores[i] = float(lead)
            details[i] = (f"answers '{answers[i]}' ({supports[gi]} independent source(s)); "
                          f"'{answers[groups[best][0]]}' has {supports[best]}")
            flagged[i] = gi != best and lead >= margin
    if clusters is not None:
        for i, key in enumerate(keys):
            outside = [j for j in range(n) if clusters[j] != clusters[i]]
            if not key or flagged[i] or sum(c == clusters[i] for c in clusters) < 2:
                continue
            agree = [j for j in outside if same_answer(key, keys[j])]
            if outside and not agree:
                flagged[i] = True
                details[i] = (f"answers '{answers[i]}', which none of the {len(outside)} passage(s) outside its "
                              "cluster of near-duplicates gives")
    for i in range(n):
        if not keys[i]:
            details[i] = "no answer from this passage alone"
    return SignalResult(ANSWER_CONSISTENCY, flagged, scores, details)


async def isolated_answers(
    question: str, evidence: Sequence[ScoredChunk], ctx: RunContext, call: CallSite = CallSite(ISOLATED_PROMPT),
) -> IsolatedAnswers:
    """One short answer per passage, each from that passage alone; failures count as abstentions."""
    template = ctx.prompts.get(call.prompt)
    llm = ctx.llm_for(call.node)

    async def one(chunk: ScoredChunk) -> tuple[str | None, Usage, TraceEvent]:
        messages = template.render(question=question, passage=call.shown(chunk.chunk.text))
        try:
            completion = await llm.chat(messages, max_tokens=template.max_tokens, temperature=0.0, stop=["\n"])
        except LLMError as err:
            return None, Usage(calls=1, failed_calls=1), TraceEvent(
                node=call.node, kind="llm_error", message=f"isolated answer failed for {chunk.id}: {err}",
                data={"chunk_id": chunk.id})
        text = completion.text.strip().strip('"').strip()
        return text, completion.usage.model_copy(update={"calls": 1}), TraceEvent(
            node=call.node, kind="llm_reply", message=f"isolated answer for {chunk.id}",
            data={"chunk_id": chunk.id, "raw": completion.text})

    results = await asyncio.gather(*(one(c) for c in evidence))
    usage = Usage()
    for _, u, _ in results:
        usage = usage + u
    return IsolatedAnswers([a for a, _, _ in results], usage, [e for _, _, e in results],
                           failed=sum(1 for a, _, _ in results if a is None))
