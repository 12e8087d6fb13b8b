"""Rationale parsing and generation: every reply shape a real model produces, good and broken."""

from __future__ import annotations

import json

import pytest

from ragpipe.context import RunContext
from ragpipe.errors import LLMTimeout
from ragpipe.llm.base import Capabilities
from ragpipe.llm.scripted import REFUSAL, ScriptedLLM, truncated_reply
from ragpipe.select.rationales import generate_rationales, parse_rationales

QUESTION = "Which country did the 2023 housing study rank worst in the developed world?"

JSON_REPLY = json.dumps(
    {
        "rationales": [
            {"label": "study source", "text": "Find the think-tank report on housing value.",
             "flag_instructions": "Reject if it cites no study."},
            {"label": "ranking", "text": "Look for rankings of developed countries by housing quality.",
             "flag_instructions": "Reject if it contradicts the ranking already verified."},
        ]
    }
)


def test_strict_json_keeps_labels_flags_and_order() -> None:
    parsed = parse_rationales(JSON_REPLY)
    assert parsed.method == "json:strict"
    assert [r.text for r in parsed.rationales] == [
        "Find the think-tank report on housing value.",
        "Look for rankings of developed countries by housing quality.",
    ]
    assert [r.label for r in parsed.rationales] == ["study source", "ranking"]
    assert parsed.rationales[1].flag_instructions == "Reject if it contradicts the ranking already verified."
    assert [r.index for r in parsed.rationales] == [1, 2]


def test_json_in_prose_with_trailing_comma_is_repaired() -> None:
    reply = "Sure! Here they are:\n```json\n" + JSON_REPLY[:-2] + ",]}\n```\nHope this helps."
    parsed = parse_rationales(reply)
    assert parsed.method.startswith("json:") and parsed.method != "json:strict"
    assert len(parsed.rationales) == 2


def test_tag_format_splits_label_and_flag_instructions() -> None:
    reply = (
        "<rationale_2>[Ranking] Look for league tables of housing affordability. "
        "Flag Instructions: reject tables without a source.</rationale_2>\n"
        "<rationale_1>[Study] Search for the think-tank's quarterly housing report.</rationale_1>"
    )
    parsed = parse_rationales(reply)
    assert parsed.method == "tags"
    first, second = parsed.rationales
    assert (first.label, first.text, first.flag_instructions) == (
        "Study", "Search for the think-tank's quarterly housing report.", None)
    assert (second.label, second.flag_instructions) == ("Ranking", "reject tables without a source.")
    assert "Flag" not in second.text


def test_unclosed_tags_still_parse() -> None:
    reply = "<rationale_1> Search for the housing report by the think tank\n<rationale_2> Find the country ranking table"
    parsed = parse_rationales(reply)
    assert parsed.method == "loose_tags"
    assert [r.text for r in parsed.rationales] == [
        "Search for the housing report by the think tank", "Find the country ranking table"]


def test_rationale_n_and_numbered_lists() -> None:
    a = parse_rationales("Rationale 1: Find the study name and date.\nRationale 2: Find the worst-ranked country.")
    assert a.method == "rationale_n" and len(a.rationales) == 2
    b = parse_rationales("Here you go:\n1. Find the study name and date.\n2) **Ranking**: find the worst-ranked country.")
    assert b.method == "numbered"
    assert b.rationales[1].label == "Ranking" and b.rationales[1].text == "find the worst-ranked country."


def test_duplicates_short_fragments_and_refusals_are_dropped() -> None:
    reply = "- Find the housing study ranking\n- find the housing study ranking\n- ok\n- " + REFUSAL
    parsed = parse_rationales(reply)
    assert [r.text for r in parsed.rationales] == ["Find the housing study ranking"]
    assert parsed.dropped == 3


def test_limit_keeps_the_first_n() -> None:
    reply = "\n".join(f"{i}. Search facet number {i} about housing costs" for i in range(1, 12))
    parsed = parse_rationales(reply, limit=8)
    assert len(parsed.rationales) == 8 and parsed.rationales[-1].text.endswith("8 about housing costs")


@pytest.mark.parametrize("garbage", ["", "   ", "{}", '{"rationales": []}', REFUSAL, "ok ok"])
def test_unusable_replies_parse_to_nothing(garbage: str) -> None:
    assert parse_rationales(garbage).rationales == []


