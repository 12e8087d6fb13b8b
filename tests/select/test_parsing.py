"""Catalogue of broken LLM outputs and what the lenient parsers make of them."""

from __future__ import annotations

import pytest

from ragpipe.errors import OutputParseError
from ragpipe.select.parsing import (
    extract_json_object,
    ideal_permutation,
    neutralise_identifiers,
    parse_ab,
    parse_int_score,
    parse_permutation,
    parse_score_map,
    parse_yes_no,
)

# (raw output, n, expected 0-based order, status, a word expected in the repairs or None)
PERMUTATIONS = [
    ("[2] > [3] > [1]", 3, [1, 2, 0], "ok", None),
    ("  [2]>[3]>[1]\n", 3, [1, 2, 0], "ok", None),
    ("[2] > [1]", 4, [1, 0, 2, 3], "missing_documents", "appended"),
    ("[2] > [2] > [1] > [3]", 3, [1, 0, 2], "repetition", "repeated"),
    ("[5] > [1] > [9] > [2] > [3] > [4]", 5, [4, 0, 1, 2, 3], "repetition", "out-of-range"),
    ("[3] > [12] > [1]", 3, [2, 0, 1], "missing_documents", "out-of-range"),
    ("The ranking is: [3] > [1] > [2]. Passage 3 is best.", 3, [2, 0, 1], "ok", "ignored"),
    ("<think>maybe [1] > [2]</think>[2] > [1]", 2, [1, 0], "ok", None),
    ("[²] > [¹] > [③]", 3, [1, 0, 2], "ok", None),
    ("[３] > [１] > [２]", 3, [2, 0, 1], "ok", None),
    ("[C] > [A] > [B]", 3, [2, 0, 1], "ok", None),
    ("[2], [1], [3]", 3, [1, 0, 2], "ok", None),
    ("[4] > [2] > [1] > [", 4, [3, 1, 0, 2], "missing_documents", "appended"),  # truncated
]


@pytest.mark.parametrize("raw,n,order,status,repair", PERMUTATIONS)
def test_permutation_catalogue(raw, n, order, status, repair):
    parsed = parse_permutation(raw, n)
    assert parsed.order == order
    assert sorted(parsed.order) == list(range(n))
    assert parsed.status == status
    if repair is None:
        assert not [r for r in parsed.repairs if "appended" in r or "repeated" in r]
    else:
        assert any(repair in r for r in parsed.repairs) or repair == "ignored"


@pytest.mark.parametrize(
    "raw",
    [
        "Received passage [20].",  # what small models answer to the RankGPT prompt
        "",
        "I'm sorry, but I can't help with that request.",
        "Passage 3 is the most relevant, then passage 1.",
        "[1]",
        "1 > 2 > 3",
    ],
)
def test_outputs_that_are_not_rankings_are_rejected(raw):
    with pytest.raises(OutputParseError):
        parse_permutation(raw, 20)


def test_the_longest_ranking_wins_when_there_are_several():
    parsed = parse_permutation("For example [2] > [1]. My answer: [3] > [1] > [2]", 3)
    assert parsed.order == [2, 0, 1]
    assert any("longest" in r for r in parsed.repairs)


def test_ideal_permutation_and_identifier_rewriting():
    assert ideal_permutation(3) == "[1] > [2] > [3]"
    assert ideal_permutation(2, letters=True) == "[A] > [B]"
    assert neutralise_identifiers("see [3] and [B] but not [x1]") == "see (3) and (B) but not [x1]"


