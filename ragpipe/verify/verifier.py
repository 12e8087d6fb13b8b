"""The verifier: combines cheap poisoning signals with a per-chunk LLM check into verdicts.

Every chunk gets every enabled signal; a chunk is dropped when the weighted sum of the signals
that fired reaches ``drop_threshold``. With the default weights the deterministic
``instruction`` signal and a negative LLM verdict each drop a chunk on their own, while the
weaker ``near_duplicate``, ``query_echo`` and ``perplexity`` signals need a second opinion (on
real search results, clean news snippets are near-duplicates of each other too). The
perplexity signal is opt-in (``signals=ALL_SIGNALS``): it needs a backend that scores text and
costs one pass per chunk. Each verdict records every signal's value, so a report can give each
signal's contribution separately.

**Fail-open by default** (``fail_closed=False``): an unreadable LLM verdict keeps the chunk and
is recorded as ``parse_error``. The small local models ragpipe runs by default often break the
JSON format; dropping on every formatting slip would turn an LLM hiccup into lost evidence and
abstentions. The security-critical checks do not depend on the LLM's formatting: prompt
injection is caught by the deterministic ``instruction`` signal, and the generator sees
evidence only as delimited data. Set ``fail_closed=True`` when a missed poison costs more than
a lost chunk (as METEORA's package does).

**Concurrency vs. history**: chunks are checked in their given (selector score) order, in
batches of ``batch_size``; the checks in a batch run concurrently, each against the evidence
accepted before the batch. ``batch_size=1`` gives METEORA's fully sequential contradiction
history; larger batches trade a little history for latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from ragpipe.context import RunContext
from ragpipe.retrieve.vectors import chunk_vectors
from ragpipe.schema import DroppedEvidence, Rationale, ScoredChunk, TraceEvent, Usage, Verdict
from ragpipe.verify.llm_check import DEFAULT_PROMPT, LLMCheck, check_chunk
from ragpipe.verify.perplexity import PERPLEXITY, perplexity_signal, scorer_of
from ragpipe.verify.signals import (
    INSTRUCTION,
    NEAR_DUPLICATE,
    QUERY_ECHO,
    SignalResult,
    instruction_signal,
    near_duplicate_signal,
    query_echo_signal,
)

LLM = "llm"
PARSE_ERROR = "parse_error"
ALL_SIGNALS = (INSTRUCTION, QUERY_ECHO, NEAR_DUPLICATE, PERPLEXITY, LLM)
# Perplexity is opt-in: it costs one scoring pass of the LLM per chunk and, on fluent LLM-written
# poison, finds little (it is kept as the published baseline; see the poisoning benchmark).
DEFAULT_SIGNALS = (INSTRUCTION, QUERY_ECHO, NEAR_DUPLICATE, LLM)


class VerifierConfig(BaseModel):
    """How the verifier decides; every field is safe to change per pipeline."""

    signals: tuple[str, ...] = DEFAULT_SIGNALS
    weights: dict[str, float] = Field(
        default_factory=lambda: {INSTRUCTION: 1.0, LLM: 1.0, NEAR_DUPLICATE: 0.5, QUERY_ECHO: 0.5, PERPLEXITY: 0.5}
    )
    drop_threshold: float = 1.0
    fail_closed: bool = False
    batch_size: int = 4
    max_history: int = 4
    history_chars: int = 800
    skip_llm_when_dropped: bool = True
    prompt: str = DEFAULT_PROMPT
    node: str = "verify"
    rouge_threshold: float = 0.5
    cosine_threshold: float = 0.88
    min_cluster: int = 3


@dataclass
class Verification:
    """The verifier's output: what goes on to the generator, what does not, and why."""

    accepted: list[ScoredChunk]
    dropped: list[DroppedEvidence]
    verdicts: list[Verdict]
    trace: list[TraceEvent] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    signals: dict[str, SignalResult] = field(default_factory=dict)


