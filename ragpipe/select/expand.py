"""Context expansion: add the chunks next to selected ones in their own document (METEORA ECSE step c).

Neighbours come from the store by ``(doc_id, position ± window)``, not from the candidate list:
candidates from a generic retriever are not contiguous, so "the next candidate" is usually
another document. An added neighbour gets its parent's score minus ``epsilon`` per step of
distance, so it ranks right after the chunk that pulled it in and never above a selected chunk
with a higher score; it carries ``stage_scores["expanded"] = 1.0`` and
``chunk.metadata["expanded_from"] = <parent id>`` so readers can tell it was not selected.

``limit`` caps how many neighbours are added, so a caller with a chunk budget can count them in
it: the best-scored parents' neighbours come first, and the trace says how many did not fit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ragpipe.schema import Chunk, ScoredChunk, TraceEvent

log = logging.getLogger(__name__)

EXPANDED = "expanded"
EPSILON = 1e-3


def expand_neighbours(
    selected: Sequence[ScoredChunk],
    store: Any | None,
    *,
    window: int = 1,
    epsilon: float = EPSILON,
    node: str = "expand",
    limit: int | None = None,
) -> tuple[list[ScoredChunk], list[TraceEvent]]:
    """``selected`` followed by (at most ``limit`` of) their unseen store neighbours; never raises
    for store trouble."""
    selected = list(selected)
    if window <= 0 or not selected:
        return selected, []
    if limit is not None and limit <= 0:
        return selected, [TraceEvent(node=node, kind="expansion", message="context expansion skipped: the chunk "
                                     "budget is already full", data={"added": [], "window": window})]
    if store is None or not callable(getattr(store, "neighbours", None)):
        return selected, [TraceEvent(node=node, kind="info", message="context expansion skipped: no chunk store")]
    seen = {c.id for c in selected}
    added: list[ScoredChunk] = []
    by_parent, failures = _neighbours_by_parent(store, selected, window)
    for parent in selected:
        for chunk in by_parent.get(parent.id, []):
            if chunk.id in seen:
                continue
            seen.add(chunk.id)
            distance = max(1, abs(chunk.position - parent.chunk.position))
            score = parent.score - epsilon * distance
            tagged = chunk.model_copy(update={"metadata": {**chunk.metadata, "expanded_from": parent.id}})
            added.append(
                ScoredChunk(
                    chunk=tagged,
                    score=score,
                    stage_scores={**parent.stage_scores, EXPANDED: 1.0},
                    stage_ranks=dict(parent.stage_ranks),
                )
            )
    left_out = 0
    if limit is not None and len(added) > limit:
        left_out, added = len(added) - limit, added[:limit]
    message = f"added {len(added)} neighbouring chunk(s) (window ±{window})"
    data: dict[str, Any] = {"added": [c.id for c in added], "window": window}
    if limit is not None:
        message += f"; {left_out} more did not fit the chunk budget" if left_out else ""
        data.update(limit=limit, left_out_for_budget=left_out)
    trace = [TraceEvent(node=node, kind="expansion", message=message, data=data)]
    if failures:
        trace.append(TraceEvent(node=node, kind="fallback", message="some neighbours could not be fetched",
                                data={"failures": failures}))
    return selected + added, trace


def _neighbours_by_parent(
    store: Any, selected: Sequence[ScoredChunk], window: int
) -> tuple[dict[str, list[Chunk]], list[str]]:
    """Each parent's neighbours, in one batched lookup when the store has one, else one per parent."""
    batched = getattr(store, "neighbours_of", None)
    if callable(batched):
        try:
            return batched([c.chunk for c in selected], window), []
        except Exception as err:  # noqa: BLE001 - asking per parent below still may work
            log.warning("batched neighbour lookup failed (%s: %s); asking per chunk", type(err).__name__, err)
    found: dict[str, list[Chunk]] = {}
    failures: list[str] = []
    for parent in selected:
        try:
            found[parent.id] = store.neighbours(parent.chunk.doc_id, parent.chunk.position, window)
        except Exception as err:  # a store hiccup costs the expansion, not the query
            failures.append(f"{parent.id}: {type(err).__name__}: {err}")
    return found, failures
