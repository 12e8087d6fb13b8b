"""Cost of a query: LLM calls, prompt/completion tokens, cached calls, wall and LLM time, per node.

No prices: token counts and seconds do not go stale; a user can multiply by their own rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ragpipe.schema import Answer, Usage

COST_FIELDS: tuple[str, ...] = ("calls", "prompt_tokens", "completion_tokens", "cached_calls", "failed_calls",
                                "llm_seconds")


def usage_dict(usage: Usage) -> dict[str, float]:
    return {f: getattr(usage, f) for f in COST_FIELDS}


def query_cost(answer: Answer, wall_s: float, judge_usage: Usage | None = None) -> dict[str, Any]:
    """The cost record of one answered query (pipeline cost, judge cost kept apart)."""
    return {
        **usage_dict(answer.usage),
        "wall_s": wall_s,
        "by_node": {node: usage_dict(u) for node, u in answer.usage_by_node.items()},
        "node_seconds": dict(answer.timings),
        "judge": usage_dict(judge_usage) if judge_usage is not None else None,
    }


def mean_cost(costs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean per query of every cost field, overall and per node."""
    rows = [c for c in costs if c]
    if not rows:
        return {}
    out: dict[str, Any] = {f: sum(float(r.get(f, 0)) for r in rows) / len(rows) for f in (*COST_FIELDS, "wall_s")}
    nodes = sorted({n for r in rows for n in r.get("by_node", {})} | {n for r in rows for n in r.get("node_seconds", {})})
    out["by_node"] = {
        node: {
            **{f: sum(float(r.get("by_node", {}).get(node, {}).get(f, 0)) for r in rows) / len(rows) for f in COST_FIELDS},
            "seconds": sum(float(r.get("node_seconds", {}).get(node, 0.0)) for r in rows) / len(rows),
        }
        for node in nodes
    }
    judged = [r["judge"] for r in rows if r.get("judge")]
    out["judge"] = ({f: sum(float(j.get(f, 0)) for j in judged) / len(judged) for f in COST_FIELDS}
                    if judged else None)
    return out
