"""The harm bound: an LLM selector may not leave its input order worse than it found it.

Small or broken LLMs return lists worse than the retriever's. Every LLM selector therefore
passes its ranking through two checks before it is used:

1. A trust gate. The input order wins outright when too few LLM answers were usable, when the
   LLM disagreed with itself where the method can tell (pairwise A/B against B/A, groupwise
   repeats, listwise reversed windows), or, for methods without such a check, when the LLM's
   order runs against the input order (Kendall tau below a floor: a reversed or anti-correlated
   answer is far likelier a broken model than a retriever that got everything backwards).
2. Weighted reciprocal rank fusion of the LLM order with the input order, so even a trusted
   LLM moves a passage only as far as both orders together support. Where the method measured
   self-agreement, the LLM's weight grows with it, from ``llm_weight`` at the gate's minimum to
   ``agreed_weight`` when the LLM never contradicted itself.

A method that reads each candidate more than one way (``pointwise_ensemble``: a yes/no and a
0-10 prompt) hands over each reading's order: each one passes the gate on its own and, if it
does, votes with ``llm_weight`` against the input order's ``1 - llm_weight``. With two readings
the input order and the readings then weigh the same, so a passage moves only where two of the
three agree: where the readings disagree with each other, the input order decides.

The decision and its figures go into the trace as a ``harm_bound`` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ragpipe.retrieve.fusion import rrf


class HarmBoundConfig(BaseModel):
    """How far an LLM selector is trusted over its input order."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    llm_weight: float = Field(0.5, ge=0.0, le=1.0)  # weight of the LLM order (of each reading) against 1 - it
    agreed_weight: float = Field(0.9, ge=0.0, le=1.0)  # its share when it always agreed with itself
    rrf_k: float = Field(10.0, gt=0.0)  # reciprocal rank fusion constant: small k favours the top ranks
    min_usable: float = Field(0.5, ge=0.0, le=1.0)  # fraction of LLM answers that must be usable
    min_self_agreement: float = Field(0.65, ge=0.0, le=1.0)  # where the method measures it
    min_input_tau: float = Field(0.0, ge=-1.0, le=1.0)  # Kendall tau of LLM order vs input order


@dataclass
class Reliability:
    """What a selector learned about its LLM while scoring: usable answers and self-agreement."""

    answers: int = 0
    usable: int = 0
    checks: int = 0  # self-consistency checks made (pairs asked both ways, repeated groups, ...)
    weight: float = 0.0  # their total weight: 1 each unless the check says how much it matters
    agreed: float = 0.0  # the weight of the checks that agreed
    notes: list[str] = field(default_factory=list)

    def answer(self, usable: bool) -> None:
        self.answers += 1
        self.usable += int(usable)

    def check(self, agreed: bool | float, weight: float = 1.0) -> None:
        """One self-consistency check: ``agreed`` is a verdict or the agreeing share of a graded check,
        ``weight`` how much it counts against the others."""
        self.checks += 1
        self.weight += weight
        self.agreed += weight * agreed

    @property
    def usable_fraction(self) -> float:
        return self.usable / self.answers if self.answers else 0.0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.weight if self.weight > 0 else None


def kendall_tau(order: Sequence[int]) -> float:
    """Kendall tau between ``order`` (input indices, best first) and the input order 0..n-1."""
    n = len(order)
    if n < 2:
        return 1.0
    concordant = sum(1 for a in range(n) for b in range(a + 1, n) if order[a] < order[b])
    pairs = n * (n - 1) // 2
    return (2 * concordant - pairs) / pairs


def fuse_with_input(orders: Sequence[Sequence[int]], llm_weight: float, k: float) -> list[int]:
    """Weighted reciprocal rank fusion of the LLM ``orders`` (``llm_weight`` each) with the input
    order (``1 - llm_weight``); ties keep input order."""
    n = len(orders[0])
    rankings = {"input": [(str(i), 0.0) for i in range(n)]}
    weights = {"input": 1.0 - llm_weight}
    for r, order in enumerate(orders):
        rankings[f"llm{r}"] = [(str(i), 0.0) for i in order]
        weights[f"llm{r}"] = llm_weight
    fused = rrf(rankings, k=k, weights=weights)
    return sorted(range(n), key=lambda i: (-fused[str(i)], i))


@dataclass
class Decision:
    order: list[int]
    trusted: str  # "llm" (bound off), "fused" or "input"
    reason: str
    data: dict[str, Any]


def bound(order: Sequence[int], reliability: Reliability, config: HarmBoundConfig,
          readings: Sequence[Sequence[int]] = ()) -> Decision:
    """The order to use, given the LLM's ``order`` of the input indices and what it cost to get;
    ``readings``: the orders of each separate reading, for a method that has more than one."""
    n = len(order)
    tau = kendall_tau(order)
    agreement = reliability.agreement
    data = {"usable": reliability.usable, "answers": reliability.answers, "self_checks": reliability.checks,
            "self_agreement": None if agreement is None else round(agreement, 3), "input_tau": round(tau, 3),
            "llm_weight": config.llm_weight}
    if len(readings) > 1:
        data["reading_taus"] = [round(kendall_tau(r), 3) for r in readings]
    if not config.enabled:
        return Decision(list(order), "llm", "harm bound off: the LLM order is used as is", data)
    identity = list(range(n))
    if reliability.answers and reliability.usable_fraction < config.min_usable:
        return Decision(identity, "input", f"input order kept: only {reliability.usable} of {reliability.answers} "
                        f"LLM answers were usable (need {config.min_usable:.0%})", data)
    if agreement is not None and agreement < config.min_self_agreement:
        return Decision(identity, "input", f"input order kept: the LLM agreed with itself in {agreement:.0%} "
                        f"of {reliability.checks} checks (need {config.min_self_agreement:.0%})", data)
    voters = [list(r) for r in readings] if len(readings) > 1 else [list(order)]
    if agreement is None:  # no self-check: the input order is the reference
        kept = [r for r in voters if kendall_tau(r) >= config.min_input_tau]
        if not kept:
            taus = ", ".join(f"{kendall_tau(r):.2f}" for r in voters)
            what = "the LLM order is" if len(voters) == 1 else f"all {len(voters)} LLM readings are"
            return Decision(identity, "input", f"input order kept: {what} unrelated to the input order "
                            f"(Kendall tau {taus} < {config.min_input_tau:.2f})", data)
        if len(kept) < len(voters):
            data["readings_dropped"] = len(voters) - len(kept)
        voters = kept
    weight = config.llm_weight
    if agreement is not None and config.min_self_agreement < 1.0:
        confidence = (agreement - config.min_self_agreement) / (1.0 - config.min_self_agreement)
        weight += (max(weight, config.agreed_weight) - weight) * min(1.0, max(0.0, confidence))
    data["llm_weight"] = round(weight, 3)
    fused = fuse_with_input(voters, weight, config.rrf_k)
    moved = sum(1 for a, b in zip(fused, order) if a != b)
    if len(readings) > 1:
        dropped = data.get("readings_dropped", 0)
        against = f"; {dropped} reading(s) ran against the input order and did not vote" if dropped else ""
        return Decision(fused, "fused", f"{len(voters)} LLM reading(s) fused with the input order (weight "
                        f"{weight:.2f} each{against}; {moved} of {n} places differ from the LLM order)", data)
    return Decision(fused, "fused", f"LLM order fused with the input order (weight {weight:.2f}, "
                    f"Kendall tau {tau:.2f}; {moved} of {n} places differ from the LLM order)", data)


__all__ = ["HarmBoundConfig", "Reliability", "Decision", "bound", "kendall_tau", "fuse_with_input"]
