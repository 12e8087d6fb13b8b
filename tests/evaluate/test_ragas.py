"""RAGAS-style metrics with a scripted judge: hand-computed scores and realistic judge failures."""

from __future__ import annotations

import json
import re

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
    judge, llm = judge_with(reply)
    reference = "Frank Herbert wrote Dune. It was published in 1965. It sold 20 million copies. It was first serialised."
    result = await ragas.context_recall(judge, QUESTION, CONTEXTS, reference)
    assert result.value == pytest.approx(0.5) and len(result.details["sentences"]) == 4
    assert "4. It was first serialised." in llm.requests[0].messages[-1].content
    assert (await ragas.context_recall(Judge(ScriptedLLM()), QUESTION, CONTEXTS, "")).status == "undefined"


@pytest.mark.parametrize("reply, verdicts", [
    ('{"classifications": [{"sentence": 2, "attributed": "no"}, {"sentence": "1", "attributed": 1}]}', [1, 0]),
    ("Verdicts:\n```json\n[1, 0]\n```", [1, 0]),
    ('{"1": "yes", "2": 0}', [1, 0]),
    ('{"verdicts": [{"reason": "stated", "verdict": 1}, {"reason": "absent", "verdict": 0}]}', [1, 0]),
])
async def test_context_recall_reads_verdict_shapes_leniently(reply: str, verdicts: list[int]) -> None:
    judge, _ = judge_with(reply)
    result = await ragas.context_recall(judge, QUESTION, CONTEXTS, "Frank Herbert wrote Dune. It won a Hugo.")
    assert result.status == "ok" and result.details["verdicts"] == verdicts