async def test_generate_uses_json_schema_only_when_backend_supports_it() -> None:
    plain = ScriptedLLM([JSON_REPLY])
    out = await generate_rationales(QUESTION, RunContext(llm=plain), num_rationales=4)
    assert not out.fallback and len(out.rationales) == 2
    assert plain.requests[0].json_schema is None
    assert "4 distinct search rationales" in plain.requests[0].messages[-1].content
    assert out.usage.calls == 1

    structured = ScriptedLLM([JSON_REPLY], capabilities=Capabilities(json_schema=True))
    await generate_rationales(QUESTION, RunContext(llm=structured))
    assert structured.requests[0].json_schema["required"] == ["rationales"]


async def test_the_schema_caps_the_array_at_the_count_asked_for() -> None:
    """A small model under a grammar repeats one rationale until max_tokens unless the array is capped."""
    structured = ScriptedLLM([JSON_REPLY], capabilities=Capabilities(json_schema=True))
    await generate_rationales(QUESTION, RunContext(llm=structured), num_rationales=3)
    schema = structured.requests[0].json_schema
    assert schema["properties"]["rationales"]["maxItems"] == 3
    assert schema["properties"]["rationales"]["items"]["required"] == ["text"]  # the rest is the prompt's
    assert "maxItems" not in RunContext().prompts.get("rationale.default").output.json_schema["properties"]["rationales"]


@pytest.mark.parametrize("reply", ["", REFUSAL, "!!!", LLMTimeout("slow server")])
async def test_unusable_output_falls_back_to_the_question(reply) -> None:
    ctx = RunContext(llm=ScriptedLLM([reply]))
    out = await generate_rationales(QUESTION, ctx)
    assert out.fallback
    assert [r.text for r in out.rationales] == [QUESTION]
    assert any(e.kind == "fallback" for e in out.trace)
    assert out.usage.calls == 1


async def test_truncated_reply_drops_the_cut_rationale_and_says_so() -> None:
    reply = truncated_reply("1. Find the housing report by the think tank\n2. Find the ranking of developed count")
    out = await generate_rationales(QUESTION, RunContext(llm=ScriptedLLM([reply])))
    assert [r.text for r in out.rationales] == ["Find the housing report by the think tank"]
    assert any(e.kind == "truncation" for e in out.trace)
    assert any(e.kind == "repair" and e.data["method"] == "numbered" for e in out.trace)


async def test_short_prompt_asks_for_one_sentence_facets_within_a_small_budget() -> None:
    """rationale.short: no flag instructions asked for, 256 output tokens; a reply that runs out of
    tokens in the middle of a third object keeps the two whole facets before the cut."""
    cut = truncated_reply('{"rationales": [{"label": "magazine", "text": "founding year of Arthur\'s Magazine"}, '
                          '{"label": "other", "text": "founding year of First for Women"}, {"label": "x", "te')
    llm = ScriptedLLM([cut])
    out = await generate_rationales("Which magazine was started first, Arthur's Magazine or First for Women?",
                                    RunContext(llm=llm), num_rationales=4, prompt="rationale.short")
    request = llm.requests[0]
    assert request.max_tokens == 256
    assert "4 distinct search rationales" in request.messages[-1].content
    assert "flag_instructions" not in request.messages[-1].content
    assert [r.text for r in out.rationales] == ["founding year of Arthur's Magazine",
                                                "founding year of First for Women"]
    assert not out.fallback and any(e.kind == "truncation" and "kept them all" in e.message for e in out.trace)


async def test_output_cap_follows_the_number_of_rationales_asked_for() -> None:
    """A model that keeps writing rationales past the count asked for is cut near that count."""
    facet = {"label": "ranking", "text": "Look for rankings of developed countries by housing quality and cost.",
             "flag_instructions": "Reject if it contradicts the ranking already verified."}
    rambling = json.dumps({"rationales": [dict(facet, label=f"facet {i}", text=f"{facet['text']} Aspect {i}.")
                                          for i in range(12)]})
    llm = ScriptedLLM([rambling, rambling])
    out = await generate_rationales(QUESTION, RunContext(llm=llm), num_rationales=2)
    few, many = llm.requests[0].max_tokens, None
    assert few < 300 and len(out.rationales) == 2 and not out.fallback
    await generate_rationales(QUESTION, RunContext(llm=llm), num_rationales=8)
    many = llm.requests[1].max_tokens
    assert few < many <= 768  # the prompt's max_tokens stays the ceiling
