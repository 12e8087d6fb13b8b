"""Composite nodes: a sequence, a parallel fan-out with a merge, and a conditional branch.

Composites are nodes too, so they nest, draw and run like any other. Data flow is checked when
a composite is built: a ``Sequence`` refuses a node that reads a field nothing before it writes,
and a ``Parallel`` without a merge refuses branches that write the same field.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from ragpipe.graph.node import Config, GraphBuildError, Node, check_flow, context_from
from ragpipe.graph.state import INPUT_FIELDS, RunState
from ragpipe.schema import ScoredChunk

Merge = Callable[[RunState, list[dict[str, Any]]], dict[str, Any]]


def _flatten(nodes: Iterable[Node]) -> list[Node]:
    flat: list[Node] = []
    for node in nodes:
        flat.extend(node.nodes if isinstance(node, Sequence) else [node])
    return flat


class Sequence(Node):
    """Runs its nodes one after another, each on the state the previous one produced."""

    name: str | None = "sequence"
    nodes: list[Node]
    inputs: tuple[str, ...] = ()

    @classmethod
    def of(cls, *nodes: Node, inputs: Iterable[str] = ()) -> Sequence:
        """Build and check a sequence. ``inputs``: extra fields the caller promises to supply."""
        inherited = tuple(inputs)
        for node in nodes:
            if isinstance(node, Sequence):
                inherited += node.inputs
        seq = cls(nodes=_flatten(nodes), inputs=tuple(dict.fromkeys(inherited)))
        check_flow(seq.nodes, INPUT_FIELDS | set(seq.inputs))
        return seq

    def input_fields(self) -> frozenset[str]:
        needed: set[str] = set()
        have: set[str] = set()
        for node in self.nodes:
            needed |= node.input_fields() - have
            have |= node.output_fields()
        return frozenset(needed)

    def output_fields(self) -> frozenset[str]:
        return frozenset().union(*(n.output_fields() for n in self.nodes))

    def children(self) -> list[Node]:
        return list(self.nodes)

    async def astep(self, state: RunState, config: Config) -> RunState:
        for node in self.nodes:
            state = await node.ainvoke(state, config)
        return state


class Parallel(Node):
    """Runs its branches concurrently on the same state, then merges their patches.

    Without ``merge`` the branches must write disjoint fields; with it, ``merge(state, patches)``
    decides (see ``fuse_rrf``).
    """

    name: str | None = "parallel"
    branches: list[Node]
    merge: Merge | None = None

    def model_post_init(self, __context: Any) -> None:
        if self.merge is None:
            seen: dict[str, str] = {}
            for branch in self.branches:
                for field in branch.output_fields():
                    if field in seen:
                        raise GraphBuildError(
                            f"parallel branches '{seen[field]}' and '{branch.label}' both write `{field}`; pass a merge"
                        )
                    seen[field] = branch.label

    def input_fields(self) -> frozenset[str]:
        return frozenset().union(*(b.input_fields() for b in self.branches))

    def output_fields(self) -> frozenset[str]:
        return frozenset().union(*(b.output_fields() for b in self.branches))

    def children(self) -> list[Node]:
        return list(self.branches)

    async def astep(self, state: RunState, config: Config) -> RunState:
        start = time.perf_counter()
        outputs = await asyncio.gather(*(b.ainvoke(state, config) for b in self.branches))
        patches = [{f: getattr(out, f) for f in b.output_fields()} for b, out in zip(self.branches, outputs)]
        merged = self.merge(state, patches) if self.merge else {k: v for p in patches for k, v in p.items()}
        trace = [event for out in outputs for event in out.trace[len(state.trace):]]
        timings = {k: v for out in outputs for k, v in out.timings.items()}
        timings[self.label] = time.perf_counter() - start  # wall time of the whole fan-out
        return state.apply(
            {**merged, "trace": trace, "timings": timings, "usage_by_node": context_from(config).meter.by_node()}
        )


def fuse_rrf(field: str, k: int = 60) -> Merge:
    """A merge that fuses the branches' ranked ``field`` lists by reciprocal rank fusion."""
    from ragpipe.retrieve.fusion import rrf  # on use: the retrieval package is slow to import

    def merge(state: RunState, patches: list[dict[str, Any]]) -> dict[str, Any]:
        lists = [patch.get(field, []) for patch in patches]
        scores = rrf({str(i): [(item.id, item.score) for item in items] for i, items in enumerate(lists)}, k=k)
        first: dict[str, ScoredChunk] = {}
        for items in lists:
            for item in items:
                first.setdefault(item.id, item)
        order = sorted(scores, key=lambda cid: -scores[cid])
        fused = [first[cid].with_stage("fused", scores[cid], rank) for rank, cid in enumerate(order, start=1)]
        rest = {key: value for patch in patches for key, value in patch.items() if key != field}
        return {**rest, field: fused}

    return merge


class Branch(Node):
    """Runs ``then`` when ``condition(state)`` holds, else ``otherwise`` (or nothing)."""

    name: str | None = "branch"
    condition: Callable[[RunState], bool]
    then: Node
    otherwise: Node | None = None
    condition_reads: tuple[str, ...] = ()
    description: str = ""

    def input_fields(self) -> frozenset[str]:
        fields = set(self.condition_reads) | self.then.input_fields()
        if self.otherwise is not None:
            fields |= self.otherwise.input_fields()
        return frozenset(fields)

    def output_fields(self) -> frozenset[str]:
        fields = set(self.then.output_fields())
        if self.otherwise is not None:
            fields |= self.otherwise.output_fields()
        return frozenset(fields)

    def children(self) -> list[Node]:
        return [self.then] + ([self.otherwise] if self.otherwise is not None else [])

    async def astep(self, state: RunState, config: Config) -> RunState:
        chosen = self.then if self.condition(state) else self.otherwise
        return state if chosen is None else await chosen.ainvoke(state, config)
