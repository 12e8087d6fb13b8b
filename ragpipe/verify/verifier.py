"""The verifier: cheap poisoning signals plus one LLM pass, combined into per-chunk verdicts.

Every chunk gets every enabled signal; a chunk is dropped when the weighted sum of what fired
reaches ``drop_threshold`` (1.0). Unmistakable instructions aimed at a model (the strong
``instruction`` patterns) and an LLM naming the chunk each drop it alone. Weak hints (a weak
instruction pattern, ``query_echo``, ``perplexity``, ``answer_consistency``: 0.5 each;
``near_duplicate``: 0.5 for a cluster of paraphrases, 0.25 for a cluster of copies) need a
second one, because each also fires on honest text: outlets reword and syndicate one story, so
a cluster alone is no proof of planting. A cluster of paraphrases whose answer none of the
other candidates gives (near_duplicate + answer_consistency) is dropped, and so is one whose
rewordings all state a term no other candidate mentions (``uncorroborated``: no LLM needed, the
claim has no independent support). That signal drops a group alone when its rewordings come from
``uncorroborated_alone`` (4) documents or more, as planted passages do; a smaller group, or one
document rewording itself (a manual covering one topic over several sections), weighs 0.5 and
needs a second signal.

**One LLM pass** (``llm_mode="listwise"``, the default): all candidates go into one prompt as
numbered data blocks and the reply names the suspicious ones. ``llm_mode="per_chunk"`` asks one
call per chunk (concurrently). Neither shows a chunk "evidence accepted so far": every
judgement sees the same inputs whatever the selector's order, so a planted chunk that came
first cannot become the reference that honest chunks are measured against.

**Answer consistency** (``answer_consistency``): each chunk's own short answer to the question,
aggregated over independent sources. By default (``answer_mode="listwise"``) all answers come
from one call, made only when the signal could tip a chunk over the threshold (a chunk already
carries another weak hint), so the verifier makes at most two calls. The **robust mode**
(``answer_mode="per_chunk"``, see ``ROBUST``) asks each chunk alone (isolate, then aggregate):
better answers from small models, one extra short call per chunk, hence opt-in; there an answer
that loses to the independent sources drops its chunk alone, for planted passages that are not
near-duplicates of each other.

**Fail policy** (``fail_policy``): an LLM verdict that cannot be read (broken reply, failed
call, a reply that only echoes the prompt) is counted, traced and warned about, never silently
kept or dropped. ``"fail_open"`` (default) then decides those chunks on the cheap signals
alone: the small local models ragpipe runs by default break formats often, and dropping on every
slip would turn hiccups into lost evidence, while prompt injection is caught by the
deterministic signals anyway. ``"fail_closed"`` drops them: for users to whom a missed poison
costs more than a lost chunk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.retrieve.vectors import chunk_vectors
from ragpipe.schema import (
    DroppedEvidence,
    Rationale,
    ScoredChunk,
    TraceEvent,
    Usage,
    Verdict,
)
from ragpipe.settings_layers import validate_table
from ragpipe.verify.calls import CallSite
from ragpipe.verify.isolation import (
    ANSWER_CONSISTENCY,
    ISOLATED_PROMPT,
    IsolatedAnswers,
    answer_consistency_signal,
    answer_key,
    isolated_answers,
    same_answer,
)
from ragpipe.verify.listwise_answers import ANSWERS_PROMPT, listwise_answers
from ragpipe.verify.listwise_check import LISTWISE_PROMPT, check_all
from ragpipe.verify.llm_check import DEFAULT_PROMPT, check_chunk
from ragpipe.verify.one_pass import ONE_PASS_PROMPT, one_pass
from ragpipe.verify.perplexity import PERPLEXITY, perplexity_signal, scorer_of
from ragpipe.verify.rules import usable_rules
from ragpipe.verify.signals import (
    INSTRUCTION,
    NEAR_DUPLICATE,
    QUERY_ECHO,
    UNCORROBORATED,
    SignalResult,
    instruction_signal,
    near_duplicate_signal,
    query_echo_signal,
    rouge_tokens,
    uncorroborated_signal,
)

log = logging.getLogger(__name__)

LLM = "llm"
PARSE_ERROR = "parse_error"
ALL_SIGNALS = (INSTRUCTION, QUERY_ECHO, NEAR_DUPLICATE, UNCORROBORATED, PERPLEXITY, LLM, ANSWER_CONSISTENCY)
# Perplexity is opt-in: one scoring pass per chunk, and little found on fluent LLM-written
# poison (kept as the published baseline; see the poisoning benchmark).
DEFAULT_SIGNALS = (INSTRUCTION, QUERY_ECHO, NEAR_DUPLICATE, UNCORROBORATED, LLM, ANSWER_CONSISTENCY)
_WEIGHTS = {
    INSTRUCTION: 1.0, LLM: 1.0,  # each drops a chunk alone
    UNCORROBORATED: 1.0,  # graded: full for a group spanning uncorroborated_alone documents, else half
    NEAR_DUPLICATE: 0.5, QUERY_ECHO: 0.5, PERPLEXITY: 0.5, ANSWER_CONSISTENCY: 0.5,
}
# The robust mode: every chunk answers the question alone (one short call per chunk), and an
# answer that loses to the independent sources drops its chunk by itself (RobustRAG's vote).
ROBUST: dict[str, object] = {"answer_mode": "per_chunk", "weights": {**_WEIGHTS, ANSWER_CONSISTENCY: 1.0}}
_LLM_SIGNALS = (LLM, ANSWER_CONSISTENCY)


class VerifierConfig(BaseModel):
    """How the verifier decides; every field is safe to change per pipeline. Unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")

    signals: tuple[str, ...] = DEFAULT_SIGNALS
    weights: dict[str, float] = Field(default_factory=lambda: dict(_WEIGHTS))
    drop_threshold: float = Field(1.0, gt=0)
    llm_mode: Literal["listwise", "one_pass", "per_chunk"] = "listwise"  # one_pass: slower and unread with small models
    answer_mode: Literal["listwise", "per_chunk"] = "listwise"
    fail_policy: Literal["fail_open", "fail_closed"] = "fail_open"
    skip_llm_when_dropped: bool = True
    one_pass_prompt: str = ONE_PASS_PROMPT
    listwise_prompt: str = LISTWISE_PROMPT
    per_chunk_prompt: str = DEFAULT_PROMPT
    isolated_prompt: str = ISOLATED_PROMPT
    answers_prompt: str = ANSWERS_PROMPT
    chunk_chars: int = Field(1200, ge=100, description="characters of each chunk shown to the LLM")
    node: str = "verify"
    rouge_threshold: float = Field(0.5, gt=0, le=1)
    cosine_threshold: float = Field(0.88, gt=0, le=1)
    min_cluster: int = Field(3, ge=2)
    claim_cosine: float = Field(0.8, gt=0, le=1, description="embedding cosine that groups rewordings of one claim")
    uncorroborated_alone: int = Field(4, ge=2, description="documents a reworded group with an unsupported claim "
                                      "must span to be dropped on that signal alone")
    paraphrase_rouge: float = Field(0.5, gt=0, le=1, description="mean ROUGE-L below which a cluster is reworded")
    consistency_margin: int = Field(2, ge=1, description="independent sources by which an answer must lead")


