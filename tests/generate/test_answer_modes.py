"""Answer modes: generate, extractive, auto; the retry with the simpler prompt; the trace of each."""

from __future__ import annotations

import pytest

from ragpipe import Pipeline
from ragpipe.config import load_settings
from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.generate import NOT_FOUND_TEXT, Generator
from ragpipe.generate.generator import Generation
from ragpipe.llm.scripted import REFUSAL, ScriptedLLM
from ragpipe.schema import Chunk, ScoredChunk

QUESTION = "Which river flows through Paris?"
SEINE = "Paris is the capital of France. The Seine flows through Paris. It has 37 bridges there."
EVIDENCE = [
    ScoredChunk(chunk=Chunk(id="loire", doc_id="geo", position=9, text="The Loire is the longest river in France.",
                            source="geo.md", start_char=400, end_char=441)),
    ScoredChunk(chunk=Chunk(id="seine", doc_id="paris", position=4, text=SEINE, source="paris.md",
                            start_char=120, end_char=120 + len(SEINE))),
]
ECHO = '[2] paris.md\n<data id="2">\nParis is the capital of France.'


async def run(llm: ScriptedLLM | None, answer: str | None = None, settings=None) -> Generation:
    return await Generator(answer=answer).agenerate(QUESTION, EVIDENCE, RunContext(llm=llm, settings=settings))


def kinds(result: Generation) -> list[str]:
    return [e.kind for e in result.events]


async def test_a_bare_marker_is_retried_with_the_simpler_answer_first_prompt() -> None:
    llm = ScriptedLLM(["[1]", "Answer: The Seine flows through Paris [2]."])
    result = await run(llm)
    assert result.answer.text == "The Seine flows through Paris [1]."
    assert result.answer.mode == "generated" and [c.chunk_id for c in result.answer.citations] == ["seine"]
    retry_user = llm.requests[1].messages[-1].content
    assert "Example" in retry_user and retry_user.rstrip().endswith("Answer:")
    assert kinds(result)[:2] == ["degenerate", "retry"]
    assert result.events[0].data["text"] == "[1]"


@pytest.mark.parametrize("first, second", [("[1]", "[1]"), (ECHO, "[2]"), (REFUSAL, QUESTION), ("", " [2]\n")])
async def test_auto_falls_back_to_the_quoted_evidence_sentence(first: str, second: str) -> None:
    llm = ScriptedLLM([first, second])
    result = await run(llm)
    answer = result.answer
    assert answer.mode == "extracted" and not answer.abstained
    assert answer.text.startswith("\u201cThe Seine flows through Paris.\u201d [1]")
    citation = answer.citations[0]
    assert citation.chunk_id == "seine" and citation.quote == "The Seine flows through Paris."
    assert SEINE[citation.quote_start_char - 120:citation.quote_end_char - 120] == citation.quote
    assert len(llm.requests) == 2
    assert kinds(result).count("degenerate") == 2 and kinds(result)[-1] == "extractive"
    assert "stayed unusable" in result.events[-1].message


# SmolLM2-135M's retries copy the worked example on: an answer, then a question of its own.
COPIED_ON = ("The Loire is the longest river in France [1].\nQuestion: Which river is the longest in France?\n"
             "Answer: The Loire is the longest river in France [1].\nQuestion: When was the Eiffel Tower finished?")


async def test_a_retry_that_writes_a_question_of_its_own_is_stopped_there_and_still_rejected() -> None:
    llm = ScriptedLLM(["[1]", COPIED_ON])
    result = await run(llm)
    assert llm.requests[1].abandon_at  # the retry prompt says where a reply stops being an answer
    retried = [e for e in result.events if e.kind == "degenerate"][-1]
    assert retried.data["text"].rstrip().endswith("Question:")  # stopped at the first invented question
    assert "Eiffel" not in retried.data["text"]
    assert result.answer.mode == "extracted" and result.answer.text.startswith("\u201cThe Seine flows through Paris.")


async def test_generate_mode_abstains_instead_of_extracting() -> None:
    result = await run(ScriptedLLM(["[1]", "[1][2]"]), answer="generate")
    assert result.answer.abstained and result.answer.text == NOT_FOUND_TEXT
    assert "after the retry" in result.events[-1].message


async def test_extractive_mode_needs_no_llm() -> None:
    result = await run(None, answer="extractive")
    assert result.answer.mode == "extracted" and result.answer.citations[0].chunk_id == "seine"
    assert result.answer.text.startswith("\u201cThe Seine flows through Paris.\u201d [1]")
    assert kinds(result) == ["extractive"] and "answer mode is extractive" in result.events[0].message


async def test_the_answer_setting_chooses_the_mode() -> None:
    llm = ScriptedLLM([])
    result = await run(llm, settings=load_settings(answer="extractive"))
    assert result.answer.mode == "extracted" and llm.requests == []


async def test_a_usable_first_answer_costs_one_call_and_its_citation_points_at_the_sentence() -> None:
    llm = ScriptedLLM(["The Seine flows through Paris [2]. It has 37 bridges in the city [2]."])
    result = await run(llm)
    assert len(llm.requests) == 1 and "degenerate" not in kinds(result)
    [citation] = result.answer.citations
    assert citation.start_char == 120  # the chunk's span stays
    assert citation.quote in {"The Seine flows through Paris.", "It has 37 bridges there."}
    assert SEINE[citation.quote_start_char - 120:citation.quote_end_char - 120] == citation.quote


async def test_a_model_saying_not_found_is_respected_not_overridden() -> None:
    result = await run(ScriptedLLM(["Not found in the documents."]))
    assert result.answer.abstained and "degenerate" not in kinds(result)


async def test_stream_replaces_a_degenerate_answer() -> None:
    events = [e async for e in Generator().astream(QUESTION, EVIDENCE, RunContext(llm=ScriptedLLM(["[1]", "[1]"])))]
    assert events[0].text == "[1]"
    assert isinstance(events[-1], Generation) and events[-1].answer.mode == "extracted"


def test_an_unknown_mode_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="answer mode 'quote'"):
        Generator(answer="quote")
    with pytest.raises(ConfigError, match="setting 'answer'"):
        load_settings(answer="quote")
    with pytest.raises(ConfigError, match="setting 'answer'"):
        Pipeline.from_settings(answer="quote")
    with pytest.raises(ConfigError, match="answer mode 'quote'"):
        Pipeline.from_settings(settings=load_settings(), answer="quote")


async def test_a_fluent_answer_the_evidence_does_not_back_is_retried_then_extracted() -> None:
    # SmolLM2's shape: a confident sentence built from the question, the answer invented.
    llm = ScriptedLLM(["The river that flows through Paris is the Thames, with 12 bridges [2].",
                       "The river is the Danube [1]."])
    result = await run(llm)
    assert [e.data["reason"] for e in result.events if e.kind == "degenerate"] == [
        "states '12', which the evidence does not hold", "states 'Danube', which the evidence does not hold"]
    assert result.answer.mode == "extracted"
    assert result.answer.text.startswith("\u201cThe Seine flows through Paris.\u201d")


async def test_a_supported_answer_is_kept_as_generated() -> None:
    result = await run(ScriptedLLM(["The Seine flows through Paris, with 37 bridges [2]."]))
    assert result.answer.mode == "generated" and "degenerate" not in kinds(result)
