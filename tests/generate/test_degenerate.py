"""Degenerate-answer detection on the shapes small models really return."""

from __future__ import annotations

import pytest

from ragpipe.generate.degenerate import degenerate_reason
from ragpipe.llm.scripted import REFUSAL
from ragpipe.schema import Chunk, ScoredChunk

QUESTION = "What happens to a loop's else clause when the loop ends with break?"
YES_NO = "Are Christopher Nolan and Sathish Kalathil both film directors?"
EVIDENCE = [
    ScoredChunk(chunk=Chunk(id="c1", doc_id="d", position=0, source="controlflow.html",
                            text="Loop statements may have an else clause. It is executed when the loop terminates "
                                 "through exhaustion of the iterable, but not when the loop is terminated by a break "
                                 "statement.")),
    ScoredChunk(chunk=Chunk(id="c2", doc_id="n", position=0, source="nolan.txt",
                            text="Christopher Nolan is an English-American film director. Sathish Kalathil is an "
                                 "Indian film director.")),
    ScoredChunk(chunk=Chunk(id="c3", doc_id="e", position=0, source="eiffel.txt",
                            text="The Eiffel Tower was finished in 1889 for the World's Fair.")),
]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[1]", "only citation markers"),
        (" [1]\n", "only citation markers"),
        ("[1][2].", "only citation markers"),
        ("[1, 2]", "only citation markers"),
        ("", "no answer text"),
        ('[1] controlflow.html <data id="3"> Loop statements may have an else clause.', "echoes the prompt's evidence markup"),
        ("[1] controlflow.html\nLoop statements may have an else clause.", "echoes the prompt's evidence markup"),
        ("&lt;data id=\"1\"> Loop statements", "echoes the prompt's evidence markup"),
        ("Question: What happens to a loop's else clause?", "echoes the prompt's evidence markup"),
        ("[1] Loop statements may have an else clause. It is executed when", "echoes the prompt's evidence markup"),
        (QUESTION, "repeats the question"),
        ("What happens to a loop's else clause when the loop ends with break? [1]", "repeats the question"),
        ("The loop's else clause when the loop ends with break [1].", "repeats the question"),
        (REFUSAL, "a refusal"),
        ("I am unable to answer based on the provided context.", "a refusal"),
        ("}} {{ ;; -- ++ == a [1]", "mostly symbols, not words"),
        ('{"answer": "the else clause runs", "cit', "raw structured output, not prose"),
        ('```json\n[{"id": 1, "answer": "else"}]', "raw structured output, not prose"),
        ("Bananas are yellow fruit grown in tropical plantations.", "shares almost no words with the evidence"),
    ],
)
def test_degenerate_shapes_are_named(text: str, reason: str) -> None:
    assert degenerate_reason(text, QUESTION, EVIDENCE) == reason


@pytest.mark.parametrize(
    "text, question",
    [
        ("The else clause is not executed when the loop is terminated by a break statement [1].", QUESTION),
        ("It is skipped [1].", QUESTION),
        ("Yes [2].", YES_NO),
        ("Christopher Nolan and Sathish Kalathil are both film directors [2].", YES_NO),
        ("1889 [1].", "When was the Eiffel Tower finished?"),
        ("Not executed [1]. The documents do not mention while loops in detail.", QUESTION),
    ],
)
def test_real_answers_are_kept(text: str, question: str) -> None:
    assert degenerate_reason(text, question, EVIDENCE) is None


@pytest.mark.parametrize("text", ["npm team [1].", "registry [1].", "The river [1]."])
def test_a_short_answer_made_only_of_the_question_words_is_degenerate(text: str) -> None:
    question = {"npm team [1].": "Which team is every npm org automatically given?",
                "registry [1].": "What is the default npm registry?",
                "The river [1].": QUESTION.replace("a loop's else clause", "the river")}[text]
    assert degenerate_reason(text, question, EVIDENCE) == "repeats the question"