JSON_CASES = [
    ('{"1": 7, "2": 3}', {0: 7.0, 1: 3.0}),
    ('```json\n{"[1]": 7, "[2]": 3}\n```', {0: 7.0, 1: 3.0}),
    ('<reason>doc 1 is good</reason><answer>```json\n{"[1]]": 9, "[2]]": 1}\n```</answer>', {0: 9.0, 1: 1.0}),
    ('Scores: {"1": 7, "2": 3,}', {0: 7.0, 1: 3.0}),
    ("{'1': 7, '2': 3}", {0: 7.0, 1: 3.0}),
    ('{1: 7, 2: "3/10"}', {0: 7.0, 1: 3.0}),
    ('{"1": 7, "2": 3', {0: 7.0, 1: 3.0}),  # truncated: closing brace added
    ('{"1": 14, "2": -2}', {0: 10.0, 1: 0.0}),  # clamped
    ('{"1": {"score": 6}, "doc 2": 4}', {0: 6.0, 1: 4.0}),
    ('{[1]: 7, [2]: 3}', {0: 7.0, 1: 3.0}),  # bracketed ids as bare keys
    ('{"1": 7 "2": 3}', {0: 7.0, 1: 3.0}),  # a missing comma
    ('Example: {"1": 0}\nAnswer: {"1": 9, "2": 4}', {0: 9.0, 1: 4.0}),  # the answer comes last
]


@pytest.mark.parametrize("raw,expected", JSON_CASES)
def test_score_json_catalogue(raw, expected):
    obj, _ = extract_json_object(raw)
    scores, _ = parse_score_map(obj, 2)
    assert scores == expected


def test_score_map_reports_clamping_and_unknown_keys():
    scores, repairs = parse_score_map({"1": 12, "7": 3, "reason": "x"}, 2)
    assert scores == {0: 10.0}
    assert any("clamped" in r for r in repairs) and any("ignored" in r for r in repairs)


@pytest.mark.parametrize("raw", ["", "no json here", "[1, 2, 3]", '{"a": "b"}', "{{{{"])
def test_unusable_json_raises(raw):
    with pytest.raises(OutputParseError):
        obj, _ = extract_json_object(raw)
        parse_score_map(obj, 3)


@pytest.mark.parametrize(
    "raw,value", [("7", 7), ("Score: 8", 8), ("On a scale of 0 to 10, I'd say 6.", 6), ("9/10", 9), ("10", 10)]
)
def test_integer_scores(raw, value):
    assert parse_int_score(raw) == value


@pytest.mark.parametrize("raw", ["", "Relevant.", "42", "-3"])
def test_integer_scores_unusable(raw):
    with pytest.raises(OutputParseError):
        parse_int_score(raw)


@pytest.mark.parametrize("raw,value", [("Yes", True), ("no.", False), ("Not relevant (NO)", False),
                                       ("**Yes**, it does", True)])
def test_yes_no(raw, value):
    assert parse_yes_no(raw) is value


@pytest.mark.parametrize("raw,value", [("Passage A", "A"), ("passage: b", "B"), ("B", "B"),
                                       (" Passage B is more relevant", "B")])
def test_ab_answers(raw, value):
    assert parse_ab(raw) == value


def test_ab_garbage_raises():
    with pytest.raises(OutputParseError):
        parse_ab("Both passages are relevant.")


def test_lower_case_letter_identifiers_are_read():
    assert parse_permutation("[c] > [a] > [B]", 3).order == [2, 0, 1]
    assert neutralise_identifiers("see [b] and [2]") == "see (b) and (2)"


def test_a_window_of_one_needs_no_ranking():
    assert parse_permutation("Received passage [1].", 1).order == [0]


@pytest.mark.parametrize("raw,value", [
    ('Question: Given the query "x", which of the following two passages is more relevant to the query?\n'
     "Output Passage A or Passage B: Passage B", "B"),
    ("Query: which Passage A or Passage B\nPassage: B", "B"),
])
def test_ab_answers_after_an_echoed_prompt(raw, value):
    assert parse_ab(raw) == value


def test_yes_no_after_an_echoed_prompt():
    assert parse_yes_no("Question: Does the passage answer the query? Answer Yes or No.\nNo.") is False
    assert parse_yes_no("Query: is it yes or no\nAnswer: yes") is True


def test_integer_after_an_echoed_question_with_numbers():
    assert parse_int_score("Question: top 5 films of 2020\nRelevance score (0-10): 7") == 7
    assert parse_int_score("Query: what is 3 + 4?\n8") == 8


def test_permutation_after_an_echoed_question():
    parsed = parse_permutation("Question: is [1] > [2] > [3] > [4] right?\n[3] > [1] > [2]", 4)
    assert parsed.order == [2, 0, 1, 3]
