"""RAGAS-style metrics with a scripted judge: hand-computed scores and realistic judge failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragpipe.errors import LLMError
from ragpipe.evaluate import ragas
from ragpipe.evaluate.judge import Judge
from ragpipe.evaluate.metric import aggregate
from ragpipe.llm.scripted import ScriptedLLM, timeout_error, truncated_reply

QUESTION = "Who wrote Dune and when was it published?"
ANSWER = "Frank Herbert wrote Dune. He published it in 1965. It won the Hugo Award."
CONTEXTS = ["Dune is a 1965 novel by Frank Herbert.", "Herbert's novel was first published by Chilton Books."]

STATEMENTS = json.dumps({"statements": ["Frank Herbert wrote Dune.", "Frank Herbert published Dune in 1965.",
                                        "Dune won the Hugo Award."]})
NLI = json.dumps({"verdicts": [
    {"statement": "Frank Herbert wrote Dune.", "reason": "stated", "verdict": 1},
    {"statement": "Frank Herbert published Dune in 1965.", "reason": "1965 novel", "verdict": 1},
    {"statement": "Dune won the Hugo Award.", "reason": "not mentioned", "verdict": 0},
]})


def judge_with(*replies) -> tuple[Judge, ScriptedLLM]:
    llm = ScriptedLLM(list(replies))
    return Judge(llm), llm


async def test_faithfulness_three_statements_two_supported() -> None:
    judge, llm = judge_with(STATEMENTS, "Here is my analysis:\n```json\n" + NLI + "\n```")
    result = await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)
    assert result.status == "ok"
    assert result.value == pytest.approx(2 / 3)
    assert result.details["verdicts"] == [1, 1, 0]
    # The contexts reach the NLI prompt inside data blocks; the fenced JSON was a recorded repair.
    assert '<data id="1">' in llm.requests[1].messages[-1].content
    assert any(e.kind == "repair" for e in judge.trace)


async def test_faithfulness_garbage_verdicts_is_a_parse_error_not_zero() -> None:
    judge, _ = judge_with(STATEMENTS, "The statements are mostly supported by the context.")
    result = await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)
    assert result.status == "parse_error" and result.value is None
    assert "mostly supported" in result.raw[-1]
    assert any(e.kind == "fallback" for e in judge.trace)


async def test_faithfulness_too_few_verdicts_is_a_parse_error() -> None:
    short = json.dumps({"verdicts": [{"statement": "x", "reason": "y", "verdict": 1}]})
    judge, _ = judge_with(STATEMENTS, short)
    result = await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)
    assert result.status == "parse_error" and "1 usable verdicts for 3 statements" in result.details["reason"]


async def test_faithfulness_without_statements_is_undefined() -> None:
    judge, llm = judge_with(json.dumps({"statements": []}))
    result = await ragas.faithfulness(judge, QUESTION, "I don't know.", CONTEXTS)
    assert result.status == "undefined" and result.value is None
    assert len(llm.requests) == 1  # no NLI call for nothing


async def test_truncated_and_timed_out_judges_have_their_own_status() -> None:
    judge, _ = judge_with(truncated_reply('{"statements": ["Frank Herbert wrote'))
    assert (await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)).status == "truncated"
    judge, _ = judge_with(timeout_error())
    assert (await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)).status == "timeout"
    judge, _ = judge_with(LLMError("server returned 500"))
    assert (await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)).status == "error"


async def test_context_precision_verdicts_1_0_1() -> None:
    judge, llm = judge_with('{"reason": "names the author", "verdict": 1}',
                            'The passage is not useful. {"reason": "publisher only", "verdict": "0"}',
                            '{"reason": "has the year", "verdict": "yes"}')
    result = await ragas.context_precision(judge, QUESTION, [*CONTEXTS, "Dune appeared in 1965."], "Frank Herbert, 1965")
    assert result.value == pytest.approx((1 + 2 / 3) / 2)
    assert result.details["verdicts"] == [1, 0, 1]
    assert len(llm.requests) == 3


async def test_context_precision_stops_on_a_bad_verdict_and_reports_it() -> None:
    judge, _ = judge_with('{"verdict": 1}', '{"reason": "unclear", "verdict": "maybe"}')
    result = await ragas.context_precision(judge, QUESTION, CONTEXTS, "Frank Herbert")
    assert result.status == "parse_error" and "context 2" in result.details["reason"]


async def test_context_recall_counts_attributed_sentences() -> None:
    reply = json.dumps({"classifications": [
        {"statement": "Frank Herbert wrote Dune.", "reason": "context 1", "attributed": 1},
        {"statement": "It was published in 1965.", "reason": "context 1", "attributed": 1},
        {"statement": "It sold 20 million copies.", "reason": "absent", "attributed": 0},
        {"statement": "It was first serialised.", "reason": "absent", "attributed": 0},
    ]})
    judge, _ = judge_with(reply)
    result = await ragas.context_recall(judge, QUESTION, CONTEXTS, "Frank Herbert wrote Dune in 1965. ...")
    assert result.value == pytest.approx(0.5)
    assert (await ragas.context_recall(Judge(ScriptedLLM()), QUESTION, CONTEXTS, "")).status == "undefined"


class AxisEmbedder:
    """Maps known texts to fixed unit vectors so cosine similarities are known exactly."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed(self, texts):
        out = np.asarray([self.vectors[t] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


async def test_answer_relevancy_mean_cosine_and_noncommittal() -> None:
    embedder = AxisEmbedder({QUESTION: [1, 0], "Who wrote Dune?": [1, 0], "When was Dune published?": [1, 1]})
    judge, llm = judge_with('{"question": "Who wrote Dune?", "noncommittal": 0}',
                            '{"question": "When was Dune published?", "noncommittal": 0}')
    result = await ragas.answer_relevancy(judge, embedder, QUESTION, ANSWER, strictness=2)
    assert result.value == pytest.approx((1.0 + 1 / np.sqrt(2)) / 2, abs=1e-6)
    assert llm.requests[0].temperature == 0.0 and llm.requests[1].temperature > 0
    judge, _ = judge_with('{"question": "Who wrote Dune?", "noncommittal": 1}')
    evasive = await ragas.answer_relevancy(judge, embedder, QUESTION, "I don't know who wrote it.", strictness=1)
    assert evasive.value == 0.0 and evasive.status == "ok"


async def test_answer_relevancy_ignores_a_botched_sample_and_fails_only_if_all_fail() -> None:
    embedder = AxisEmbedder({QUESTION: [1, 0], "Who wrote Dune?": [1, 0]})
    judge, _ = judge_with("Sure! The question is about Dune.", '{"question": "Who wrote Dune?", "noncommittal": 0}')
    result = await ragas.answer_relevancy(judge, embedder, QUESTION, ANSWER, strictness=2)
    assert result.value == pytest.approx(1.0) and result.details["failed_samples"] == 1
    judge, _ = judge_with("no", "still no")
    assert (await ragas.answer_relevancy(judge, embedder, QUESTION, ANSWER, strictness=2)).status == "parse_error"


async def test_correctness_and_a_column_of_mixed_rows() -> None:
    judge, _ = judge_with('{"reason": "same person", "correct": true}', '{"reason": "other year", "correct": false}',
                          "I think it is right.")
    rows = [await ragas.answer_correctness(judge, QUESTION, "Herbert", ["Frank Herbert"]),
            await ragas.answer_correctness(judge, QUESTION, "1966", ["1965"]),
            await ragas.answer_correctness(judge, QUESTION, "Frank Herbert", ["Frank Herbert"])]
    assert [r.value for r in rows] == [1.0, 0.0, None]
    agg = aggregate(rows)
    assert agg.mean == 0.5 and (agg.n_valid, agg.n) == (2, 3) and agg.statuses["parse_error"] == 1


async def test_statements_of_the_wrong_shape_are_a_parse_error_not_no_statements() -> None:
    # A small judge echoed the example's shape with invented fields instead of statements.
    judge, llm = judge_with('{"statements": [{"title": "Dune", "author": "Frank Herbert", "year_published": "1965"}]}')
    result = await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)
    assert result.status == "parse_error" and len(llm.requests) == 1


async def test_judge_sends_the_prompt_schema_to_a_backend_that_constrains_decoding() -> None:
    from ragpipe.llm.base import Capabilities

    constrained = ScriptedLLM([STATEMENTS], capabilities=Capabilities(json_schema=True, seed=True))
    plain = ScriptedLLM([STATEMENTS])
    for llm in (constrained, plain):
        statements, reply = await ragas.statements_of(Judge(llm), QUESTION, ANSWER)
        assert reply.ok and len(statements) == 3
    assert constrained.requests[0].json_schema["required"] == ["statements"]
    assert plain.requests[0].json_schema is None  # a backend without it gets the plain prompt


async def test_faithfulness_holds_a_constraining_judge_to_one_verdict_per_statement() -> None:
    from ragpipe.llm.base import Capabilities

    llm = ScriptedLLM([STATEMENTS, NLI], capabilities=Capabilities(json_schema=True, seed=True))
    result = await ragas.faithfulness(Judge(llm), QUESTION, ANSWER, CONTEXTS)
    assert result.value == pytest.approx(2 / 3)
    verdicts = llm.requests[1].json_schema["properties"]["verdicts"]
    assert verdicts["minItems"] == verdicts["maxItems"] == 3
    # The prompt file's own schema is left as it was for the next call.
    from ragpipe.prompts import default_registry
    assert "minItems" not in default_registry().get("eval.faithfulness").spec.output.json_schema["properties"]["verdicts"]


async def test_a_copied_one_item_example_is_a_parse_error_not_a_score() -> None:
    # Qwen2.5-0.5B without constrained decoding: the reply format's example, verbatim, for three statements.
    copied = '{"verdicts": [{"statement": "statement 1 as given", "reason": "one short sentence", "verdict": 1}]}'
    judge, _ = judge_with(STATEMENTS, copied)
    result = await ragas.faithfulness(judge, QUESTION, ANSWER, CONTEXTS)
    assert result.status == "parse_error" and "1 usable verdicts for 3 statements" in result.details["reason"]
