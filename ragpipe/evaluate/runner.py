"""Run variants side by side over one dataset: query by query, every variant, checkpointed.

The runner only knows ``VariantRunner``s (anything with ``name`` and ``async run(query) ->
QueryRun``) and a ``Scorer``; ``ragpipe.evaluate.build`` wires real pipelines that share one
index and one cached LLM. Queries go in the outer loop so a partial run still compares every
variant on the same queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, Protocol

from ragpipe.evaluate.checkpoint import Checkpoint
from ragpipe.evaluate.datasets import EvalQuery
from ragpipe.evaluate.scoring import QueryRun, Scorer, failed_row


class VariantRunner(Protocol):
    name: str

    async def run(self, query: EvalQuery) -> QueryRun: ...


class PipelineVariant:
    """A ``ragpipe.Pipeline`` as a variant; ``generate=False`` stops before answer generation."""

    def __init__(self, name: str, pipeline: Any, *, generate: bool = True) -> None:
        self.name = name
        self.pipeline = pipeline
        self.generate = generate

    async def run(self, query: EvalQuery) -> QueryRun:
        start = time.perf_counter()
        if self.generate:
            state = await self.pipeline.arun(query.question)
        else:
            state = await self.pipeline.aevidence(query.question)
        return QueryRun(answer=state.to_answer(), candidates=list(state.candidates),
                        wall_s=time.perf_counter() - start, generated=self.generate)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return nullcontext(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False)


async def run_eval(
    queries: Sequence[EvalQuery],
    variants: Sequence[VariantRunner],
    scorer: Scorer,
    checkpoint: Checkpoint,
    *,
    resume: bool = True,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every (query, variant) pair not yet in the checkpoint; return all rows in run order.

    A pipeline failure becomes an ``error`` row (counted in every metric), never a crash;
    ``on_row`` is called after each row is safely written (progress hooks, tests).
    """
    done = checkpoint.open(resume=resume)
    pairs = [(q, v) for q in queries for v in variants]
    todo = [(q, v) for q, v in pairs if (v.name, q.id) not in done]
    with _progress(len(pairs), progress) as bar:
        task = bar.add_task("eval", total=len(pairs), completed=len(pairs) - len(todo)) if bar else None
        for query, variant in todo:
            if bar is not None:
                bar.update(task, description=f"{variant.name} {query.id[:18]}")
            try:
                result = await variant.run(query)
            except Exception as err:  # one failed query must not end the run; it is counted
                row = failed_row(variant.name, query, err, scorer.expected_metrics(query))
            else:
                row = await scorer.score(variant.name, query, result)
            checkpoint.append(row)
            done[(variant.name, query.id)] = row
            if bar is not None:
                bar.advance(task)
            if on_row is not None:
                on_row(row)
    return [done[(v.name, q.id)] for q, v in pairs if (v.name, q.id) in done]
