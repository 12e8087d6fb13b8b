"""The lenient JSON reader against the broken JSON small models really write."""

from __future__ import annotations

import pytest

from ragpipe.errors import OutputParseError
from ragpipe.llm.json_reply import parse_json_lenient
from ragpipe.select.parsing import extract_json_object
from ragpipe.verify.llm_check import parse_verdict

VERDICT = {"keep": False, "flags": ["instruction"], "reason": "tells the model what to say"}


@pytest.mark.parametrize(
    "reply, method",
    [
        ('{"keep": false, "flags": ["instruction"], "reason": "tells the model what to say"}', "strict"),
        # trailing commas after the last item and the last member
        ('{"keep": false, "flags": ["instruction",], "reason": "tells the model what to say",}', "repaired"),
        # a fenced block after a sentence, as chat models like to answer
        ('Sure! Here is the verdict:\n```json\n{"keep": false, "flags": ["instruction"], '
         '"reason": "tells the model what to say"}\n```\nLet me know if you need more.', "fenced"),
        # Python-style quoting
        ("{'keep': False, 'flags': ['instruction'], 'reason': 'tells the model what to say'}", "repaired"),
        # prose on both sides of a valid object
        ('My answer is {"keep": false, "flags": ["instruction"], "reason": "tells the model what to say"} '
         "because the passage gives orders.", "span"),
    ],
)
def test_broken_objects_are_read(reply: str, method: str) -> None:
    parsed = parse_json_lenient(reply)
    assert parsed is not None
    assert parsed.value == VERDICT
    assert parsed.method == method
    assert parsed.repaired == (method != "strict")
    assert bool(parsed.repairs) == (method != "strict")


def test_a_truncated_object_keeps_what_was_written() -> None:
    parsed = parse_json_lenient('```json\n{"keep": false, "flags": ["instruction", "contra')
    assert parsed is not None and parsed.method == "repaired"
    assert parsed.value["keep"] is False and parsed.value["flags"][0] == "instruction"
    assert any("repaired" in r for r in parsed.repairs)


def test_first_and_last_read_different_objects() -> None:
    reply = 'For example {"1": 3}. Final scores:\n{"1": 8, "2": 5}'
    assert parse_json_lenient(reply).value == {"1": 3}
    assert parse_json_lenient(reply, last=True).value == {"1": 8, "2": 5}


def test_last_fenced_block_wins_when_asked() -> None:
    reply = 'Format:\n```json\n{"1": 0}\n```\nAnswer:\n```json\n{"1": 9, "2": 2}\n```'
    assert parse_json_lenient(reply).value == {"1": 0}
    assert parse_json_lenient(reply, last=True).value == {"1": 9, "2": 2}


def test_an_empty_object_is_a_value_not_a_failure() -> None:
    assert parse_json_lenient("{}").value == {}


def test_want_skips_values_of_the_other_kind() -> None:
    assert parse_json_lenient("[1, 2]").value == [1, 2]
    assert parse_json_lenient("[1, 2]", want=(dict,)) is None
    assert parse_json_lenient('[{"1": 7}]', want=(dict,)).value == {"1": 7}


@pytest.mark.parametrize("reply", ["", "   ", "I'm sorry, but I can't help with that.", "{{{{", "{"])
def test_nothing_usable_gives_none_and_never_raises(reply: str) -> None:
    assert parse_json_lenient(reply) is None


def test_both_layers_read_the_same_broken_reply() -> None:
    """The verifier and the groupwise ranker share the reader, so they repair the same way."""
    reply = "Sure.\n```json\n{'1': 7, '2': 3,}\n```"
    obj, repairs = extract_json_object(reply)
    assert obj == {"1": 7, "2": 3} and any("fenced" in r for r in repairs)
    verdict = parse_verdict("Sure.\n```json\n{'keep': true, 'flags': [], 'reason': 'on topic',}\n```")
    assert verdict.keep is True and verdict.method == "json:repaired"


def test_the_ranker_wrapper_raises_for_what_the_reader_cannot_use() -> None:
    with pytest.raises(OutputParseError, match="no usable JSON object"):
        extract_json_object("<answer>I cannot score these passages.</answer>")
