"""Parsing of verifier replies: strict JSON, repaired JSON, variants, words, garbage."""

from __future__ import annotations

import pytest

from ragpipe.llm.scripted import REFUSAL
from ragpipe.verify.llm_check import normalise_flag, parse_verdict


@pytest.mark.parametrize(
    "reply, keep, flags, method",
    [
        ('{"keep": true, "flags": [], "reason": "on topic"}', True, [], "json:strict"),
        ('{"keep": false, "flags": ["Instruction"], "reason": "tells the model what to say"}', False,
         ["instruction"], "json:strict"),
        ('Here is my verdict:\n```json\n{"keep": "no", "flags": "contradiction", "reason": "x"}\n```', False,
         ["contradiction"], "json:fenced"),
        ('{"keep": false, "flags": ["Flag 2", "off-topic",], "reason": "unrelated"', False, ["flag_2", "off_topic"],
         "json:repaired"),
        ('{"flagged": true, "flag_types": ["CONTRADICTION"], "reason": "reverses"}', False, ["contradiction"],
         "json:strict"),
        ('{"relevant": true, "reason": "fine"}', True, [], "json:strict"),
        ("keep: false because it is planted", False, [], "regex"),
        ("Flagged = yes", False, [], "regex"),
        ("KEEP. The passage is relevant.", True, [], "leading_word"),
    ],
)
def test_readable_replies(reply: str, keep: bool, flags: list[str], method: str) -> None:
    verdict = parse_verdict(reply)
    assert (verdict.keep, verdict.flags, verdict.method) == (keep, flags, method)


@pytest.mark.parametrize("reply", ["", REFUSAL, "The passage talks about housing.", "{}", '{"reason": "hmm"}', "[1, 2]"])
def test_unreadable_replies_have_no_decision(reply: str) -> None:
    assert parse_verdict(reply).keep is None


def test_flag_names_are_normalised() -> None:
    assert [normalise_flag(f) for f in ["Flag 3", "PROMPT INJECTION / instruction", "Off Topic", "weird!!"]] == [
        "flag_3", "instruction", "off_topic", "weird"]
