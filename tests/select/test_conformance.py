"""Every registered selector against the ways LLM output goes wrong (STYLE.md, USERS.md B1/B21).

For each failure shape: the output is a permutation (or subset) of the input ids without
duplicates, the trace records the repair or fallback, and usage counts match the calls made.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.llm.scripted import REFUSAL, ScriptedLLM, timeout_error, truncated_reply
from ragpipe.select import available_selectors, get_selector
from tests.select.conftest import make_candidates


class HashingEmbedder:
    """Deterministic bag-of-words vectors: enough for selectors that embed text."""

    name, dim, max_tokens = "hashing-64", 64, 256

    def embed(self, texts, *, batch_size=None):  # noqa: ANN001
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in zip(rows, texts):
            for word in text.lower().split():
                row[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            row[0] += 1e-3
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def embed_query(self, text):  # noqa: ANN001
        return self.embed([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


FAILURE_SHAPES = {
    "empty": lambda: "",
    "prose": lambda: "These passages all discuss the topic in some way; the first seems most useful.",
    "refusal": lambda: REFUSAL,
    "duplicate_ids": lambda: "[2] > [2] > [1] > [1]",
    "out_of_range_ids": lambda: "[42] > [17] > [1]",
    "truncated": lambda: truncated_reply('[3] > [1] > {"1": 7, "'),
    "timeout": timeout_error,
    "malformed_json": lambda: '{"1": 7, "2": seven, "3": }',
}

SELECTORS = available_selectors()


def questions_and_candidates():
    cands = make_candidates(5, texts=[
        "The Eiffel Tower is in Paris and was finished in 1889.",
        "Paris is the capital of France.",
        "Bananas are rich in potassium.",
        "The tower is 330 metres tall.",
        "Gustave Eiffel's company built the tower.",
    ])
    return "When was the Eiffel Tower built?", cands + [cands[1]]  # one duplicate candidate


def check_ids(selection, input_ids):
    ranked = [c.id for c in selection.ranked]
    kept = [c.id for c in selection.kept]
    assert len(ranked) == len(set(ranked)) and set(ranked) <= set(input_ids)
    assert len(kept) == len(set(kept)) and set(kept) <= set(ranked)
    assert all(c.score == c.score for c in selection.ranked)  # never NaN
    assert [c.rank for c in selection.ranked] == list(range(1, len(ranked) + 1))


@pytest.mark.parametrize("shape", sorted(FAILURE_SHAPES))
@pytest.mark.parametrize("name", SELECTORS)
async def test_failure_shapes(name, shape):
    make_reply = FAILURE_SHAPES[shape]
    llm = ScriptedLLM(fn=lambda request: make_reply())
    question, cands = questions_and_candidates()
    selection = await get_selector(name).select(question, cands, RunContext(llm=llm, embedder=HashingEmbedder()))
    input_ids = [c.id for c in cands]
    check_ids(selection, input_ids)
    assert sorted(c.id for c in selection.ranked) == sorted(set(input_ids))  # fail-open: nothing lost
    assert selection.usage.calls == len(llm.requests)
    kinds = {e.kind for e in selection.trace}
    assert "repair" in kinds  # at least the duplicate candidate
    if llm.requests:
        assert kinds & {"repair", "fallback"}
        raw_or_errors = [e for e in selection.trace if e.kind == "llm_reply"]
        assert raw_or_errors or name == "meteora"


@pytest.mark.parametrize("name", SELECTORS)
async def test_garbage_never_beats_input_order_by_accident(name):
    """With prose for every answer, the LLM-ranked selectors keep the retriever's order."""
    llm = ScriptedLLM(cycle=["I think they are all fine."])
    question, cands = questions_and_candidates()
    cands = cands[:5]  # no duplicate: any repair in the trace is about the LLM output
    selection = await get_selector(name).select(question, cands, RunContext(llm=llm, embedder=HashingEmbedder()))
    if name == "meteora":  # reads prose as rationale lines and ranks by embeddings, saying so
        assert any(e.kind in ("repair", "fallback") for e in selection.trace)
    else:
        assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(5)]
        assert any(e.kind == "fallback" for e in selection.trace) or not llm.requests


@pytest.mark.parametrize("name", SELECTORS)
async def test_empty_candidates(name):
    llm = ScriptedLLM()
    selection = await get_selector(name).select("q?", [], RunContext(llm=llm, embedder=HashingEmbedder()))
    assert selection.ranked == [] and selection.kept == [] and llm.requests == []


@pytest.mark.parametrize("name", SELECTORS)
async def test_empty_question_keeps_input_order_and_says_so(name):
    llm = ScriptedLLM()
    _, cands = questions_and_candidates()
    selection = await get_selector(name).select("   ", cands, RunContext(llm=llm, embedder=HashingEmbedder()))
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(5)]
    assert llm.requests == []
    assert any(e.kind == "fallback" for e in selection.trace)


@pytest.mark.parametrize("name", sorted(set(SELECTORS) - {"retrieval_order"}))
async def test_no_llm_configured(name):
    _, cands = questions_and_candidates()
    selection = await get_selector(name).select("q?", cands, RunContext(llm=None, embedder=HashingEmbedder()))
    assert sorted(c.id for c in selection.ranked) == [f"c{i}" for i in range(5)]
    assert any(e.kind == "fallback" for e in selection.trace)


@pytest.mark.parametrize("name", SELECTORS)
async def test_max_keep_and_cutoff_bound_the_kept_list(name):
    llm = ScriptedLLM(cycle=["nonsense"])
    question, cands = questions_and_candidates()
    selection = await get_selector(name, cutoff="zscore_gap", max_keep=2).select(
        question, cands, RunContext(llm=llm, embedder=HashingEmbedder()))
    assert 1 <= len(selection.kept) <= 2
    assert selection.cutoff is not None and selection.cutoff.reason


@pytest.mark.parametrize("name", SELECTORS)
def test_unknown_settings_are_config_errors(name):
    with pytest.raises(ConfigError):
        get_selector(name, no_such_setting=1)
    with pytest.raises(ConfigError):
        get_selector(name, cutoff="magic")


def test_unknown_selector_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown selector"):
        get_selector("nope")