@dataclass
class LLMVerdicts:
    """What the LLM pass said per chunk index: named (flag, reason), or unreadable (why)."""

    named: dict[int, tuple[str, str]] = field(default_factory=dict)
    unreadable: dict[int, str] = field(default_factory=dict)
    judged: set[int] = field(default_factory=set)
    usage: Usage = field(default_factory=Usage)
    trace: list[TraceEvent] = field(default_factory=list)


@dataclass
class Verification:
    """The verifier's output: what goes on to the generator, what does not, and why."""

    accepted: list[ScoredChunk]
    dropped: list[DroppedEvidence]
    verdicts: list[Verdict]
    trace: list[TraceEvent] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    signals: dict[str, SignalResult] = field(default_factory=dict)
    unreadable: int = 0
    warnings: list[str] = field(default_factory=list)
    isolated: list[str | None] = field(default_factory=list)


def _config_of(base: VerifierConfig | None, overrides: dict[str, object]) -> VerifierConfig:
    return validate_table(VerifierConfig, {**(base or VerifierConfig()).model_dump(), **overrides}, "verifier",
                          label="setting")


class Verifier:
    """Filters poisoned, injected or contradictory evidence and says why per chunk."""

    def __init__(self, config: VerifierConfig | None = None, **overrides: object) -> None:
        self.config = _config_of(config, overrides) if overrides else (config or VerifierConfig())
        unknown = set(self.config.signals) - set(ALL_SIGNALS)
        if unknown:
            raise ConfigError(f"unknown verifier signal(s) {sorted(unknown)}; choose from {list(ALL_SIGNALS)}")

    def _weight(self, name: str) -> float:
        return self.config.weights.get(name, 1.0)

    async def _cheap_signals(
        self, question: str, evidence: list[ScoredChunk], ctx: RunContext, trace: list[TraceEvent]
    ) -> tuple[dict[str, SignalResult], np.ndarray | None]:
        cfg, node = self.config, self.config.node
        texts = [c.chunk.text for c in evidence]
        found: dict[str, SignalResult] = {}
        embeddings = None
        if INSTRUCTION in cfg.signals:
            found[INSTRUCTION] = instruction_signal(texts)
        if QUERY_ECHO in cfg.signals:
            found[QUERY_ECHO] = query_echo_signal(question, texts)
        wants_vectors = bool({NEAR_DUPLICATE, UNCORROBORATED, ANSWER_CONSISTENCY} & set(cfg.signals))
        if wants_vectors and ctx.embedder is not None and len(texts) > 1:
            vectors = await chunk_vectors(evidence, ctx.embedder, ctx.store)
            embeddings = vectors.vectors
            what = "read the stored vectors of" if vectors.source == "stored" else "embedded"
            trace.append(TraceEvent(node=node, kind="info", message=f"{what} {len(texts)} chunks for the "
                                    "cross-passage signals", data={"seconds": round(vectors.seconds, 3)}))
        if NEAR_DUPLICATE in cfg.signals:
            found[NEAR_DUPLICATE] = near_duplicate_signal(
                texts, embeddings, rouge_threshold=cfg.rouge_threshold,
                cosine_threshold=cfg.cosine_threshold, min_cluster=cfg.min_cluster,
                paraphrase_rouge=cfg.paraphrase_rouge,
            )
        if UNCORROBORATED in cfg.signals:
            # Over the text the LLM is shown: a long chunk shares some rare word with any other by chance.
            found[UNCORROBORATED] = uncorroborated_signal(
                question, [t[:cfg.chunk_chars] for t in texts], embeddings, cosine_threshold=cfg.claim_cosine,
                rouge_threshold=cfg.rouge_threshold, min_cluster=cfg.min_cluster, paraphrase_rouge=cfg.paraphrase_rouge,
                sources=[c.chunk.doc_id for c in evidence], alone_sources=cfg.uncorroborated_alone,
            )
        if PERPLEXITY in cfg.signals:
            scorer = scorer_of(ctx.llm)
            if scorer is None:
                trace.append(TraceEvent(node=node, kind="info", message="perplexity signal skipped: the LLM "
                                        "backend cannot score text (no token_logprobs)"))
            else:
                try:
                    found[PERPLEXITY] = await perplexity_signal(texts, scorer)
                except Exception as err:  # a scoring failure costs the signal, never the query
                    trace.append(TraceEvent(node=node, kind="fallback", message=f"perplexity signal failed: {err}"))
        return found, embeddings

    def _call_site(self, prompt: str) -> CallSite:
        return CallSite(prompt=prompt, node=self.config.node, chunk_chars=self.config.chunk_chars)

    def _cheap_score(self, i: int, signals: dict[str, SignalResult], skip: str = "") -> float:
        return sum(self._weight(name) * result.strength(i) for name, result in signals.items() if name != skip)

    async def _one_pass(
        self, question: str, evidence: list[ScoredChunk], judged: list[int], rules: list[str], ctx: RunContext,
    ) -> tuple[LLMVerdicts, IsolatedAnswers, str]:
        """(verdicts, short answers, answers problem) of the chunks in ``judged`` from one call."""
        reply = await one_pass(question, [evidence[i] for i in judged], rules, ctx,
                               self._call_site(self.config.one_pass_prompt))
        why = reply.problem or "the reply has no verdict line for this passage"
        verdicts = LLMVerdicts(named={judged[k]: (s.flag, s.reason) for k, s in reply.suspicious.items()},
                               unreadable={judged[k]: why for k in sorted(reply.unjudged)},
                               judged=set(judged), usage=reply.usage, trace=reply.trace)
        failed = len(judged) if reply.answers_problem else 0
        return verdicts, IsolatedAnswers(reply.answers, failed=failed), reply.answers_problem

    async def _llm_pass(
        self, question: str, evidence: list[ScoredChunk], judged: list[int], rules: list[str],
        rationales: list[Rationale], ctx: RunContext,
    ) -> LLMVerdicts:
        """The listwise call (or per-chunk calls) over the chunks in ``judged``."""
        cfg, out = self.config, LLMVerdicts(judged=set(judged))
        if not judged:
            return out
        if cfg.llm_mode == "listwise":
            check = await check_all(question, [evidence[i] for i in judged], rules, ctx,
                                    self._call_site(cfg.listwise_prompt))
            out.usage, out.trace = check.usage, check.trace
            if not check.readable:
                out.unreadable = {i: check.problem for i in judged}
            out.named = {judged[k]: (s.flag, s.reason) for k, s in check.suspicious.items()}
            return out
        checks = await asyncio.gather(*(
            check_chunk(question, evidence[i], rationales, ctx, self._call_site(cfg.per_chunk_prompt)) for i in judged))
        for i, check in zip(judged, checks):
            out.usage = out.usage + check.usage
            out.trace.extend(check.trace)
            if check.verdict.keep is None:
                out.unreadable[i] = check.error or "no verdict could be read from the reply"
            elif check.verdict.keep is False:
                out.named[i] = ((check.verdict.flags or ["llm"])[0], check.verdict.reason)
        return out

    async def verify(
        self,
        question: str,
        evidence: Sequence[ScoredChunk],
        ctx: RunContext,
        rationales: Sequence[Rationale] | None = None,
    ) -> Verification:
        """Verdicts for ``evidence`` (kept in its order); accepted + dropped partition the input."""
        cfg = self.config
        evidence = list(evidence)
        trace: list[TraceEvent] = []
        if not evidence:
            return Verification([], [], [], trace)
        signals, embeddings = await self._cheap_signals(question, evidence, ctx, trace)
        for name, result in signals.items():
            trace.append(TraceEvent(node=cfg.node, kind="signal", message=f"{name}: {sum(result.flagged)} of "
                                    f"{len(evidence)} flagged", data={"flagged": result.flagged, "scores": result.scores}))
        wanted = [s for s in _LLM_SIGNALS if s in cfg.signals]
        if wanted and ctx.llm is None:
            trace.append(TraceEvent(node=cfg.node, kind="info", message=f"{', '.join(wanted)} skipped: no LLM in the context"))
            wanted = []
        # An uncorroborated group still goes to the LLM: its short answers may show outside support.
        judged = [i for i in range(len(evidence)) if not (
            cfg.skip_llm_when_dropped and self._cheap_score(i, signals, skip=UNCORROBORATED) >= cfg.drop_threshold)]
        rules, ignored = usable_rules(rationales or [], question)
        if ignored:
            trace.append(TraceEvent(node=cfg.node, kind="repair", message=f"{len(ignored)} flag instruction(s) ignored: "
                                    "they repeat the question or a placeholder", data={"ignored": ignored}))
        kept_rationales = [r for r in rationales or [] if r.flag_instructions in rules]
        llm = LLMVerdicts()
        usage = Usage()
        isolated: list[str | None] = []
        answers: IsolatedAnswers | None = None
        answer_problem = ""
        if wanted and cfg.llm_mode == "one_pass" and judged:
            llm, answers, answer_problem = await self._one_pass(question, evidence, judged, rules, ctx)
            answer_problem = answer_problem if ANSWER_CONSISTENCY in wanted and len(judged) >= 3 else ""
            usage = usage + llm.usage
            trace.extend(llm.trace)
            if LLM not in wanted:
                llm = LLMVerdicts()
        elif LLM in wanted:
            llm = await self._llm_pass(question, evidence, judged, rules, kept_rationales, ctx)
            usage = usage + llm.usage
            trace.extend(llm.trace)
        wants_answers = ANSWER_CONSISTENCY in wanted and len(judged) >= 3  # fewer: no majority to lose to
        if wants_answers and (cfg.answer_mode == "per_chunk" or (
                answers is None and self._answers_can_tip(judged, signals, llm))):
            answers, answer_problem = await self._answers(question, [evidence[i] for i in judged], ctx)
            usage = usage + answers.usage
            trace.extend(answers.trace)
        if wants_answers and answers is not None:
            isolated = [None] * len(evidence)
            for i, answer in zip(judged, answers.answers):
                isolated[i] = answer
            cluster = signals.get(NEAR_DUPLICATE)
            sub = answer_consistency_signal(answers.answers, [evidence[i].chunk.text for i in judged],
                                            None if embeddings is None else embeddings[judged],
                                            margin=cfg.consistency_margin,
                                            clusters=[cluster.groups[i] for i in judged] if cluster else None)
            signals[ANSWER_CONSISTENCY] = _spread(sub, judged, len(evidence))
            if UNCORROBORATED in signals:
                before = signals[UNCORROBORATED]
                signals[UNCORROBORATED] = _clear_corroborated(before, isolated, [c.chunk.text for c in evidence])
                cleared = [evidence[i].id for i in range(len(evidence))
                           if before.flagged[i] and not signals[UNCORROBORATED].flagged[i]]
                if cleared:
                    trace.append(TraceEvent(node=cfg.node, kind="info", message=f"uncorroborated cleared for "
                                            f"{len(cleared)} chunk(s): their short answer has outside support",
                                            data={"cleared": cleared}))
        elif ANSWER_CONSISTENCY in wanted:
            trace.append(TraceEvent(node=cfg.node, kind="info", message="answer_consistency skipped: no chunk "
                                    "it could tip over the drop threshold"))
        warnings = self._unreadable_warnings(llm, len(evidence), trace)
        if answer_problem:
            message = (f"the short answers for answer_consistency were unreadable ({answer_problem}); "
                       "that signal fired for no chunk")
            trace.append(TraceEvent(node=cfg.node, kind="fallback", message=message, data={"problem": answer_problem}))
            log.warning("verifier: %s", message)
            warnings.append(message)
        verdicts, accepted, dropped = [], [], []
        for i, chunk in enumerate(evidence):
            kept, flags, reasons, values, status = self._decide(i, signals, llm, LLM in wanted)
            reason = "; ".join(reasons) if reasons else "no signal fired"
            verdict = Verdict(chunk_id=chunk.id, keep=kept, flags=flags, reason=reason, signals=values, parse_status=status)
            verdicts.append(verdict)
            trace.append(TraceEvent(node=cfg.node, kind="verdict", message=f"{chunk.id}: {'keep' if kept else 'drop'}"
                                    f" ({reason})", data=verdict.model_dump()))
            if kept:
                accepted.append(chunk)
            else:
                dropped.append(DroppedEvidence(chunk=chunk, reason=reason, flags=flags))
        return Verification(accepted, dropped, verdicts, trace, usage, signals, len(llm.unreadable), warnings, isolated)

    def _answers_can_tip(self, judged: list[int], signals: dict[str, SignalResult], llm: LLMVerdicts) -> bool:
        """Whether answer_consistency could change a verdict: some kept chunk is within its weight of a drop."""
        if len(judged) < 3:  # no majority of independent sources to lose to
            return False
        weight = self._weight(ANSWER_CONSISTENCY)
        uncorroborated = signals.get(UNCORROBORATED)
        if uncorroborated is not None and any(uncorroborated.flagged[i] for i in judged):
            return True  # the answers may show that a flagged group's answer has outside support
        return any(i not in llm.named and self._cheap_score(i, signals) + weight >= self.config.drop_threshold
                   for i in judged)

    async def _answers(self, question: str, chunks: list[ScoredChunk], ctx: RunContext) -> tuple[IsolatedAnswers, str]:
        """Each chunk's short answer: one listwise call, or one isolated call per chunk (robust mode)."""
        cfg = self.config
        if cfg.answer_mode == "listwise":
            return await listwise_answers(question, chunks, ctx, self._call_site(cfg.answers_prompt))
        answers = await isolated_answers(question, chunks, ctx, self._call_site(cfg.isolated_prompt))
        return answers, ("every isolated answer call failed" if answers.failed == len(chunks) else "")

    def _unreadable_warnings(self, llm: LLMVerdicts, n: int, trace: list[TraceEvent]) -> list[str]:
        """Count the unreadable verdicts, trace them and warn; never let them pass silently."""
        if not llm.unreadable:
            return []
        policy = self.config.fail_policy
        effect = ("decided on the cheap signals alone (fail_open)" if policy == "fail_open"
                  else "dropped (fail_closed)")
        problems = sorted(set(llm.unreadable.values()))
        message = (f"{len(llm.unreadable)} of {len(llm.judged)} LLM verdicts unreadable ({'; '.join(problems)}); "
                   f"those chunks were {effect}")
        if len(llm.unreadable) == len(llm.judged):
            message = "the LLM check gave no readable verdict: " + message
        trace.append(TraceEvent(node=self.config.node, kind="fallback", message=message,
                                data={"unreadable": len(llm.unreadable), "judged": len(llm.judged), "of": n,
                                      "fail_policy": policy, "problems": problems}))
        log.warning("verifier: %s", message)
        return [message]

    def _decide(
        self, i: int, signals: dict[str, SignalResult], llm: LLMVerdicts, llm_on: bool
    ) -> tuple[bool, list[str], list[str], dict[str, float | bool | str], str]:
        """(keep, flags, reasons, per-signal values, parse status) for chunk ``i``."""
        cfg = self.config
        score, flags, reasons = 0.0, [], []
        values: dict[str, float | bool | str] = {}
        for name, result in signals.items():
            values[name] = result.flagged[i]
            values[f"{name}_score"] = result.scores[i]
            if result.flagged[i]:
                score += self._weight(name) * result.strength(i)
                flags.append(name)
                reasons.append(f"{name}: {result.detail(i)}" if result.detail(i) else name)
        status = "ok"
        if llm_on:
            if i not in llm.judged:
                values[LLM] = "skipped"
            elif i in llm.unreadable:
                status = PARSE_ERROR
                flags.append(PARSE_ERROR)
                closed = cfg.fail_policy == "fail_closed"
                values[LLM] = closed
                score += self._weight(LLM) if closed else 0.0
                reasons.append(f"LLM verdict unreadable ({llm.unreadable[i]}); "
                               f"{'fail_closed: dropped' if closed else 'fail_open: cheap signals decide'}")
            else:
                named = llm.named.get(i)
                values[LLM] = named is not None
                if named is not None:
                    flag, why = named
                    score += self._weight(LLM)
                    flags.append(flag)
                    reasons.append(f"LLM: {flag}" + (f" ({why})" if why else ""))
        kept = score < cfg.drop_threshold
        return kept, list(dict.fromkeys(flags)), reasons, values, status