class Verifier:
    """Filters poisoned, injected, contradictory or off-topic evidence and says why per chunk."""

    def __init__(self, config: VerifierConfig | None = None, **overrides: object) -> None:
        base = config or VerifierConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        unknown = set(self.config.signals) - set(ALL_SIGNALS)
        if unknown:
            from ragpipe.errors import ConfigError

            raise ConfigError(f"unknown verifier signal(s) {sorted(unknown)}; choose from {list(ALL_SIGNALS)}")

    def _weight(self, name: str) -> float:
        return self.config.weights.get(name, 1.0)

    async def _cheap_signals(
        self, question: str, evidence: list[ScoredChunk], ctx: RunContext, trace: list[TraceEvent]
    ) -> dict[str, SignalResult]:
        cfg, node = self.config, self.config.node
        texts = [c.chunk.text for c in evidence]
        found: dict[str, SignalResult] = {}
        if INSTRUCTION in cfg.signals:
            found[INSTRUCTION] = instruction_signal(texts)
        if QUERY_ECHO in cfg.signals:
            found[QUERY_ECHO] = query_echo_signal(question, texts)
        if NEAR_DUPLICATE in cfg.signals:
            embeddings = None
            if ctx.embedder is not None and len(texts) > 1:
                vectors = await chunk_vectors(evidence, ctx.embedder, ctx.store)
                embeddings = vectors.vectors
                what = "read the stored vectors of" if vectors.source == "stored" else "embedded"
                trace.append(TraceEvent(node=node, kind="info", message=f"{what} {len(texts)} chunks for the "
                                        "near-duplicate signal", data={"seconds": round(vectors.seconds, 3)}))
            found[NEAR_DUPLICATE] = near_duplicate_signal(
                texts, embeddings, rouge_threshold=cfg.rouge_threshold,
                cosine_threshold=cfg.cosine_threshold, min_cluster=cfg.min_cluster,
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
        return found

    def _cheap_score(self, i: int, signals: dict[str, SignalResult]) -> float:
        return sum(self._weight(name) for name, result in signals.items() if result.flagged[i])

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
        texts = [c.chunk.text for c in evidence]
        signals = await self._cheap_signals(question, evidence, ctx, trace)
        for name, result in signals.items():
            trace.append(TraceEvent(node=cfg.node, kind="signal", message=f"{name}: {sum(result.flagged)} of "
                                    f"{len(texts)} flagged", data={"flagged": result.flagged, "scores": result.scores}))
        use_llm = LLM in cfg.signals and ctx.llm is not None
        if LLM in cfg.signals and ctx.llm is None:
            trace.append(TraceEvent(node=cfg.node, kind="info", message="LLM check skipped: no LLM in the context"))
        checks: dict[int, LLMCheck] = {}
        keep: dict[int, bool] = {}
        accepted_texts: list[str] = []
        usage = Usage()
        order = list(range(len(evidence)))
        for start in range(0, len(order), max(1, cfg.batch_size)):
            batch = order[start : start + max(1, cfg.batch_size)]
            history = [t[: cfg.history_chars] for t in accepted_texts[: cfg.max_history]]
            to_check = [i for i in batch if use_llm and not (
                cfg.skip_llm_when_dropped and self._cheap_score(i, signals) >= cfg.drop_threshold)]
            results = await asyncio.gather(*(
                check_chunk(question, evidence[i], rationales or [], history, ctx, prompt=cfg.prompt, node=cfg.node)
                for i in to_check
            ))
            for i, check in zip(to_check, results):
                checks[i] = check
                usage = usage + check.usage
                trace.extend(check.trace)
            for i in batch:
                keep[i] = self._decide(i, signals, checks.get(i))[0]
                if keep[i]:
                    accepted_texts.append(texts[i])
        verdicts, accepted, dropped = [], [], []
        for i, chunk in enumerate(evidence):
            kept, flags, reasons, values, status = self._decide(i, signals, checks.get(i))
            if use_llm and i not in checks:
                values[LLM] = "skipped"
            reason = "; ".join(reasons) if reasons else "no signal fired"
            verdict = Verdict(chunk_id=chunk.id, keep=kept, flags=flags, reason=reason, signals=values, parse_status=status)
            verdicts.append(verdict)
            trace.append(TraceEvent(node=cfg.node, kind="verdict", message=f"{chunk.id}: {'keep' if kept else 'drop'}"
                                    f" ({reason})", data=verdict.model_dump()))
            if kept:
                accepted.append(chunk)
            else:
                dropped.append(DroppedEvidence(chunk=chunk, reason=reason, flags=flags))
        return Verification(accepted, dropped, verdicts, trace, usage, signals)

    def _decide(
        self, i: int, signals: dict[str, SignalResult], check: LLMCheck | None
    ) -> tuple[bool, list[str], list[str], dict[str, float | bool | str], str]:
        """(keep, flags, reasons, per-signal values, parse status) for chunk ``i``."""
        cfg = self.config
        score, flags, reasons = 0.0, [], []
        values: dict[str, float | bool | str] = {}
        for name, result in signals.items():
            values[name] = result.flagged[i]
            values[f"{name}_score"] = result.scores[i]
            if result.flagged[i]:
                score += self._weight(name)
                flags.append(name)
                reasons.append(f"{name}: {result.detail(i)}" if result.detail(i) else name)
        status = "ok"
        if check is not None:
            verdict = check.verdict
            llm_drop = verdict.keep is False
            if verdict.keep is None:
                status = "llm_error" if check.error else PARSE_ERROR
                flags.append(PARSE_ERROR)
                llm_drop = cfg.fail_closed
                reasons.append(f"LLM verdict unreadable ({check.error or 'parse error'}); "
                               f"{'fail-closed: dropped' if cfg.fail_closed else 'fail-open: kept'}")
            elif verdict.method != "json:strict":
                status = f"repaired:{verdict.method}"
            values[LLM] = llm_drop
            if verdict.keep is False:
                flags.extend(f for f in verdict.flags or ["llm"] if f not in flags)
                reasons.append(f"LLM: {verdict.reason}" if verdict.reason else "LLM: reject")
            if llm_drop:
                score += self._weight(LLM)
        kept = score < cfg.drop_threshold
        return kept, list(dict.fromkeys(flags)), reasons, values, status
