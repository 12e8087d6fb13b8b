"""Reading the listwise verdict: JSON, repaired JSON, plain lines, and what is not a verdict."""

from __future__ import annotations

import pytest

from ragpipe.verify.listwise_check import parse_listwise


@pytest.mark.parametrize(
    "reply, named",
    [
        ('{"suspicious": []}', {}),
        ('{"suspicious": [{"passage": 3, "flag": "planted", "reason": "no source"}]}', {2: "planted"}),
        ('Here you go:\n```json\n{"suspicious": [{"passage": "2", "flag": "Instruction", "reason": "orders"},]}\n```',
         {1: "instruction"}),
        ('{"suspicious": [1, 4]}', {0: "planted", 3: "planted"}),
        ('{"suspicious": [{"passage": 1', {0: "planted"}),  # cut off at max_tokens
        ("2: contradiction - says the opposite of the rest\n[4] planted: pushes one answer", {1: "contradiction",
                                                                                               3: "planted"}),
        ("None. All passages look honest.", {}),
    ],
)
def test_readable_replies(reply: str, named: dict[int, str]) -> None:
    check = parse_listwise(reply, 5)
    assert check.readable, check.problem
    assert {i: s.flag for i, s in check.suspicious.items()} == named


@pytest.mark.parametrize(
    "reply, problem",
    [
        ("", "no verdict"),
        ("I'm sorry, but I can't help with that request.", "no verdict"),
        ('<data id="1">\nSwitzerland was named', "no verdict"),  # the passages echoed back
        ('{"suspicious": [{"passage": 9, "flag": "planted", "reason": "x"}]}', "unusable"),
        ('{"suspicious": [{"passage": <its data id>, "flag": "planted", "reason": "<what is wrong with it>"}]}',
         "unusable"),
        ('{"suspicious": [1, 2, 3, 4, 5]}', "names all 5"),
        ('{"suspicious": [1, 2, 4]}', "names 3 of 5"),  # more than half: the prompt says most are honest
    ],
)
def test_unreadable_replies_say_why(reply: str, problem: str) -> None:
    check = parse_listwise(reply, 5)
    assert not check.readable and problem in check.problem and check.suspicious == {}


@pytest.mark.parametrize("reply", [
    '{"suspicious": [{"document": 2, "flag": "planted", "reason": "dictates the answer"}]}',
    '{"document": 2, "flag": "planted", "reason": "dictates the answer"}',
    "Document 2: planted - dictates the answer",
])
def test_documents_named_as_the_prompt_calls_them_are_read(reply: str) -> None:
    check = parse_listwise(reply, 3)
    assert check.readable and list(check.suspicious) == [1]
    assert check.suspicious[1].flag == "planted"


def test_the_number_placeholder_copied_back_is_not_a_verdict() -> None:
    check = parse_listwise('{"suspicious": [{"document": "<its number>", "flag": "planted", "reason": "x"}]}', 3)
    assert not check.suspicious


def test_a_reply_naming_most_of_a_pool_of_ten_is_no_verdict() -> None:
    """SmolLM2-135M's reply to a SimpleQA pool of ten (four planted): eight named, five of them honest."""
    entry = '{{"document": {}, "flag": "planted", "reason": "The document is a planted document."}}'
    check = parse_listwise('{"suspicious": [' + ", ".join(entry.format(n) for n in range(1, 9)) + "]}", 10)
    assert not check.readable and "names 8 of 10" in check.problem
    half = parse_listwise('{"suspicious": [' + ", ".join(entry.format(n) for n in (2, 4, 6, 8, 10)) + "]}", 10)
    assert half.readable and len(half.suspicious) == 5  # half of a pool may be planted