@pytest.mark.parametrize("reply", [
    '{"classifications": [{"sentence": 1, "attributed": 1}]}',  # one verdict for two sentences
    '{"classifications": [{"attributed": 1}, {"attributed": 0}, {"attributed": 1}]}',  # which two?
    '{"classifications": [{"sentence": 1, "attributed": 1}, {"sentence": 1, "attributed": 0}, '
    '{"sentence": 2, "attributed": 1}]}',  # sentence 1 both ways
    '{"classifications": [{"sentence": 1, "attributed": 1}, {"sentence": 2, "attributed": "maybe"}]}',
])
async def test_context_recall_an_unreadable_reply_stays_invalid(reply: str) -> None:
    judge, _ = judge_with(reply)
    result = await ragas.context_recall(judge, QUESTION, CONTEXTS, "Frank Herbert wrote Dune. It won a Hugo.")
    assert result.status == "parse_error" and result.value is None


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
    judge, _ = judge_with('{"match": "Herbert", "correct": true}', '{"match": "", "correct": false}',
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


# HotpotQA-sized passages (about 60 words each), as the judged run on the dev data retrieved them.
PASSAGES = [
    "Maximum Overdrive is a 1986 American science fiction horror film written and directed by Stephen King. "
    "The film stars Emilio Estevez, Pat Hingle and Laura Harrington. The film was shot in and around Wilmington "
    "and Leland, North Carolina, and it was the only film King directed himself; he later called it a moron movie.",
    "Leland is a town in Brunswick County, North Carolina, United States. The population was 13,527 at the 2010 "
    "census, up from 1,938 in 2000. It is part of the Wilmington metropolitan area and lies across the Cape Fear "
    "River from downtown Wilmington, where many films and television series have been made since the 1980s.",
]


def copying_judge(request):
    """Qwen2.5-0.5B's runaway as a judge: every free-text field copies a passage, and the list goes on
    until the schema's maxItems stops it (or max_tokens cuts it off); string maxLength is obeyed, as
    constrained decoding enforces it."""
    passages = re.findall(r'<data id="\d+">\n(.*?)\n</data>', request.messages[-1].content, re.DOTALL)
    schema = request.json_schema
    key = schema["required"][0]
    items_schema = schema["properties"][key]
    items = []
    for i in range(items_schema.get("maxItems", 12)):
        item = {}
        for name, prop in items_schema["items"]["properties"].items():
            if name == "sentence":
                item[name] = i + 1
            elif prop.get("type") == "string":
                text = passages[i % len(passages)]
                item[name] = text[: prop.get("maxLength", len(text))]
            elif "enum" in prop:
                item[name] = prop["enum"][-1]
            else:
                item[name] = i + 1
        items.append(item)
    return json.dumps({key: items})


async def test_context_recall_runaway_judge_is_bounded_by_the_reference_sentences() -> None:
    from ragpipe.llm.base import Capabilities

    llm = ScriptedLLM(fn=copying_judge, capabilities=Capabilities(json_schema=True, seed=True))
    question = "Who directed the film that was shot in or around Leland, North Carolina in 1986?"
    result = await ragas.context_recall(Judge(llm), question, PASSAGES, "Stephen King")
    assert result.status == "ok", result.details
    assert result.value == 1.0 and result.details["verdicts"] == [1]
    two = await ragas.context_recall(Judge(llm), question, PASSAGES,
                                     "Stephen King directed it. He wrote it as well.")
    assert two.status == "ok" and two.details["verdicts"] == [1, 1]
    one_request, two_request = llm.requests
    assert one_request.max_tokens < two_request.max_tokens <= 512
    assert "2. He wrote it as well." in two_request.messages[-1].content


async def test_an_abstained_answer_scores_zero_without_asking_the_judge() -> None:
    # Qwen2.5-0.5B said true for "Not found in the documents." against the gold "Steely & Clevie".
    judge, llm = judge_with('{"reason": "Steely and Clevie is correct.", "correct": true}')
    question = "Who produced the single that the Jamaican reggae singer born in 1952 in Kingston released?"
    result = await ragas.answer_correctness(judge, question, "Not found in the documents.", ["Steely & Clevie"])
    assert result.status == "ok" and result.value == 0.0 and result.details["abstained"] is True
    flagged = await ragas.answer_correctness(judge, question, "The evidence has no producer.", ["Steely & Clevie"],
                                             abstained=True)
    assert flagged.value == 0.0 and llm.requests == []


async def test_correctness_prompt_keeps_the_gold_apart_and_shows_no_verdict_to_copy() -> None:
    judge, llm = judge_with('{"match": "", "correct": false}')
    result = await ragas.answer_correctness(judge, "Who directed the film shot in Leland in 1986?",
                                            "Maximum Overdrive (1986) was shot in Leland.", ["Stephen King"])
    assert result.value == 0.0
    prompt = llm.requests[0].messages[-1].content
    gold_block = re.search(r'<data id="gold">\n(.*?)\n</data>', prompt, re.DOTALL)
    answer_block = re.search(r'<data id="answer">\n(.*?)\n</data>', prompt, re.DOTALL)
    assert gold_block and "Stephen King" in gold_block.group(1) and "Stephen King" not in answer_block.group(1)
    # The reply format names no verdict value a small judge could copy as its default.
    reply_format = prompt[prompt.rindex("Reply with JSON only"):]
    assert '"correct": true' not in reply_format and "true or false" not in reply_format


@pytest.mark.parametrize("reply", [
    # Qwen2.5-0.5B on the dev data: "true" while quoting the gold answer, which the answer lacks.
    '{"match": "Stephen King", "correct": true}',
    '{"match": "", "correct": true}',
    '{"reason": "Stephen King directed the film shot in Leland in 1986.", "correct": true}',
])
async def test_a_true_verdict_counts_only_when_its_match_is_in_the_answer(reply: str) -> None:
    judge, _ = judge_with(reply)
    result = await ragas.answer_correctness(judge, "Who directed the film shot in Leland in 1986?",
                                            '"Maximum Overdrive" (1986) was shot in Leland, North Carolina [1].',
                                            ["Stephen King"])
    assert result.status == "ok" and result.value == 0.0
    assert result.details["judge_verdict"] == 1 and result.details["match_in_answer"] is False


async def test_a_true_verdict_with_a_match_from_the_answer_counts() -> None:
    judge, _ = judge_with('{"match": "S. King [1]", "correct": true}')
    result = await ragas.answer_correctness(judge, "Who directed Maximum Overdrive?", "It was directed by S. King [1].",
                                            ["Stephen King"])
    assert result.value == 1.0 and result.details["match_in_answer"] is True


async def test_a_match_is_found_across_typographic_quotes() -> None:
    # The generator quoted its evidence in curly quotes; the judge's match leaves them out.
    judge, _ = judge_with('{"match": "Sergio Agüero was given the FIFA U-20 Golden", "correct": true}')
    result = await ragas.answer_correctness(judge, "Who won the 2007 FIFA U-20 Golden Shoe?",
                                            "“Sergio Agüero was given the FIFA U-20 Golden Shoe.” [1]", ["Sergio Agüero"])
    assert result.details["match_in_answer"] is True and result.value == 1.0
