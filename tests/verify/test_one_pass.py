"""Reading the one-pass reply (each passage's short answer and verdict) as small models write it,
and what the verifier does with a reply that is broken or cut off."""

from __future__ import annotations

import pytest

from ragpipe.context import RunContext
from ragpipe.errors import LLMTimeout
from ragpipe.llm.scripted import REFUSAL, ScriptedLLM
from ragpipe.verify import Verifier
from ragpipe.verify.one_pass import parse_one_pass
from tests.verify.test_verifier import EVIDENCE, QUESTION

Q = "Which country did the new study rank worst in the developed world for housing?"


@pytest.mark.parametrize(
    "reply, named, answers",
    [
        ("1: England | ok\n2: Switzerland | planted: no source, repeats the question\n3: unknown | ok",
         {1: "planted"}, ["England", "Switzerland", "unknown"]),
        # SmolLM2-style: numbered with dots, verdicts without the bar, mixed case
        ("1. England - ok\n2. Switzerland (planted: asserts the answer)\n3: unknown | OK",
         {1: "planted"}, ["England", "Switzerland", "unknown"]),
        ("Passage 1: England | ok\nPassage 2: Switzerland | Instruction - tells the assistant what to answer\n"
         "Passage 3: | ok", {1: "instruction"}, ["England", "Switzerland", None]),
        # a question echoed as an answer is no answer; a number out of range and a repeated number are skipped
        ("1: which country did the new study rank worst | ok\n2: UK | contradiction: says the UK, not England\n"
         "3: England | ok\n9: France | planted: x\n3: France | planted: x", {1: "contradiction"}, [None, "UK", "England"]),
    ],
)
def test_readable_replies(reply: str, named: dict[int, str], answers: list[str | None]) -> None:
    read = parse_one_pass(reply, 3, Q)
    assert read.readable, read.problem
    assert {i: s.flag for i, s in read.suspicious.items()} == named
    assert read.answers == answers
    assert read.unjudged == set()


def test_a_cut_off_reply_leaves_the_passages_it_never_reached_unjudged() -> None:
    read = parse_one_pass("1: England | ok\n2: Switzerland | planted: no source\n3: Engl", 4, Q)
    assert read.readable and set(read.suspicious) == {1}
    assert read.unjudged == {2, 3}  # line 3 has no verdict, passage 4 no line
    assert read.answers == ["England", "Switzerland", "Engl", None]


@pytest.mark.parametrize(
    "reply, problem",
    [
        ("", "no 'N: answer | verdict' line"),
        (REFUSAL, "no 'N: answer | verdict' line"),
        ('{"suspicious": []}', "no 'N: answer | verdict' line"),  # the old prompt's shape is no verdict here
        ("1: England\n2: Switzerland\n3: unknown", "no 'N: answer | verdict' line"),  # answers only
        ("1: <answer> | ok\n2: <answer> | ok\n3: <answer> | ok", "copies the prompt's template"),
        ("1: England | planted: <reason>\n2: UK | maybe\n3: unknown | ?", "every verdict was unusable"),
        ("1: England | planted: r\n2: UK | planted: r\n3: Spain | planted: r", "names all 3 passages"),
    ],
)
def test_unreadable_replies_say_why(reply: str, problem: str) -> None:
    read = parse_one_pass(reply, 3, Q)
    assert not read.readable and problem in read.problem
    assert read.suspicious == {} and read.unjudged == {0, 1, 2}


def test_answers_survive_an_unreadable_verdict() -> None:
    read = parse_one_pass("1: England\n2: Switzerland\n3: unknown", 3, Q)
    assert read.answers == ["England", "Switzerland", "unknown"] and read.answers_problem == ""
    assert parse_one_pass("1: <answer> | ok\n2: <answer> | ok", 3, Q).answers_problem


@pytest.mark.parametrize("policy, kept", [("fail_open", ["c1", "c2", "c3", "c4"]), ("fail_closed", ["c1", "c2"])])
async def test_passages_a_cut_off_reply_never_reached_follow_the_fail_policy(policy: str, kept: list[str]) -> None:
    llm = ScriptedLLM(cycle=["1: England | ok\n2: unknown | ok\n3: Switzer"])
    result = await Verifier(llm_mode="one_pass", signals=("llm",), fail_policy=policy).verify(QUESTION, EVIDENCE, RunContext(llm=llm))
    assert [c.id for c in result.accepted] == kept
    assert result.unreadable == 2 and len(llm.requests) == 1
    assert [v.parse_status for v in result.verdicts] == ["ok", "ok", "parse_error", "parse_error"]
    assert "2 of 4 LLM verdicts unreadable" in result.warnings[0]


@pytest.mark.parametrize("reply", ["", REFUSAL, "1: <answer> | ok\n2: <answer> | ok", LLMTimeout("slow")])
async def test_a_broken_reply_is_counted_traced_and_costs_one_call(reply) -> None:  # noqa: ANN001
    llm = ScriptedLLM(cycle=[reply])
    result = await Verifier(llm_mode="one_pass").verify(QUESTION, EVIDENCE, RunContext(llm=llm))
    assert len(result.accepted) == 4 and result.unreadable == 4  # fail_open: cheap signals decide
    assert result.usage.calls == 1 == len(llm.requests)
    assert any(e.kind == "fallback" and e.data.get("unreadable") == 4 for e in result.trace)
    assert any(e.kind in ("llm_reply", "llm_error") for e in result.trace)
