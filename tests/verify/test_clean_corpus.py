"""The cheap signals on clean technical text gathered on the machine: at most 1 % flagged."""

from __future__ import annotations

import pytest

from ragpipe.verify import Verifier
from ragpipe.context import RunContext
from ragpipe.schema import Chunk, ScoredChunk
from ragpipe.verify.signals import instruction_signal
from tests.verify.clean_corpus import clean_technical_chunks


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str]]:
    chunks = clean_technical_chunks()
    assert len(chunks) >= 1000, "the standard library's docs alone give over a thousand chunks"
    return chunks


def test_instruction_patterns_flag_at_most_one_percent_and_drop_none(corpus) -> None:
    result = instruction_signal([text for _, text in corpus])
    flagged = [(source, result.details[i]) for i, (source, _) in enumerate(corpus) if result.flagged[i]]
    assert len(flagged) <= 0.01 * len(corpus), flagged[:10]
    strong = [f for i, f in enumerate(flagged) if result.strengths[i] >= 1.0]
    assert strong == []


async def test_the_cheap_verifier_drops_at_most_one_percent_of_clean_pools(corpus) -> None:
    """Pools of 10 consecutive chunks of one source (what retrieval over one manual returns)."""
    verifier = Verifier(signals=("instruction", "query_echo", "near_duplicate"))
    dropped = total = 0
    for start in range(0, len(corpus) - 10, 10):
        pool = corpus[start : start + 10]
        source = pool[0][0]
        evidence = [ScoredChunk(chunk=Chunk(id=f"{start + k}", doc_id=source, position=k, text=text), score=1.0)
                    for k, (_, text) in enumerate(pool)]
        result = await verifier.verify(f"How do I use {source.split(':')[-1]}?", evidence, RunContext())
        dropped += len(result.dropped)
        total += len(evidence)
    assert dropped <= 0.01 * total, f"{dropped} of {total} clean chunks dropped"


@pytest.mark.slow
async def test_with_real_embeddings_the_cheap_verifier_drops_at_most_one_percent(corpus) -> None:
    """The same pools with MiniLM vectors, so the signals that compare meanings (near_duplicate,
    uncorroborated) take part: manuals reword themselves, but not as planted claims."""
    from ragpipe.config import EmbeddingSettings
    from ragpipe.ingest.embed import get_embedder

    ctx = RunContext(embedder=get_embedder(EmbeddingSettings()))
    verifier = Verifier(signals=("instruction", "query_echo", "near_duplicate", "uncorroborated"))
    dropped, total = [], 0
    for start in range(0, len(corpus) - 10, 10):
        pool = corpus[start : start + 10]
        source = pool[0][0]
        evidence = [ScoredChunk(chunk=Chunk(id=f"{start + k}", doc_id=source, position=k, text=text), score=1.0)
                    for k, (_, text) in enumerate(pool)]
        result = await verifier.verify(f"How do I use {source.split(':')[-1]}?", evidence, ctx)
        dropped += [(source, d.reason) for d in result.dropped]
        total += len(evidence)
    assert len(dropped) <= 0.01 * total, f"{len(dropped)} of {total} clean chunks dropped: {dropped[:5]}"