def _clear_corroborated(result: SignalResult, answers: Sequence[str | None], texts: Sequence[str]) -> SignalResult:
    """``uncorroborated`` less the chunks whose short answer a chunk outside their group also gives.

    The shared term that flagged a group may be a detail (a named source, a place) rather than
    its answer; when the answers show outside support, the group's claim is corroborated after
    all. A backer must give that answer *and* contain its words: small models answering many
    passages at once copy one answer onto passages that never say it. A chunk without a readable
    answer keeps its flag.
    """
    flagged, details = list(result.flagged), list(result.details)
    keys = [answer_key(a) for a in answers]
    words = [set(rouge_tokens(t)) for t in texts]
    for i, flag in enumerate(result.flagged):
        if not flag or not keys[i]:
            continue
        backers = [j for j, key in enumerate(keys) if result.groups[j] != result.groups[i]
                   and same_answer(keys[i], key) and keys[i] <= words[j]]
        if backers:
            flagged[i] = False
            details[i] += f"; cleared: its answer '{answers[i]}' is also given by {len(backers)} passage(s) outside it"
    return SignalResult(result.name, flagged, result.scores, details, result.strengths, result.groups)


def _spread(sub: SignalResult, judged: list[int], n: int) -> SignalResult:
    """A signal computed over the ``judged`` subset, laid out over all ``n`` chunks."""
    flagged, scores, details = [False] * n, [0.0] * n, ["not judged (already dropped)"] * n
    for k, i in enumerate(judged):
        flagged[i], scores[i], details[i] = sub.flagged[k], sub.scores[k], sub.detail(k)
    return SignalResult(sub.name, flagged, scores, details)
