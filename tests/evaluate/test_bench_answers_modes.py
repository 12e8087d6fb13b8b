"""bench_answers derives generate and baseline from the auto run's trace: where auto quoted the
evidence over a usable answer, generate mode would have given that answer, not an abstention."""

from __future__ import annotations

import asyncio

import pytest

from ragpipe.context import RunContext
from ragpipe.generate import Generator
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.schema import Chunk, ScoredChunk
from tests.evaluate.eval_scripts import load_eval_script

QUESTION = "Which file keeps files out of your npm package?"
EVIDENCE = [
    ScoredChunk(chunk=Chunk(id="ignore", doc_id="developers", position=3,
                            text="Use a .npmignore file to keep stuff out of your package.")),
    ScoredChunk(chunk=Chunk(id="cache", doc_id="config", position=12,
                            text="cache\nDefault: ~/.npm-cache\nType: Path\nThe location of npm's cache directory.")),
]


@pytest.fixture(scope="module")
def bench():
    return load_eval_script("bench_answers")


def auto_answer(*replies: str):
    generation = asyncio.run(Generator(answer="auto").agenerate(QUESTION, EVIDENCE, RunContext(llm=ScriptedLLM(list(replies)))))
    return generation.answer.model_copy(update={"trace": generation.events})


def test_a_replaced_answer_is_what_generate_and_baseline_would_give(bench):
    answer = auto_answer("The cache file keeps files out of your npm package [2].")
    assert answer.mode == "extracted"
    assert bench.replaced_answer(answer) == ("The cache file keeps files out of your npm package [1].", ["cache"], False)
    assert bench.first_attempt(answer) == bench.replaced_answer(answer)


def test_a_degenerate_fallback_replaces_nothing(bench):
    answer = auto_answer("[1]", "[2]")
    assert answer.mode == "extracted" and bench.replaced_answer(answer) is None
    assert bench.first_attempt(answer) == ("[1]", ["ignore"], False)
