"""Listwise selector: window arithmetic, permutation write-back, FIRST from logprobs, budgets."""

from __future__ import annotations

import math

import pytest

from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.llm.base import Capabilities, Completion, TokenLogprob, TopLogprob
from ragpipe.llm.scripted import ScriptedLLM, logprob_reply
from ragpipe.select import get_selector
from ragpipe.select.listwise import first_letter_logprobs, window_spans
from tests.select.conftest import RAW


@pytest.mark.parametrize(
    "n,window,stride,calls",
    [(100, 20, 10, 9), (20, 20, 10, 1), (5, 20, 10, 1), (25, 20, 10, 2), (30, 20, 10, 2), (31, 20, 10, 3),
     (100, 20, 20, 5), (50, 10, 5, 9), (0, 20, 10, 0)],
)
def test_number_of_windows(n, window, stride, calls):
    spans = window_spans(n, window, stride)
    assert len(spans) == calls
    if n > window:
        assert calls == 1 + math.ceil((n - window) / stride)
    if spans:
        assert spans[0][1] == n and spans[-1][0] == 0  # back to front, covers everything
        assert all(end - start <= window for start, end in spans)


def test_windows_move_back_to_front():
    assert window_spans(100, 20, 10)[:3] == [(80, 100), (70, 90), (60, 80)]
    assert window_spans(25, 20, 10) == [(5, 25), (0, 15)]


async def test_call_count_matches_windows_and_passes(candidates):
    llm = ScriptedLLM(cycle=["[2] > [1]"])
    selector = get_selector("listwise", window=10, stride=5, passes=2)
    selection = await selector.select("q?", candidates(30), RunContext(llm=llm))
    assert len(llm.requests) == 2 * len(window_spans(30, 10, 5)) == selection.usage.calls


async def test_a_relevant_passage_at_the_bottom_bubbles_to_the_top(candidates):
    """Each window puts the passage mentioning 'needle' first: it climbs by stride per window."""
    texts = [f"filler text {i}" for i in range(30)]
    texts[27] = "the needle passage"

    def rank_needle_first(request):
        body = request.messages[-1].content
        idents = [line.split("]")[0].strip("[") for line in body.splitlines() if line.startswith("[")]
        lines = {line.split("]")[0].strip("["): line for line in body.splitlines() if line.startswith("[")}
        needle = [i for i in idents if "needle" in body.split(f"[{i}] ")[1].split("</data>")[0]]
        rest = [i for i in idents if i not in needle]
        assert lines  # the prompt lists the window's passages
        return " > ".join(f"[{i}]" for i in needle + rest)

    llm = ScriptedLLM(fn=rank_needle_first)
    selection = await get_selector("listwise", window=10, stride=5, **RAW).select(
        "q?", candidates(30, texts=texts), RunContext(llm=llm))
    assert selection.ranked[0].id == "c27"
    assert [c.rank for c in selection.ranked] == list(range(1, 31))
    assert all(a.score > b.score for a, b in zip(selection.ranked, selection.ranked[1:]))
    assert selection.ranked[0].stage_scores["bm25"] == pytest.approx(12.0 - 0.5 * 27)  # history kept


async def test_received_passage_answer_is_not_read_as_a_ranking(candidates):
    llm = ScriptedLLM(cycle=["Received passage [20]."])
    selection = await get_selector("listwise").select("q?", candidates(20), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(20)]
    assert any(e.kind == "fallback" and "wrong_format" in e.message for e in selection.trace)


async def test_partial_ranking_is_completed_in_input_order(candidates):
    llm = ScriptedLLM(["[4] > [2]"])
    selection = await get_selector("listwise", **RAW).select("q?", candidates(5), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c3", "c1", "c0", "c2", "c4"]
    assert any(e.kind == "repair" and "appended" in e.message for e in selection.trace)


async def test_max_tokens_is_sized_to_the_ideal_answer(candidates):
    llm = ScriptedLLM(["[1] > [2] > [3]"])
    await get_selector("listwise").select("q?", candidates(3), RunContext(llm=llm))
    ideal_tokens = len("[1] > [2] > [3]".split())
    assert ideal_tokens < llm.requests[0].max_tokens <= ideal_tokens + ideal_tokens // 4 + 16
    assert llm.requests[0].temperature == 0


async def test_identifiers_inside_passages_are_rewritten(candidates):
    texts = ["See reference [2] for details.", "Plain text."]
    llm = ScriptedLLM(["[1] > [2]"])
    await get_selector("listwise").select("what does [1] say?", candidates(2, texts=texts), RunContext(llm=llm))
    body = llm.requests[0].messages[-1].content
    assert "reference (2)" in body and "what does (1) say" in body


async def test_passages_are_truncated_to_fit_the_context_and_it_is_traced(candidates):
    long = [" ".join(f"w{i}_{k}" for k in range(400)) for i in range(10)]
    caps = Capabilities(logprobs=False, context_window=1200)
    llm = ScriptedLLM(cycle=["[1] > [2]"], capabilities=caps)
    selection = await get_selector("listwise", window=10).select("q?", candidates(10, texts=long),
                                                                  RunContext(llm=llm))
    request = llm.requests[0]
    prompt_tokens = sum(llm.count_tokens(m.content) for m in request.messages)
    assert prompt_tokens + request.max_tokens <= caps.context_window
    truncation = [e for e in selection.trace if e.kind == "truncation"]
    assert truncation and truncation[0].data["words"] < 300


def test_first_letters_from_synthetic_logprobs():
    completion = logprob_reply({"C": 0.5, " A": 0.2, "[B": 0.1, "Z": 0.1, "the": 0.1})
    found = first_letter_logprobs(completion, 3)
    assert sorted(found, key=lambda i: -found[i]) == [2, 0, 1]  # Z is outside the window


def test_first_reads_the_position_after_an_opening_bracket():
    second = TokenLogprob(token="D", logprob=math.log(0.6),
                          top=[TopLogprob(token="D", logprob=math.log(0.6)), TopLogprob(token="A", logprob=math.log(0.3))])
    completion = Completion(text="[D", logprobs=[TokenLogprob(token="[", logprob=-0.01), second], finish_reason="length")
    found = first_letter_logprobs(completion, 4)
    assert sorted(found, key=lambda i: -found[i]) == [3, 0]


async def test_first_mode_ranks_by_letter_logprobs_in_one_token_per_window(candidates):
    llm = ScriptedLLM(cycle=[logprob_reply({"C": 0.5, "A": 0.3, "E": 0.1, "]": 0.1})])
    selection = await get_selector("listwise", mode="first", calibrate=False, check_reversed=False, **RAW).select("q?", candidates(5), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c2", "c0", "c4", "c1", "c3"]  # B, D missing: input order
    request = llm.requests[0]
    assert request.max_tokens <= 3 and request.top_logprobs == 20
    assert "[A]" in request.messages[-1].content and "[1]" not in request.messages[-1].content
    assert any(e.kind == "repair" and "missing" in e.message for e in selection.trace)
    assert not any(e.kind == "fallback" for e in selection.trace)  # finish_reason=length is expected here


async def test_first_falls_back_to_generation_without_logprobs(candidates):
    llm = ScriptedLLM(["B", "[2] > [1] > [3]"])  # a backend that ignores the logprob request
    selection = await get_selector("listwise", mode="first", check_reversed=False, **RAW).select("q?", candidates(3), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c0", "c2"]
    assert any("no logprobs" in e.message for e in selection.trace)
    assert llm.requests[1].top_logprobs == 0


async def test_first_is_not_used_when_letters_are_several_tokens(candidates):
    class MultiTokenLetters(ScriptedLLM):
        def count_tokens(self, text: str) -> int:
            return 2 if text in ("A", "B", "C") else super().count_tokens(text)

    llm = MultiTokenLetters(["[3] > [1] > [2]"])
    selection = await get_selector("listwise", mode="first", check_reversed=False, **RAW).select("q?", candidates(3), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c2", "c0", "c1"]
    assert any("single tokens" in e.message for e in selection.trace)


async def test_first_needs_a_backend_with_top_logprobs(candidates):
    llm = ScriptedLLM(["[2] > [1]"], capabilities=Capabilities(logprobs=False))
    selection = await get_selector("listwise", mode="first", check_reversed=False, **RAW).select("q?", candidates(2), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c1", "c0"]
    assert any("FIRST needs top logprobs" in e.message for e in selection.trace)


@pytest.mark.parametrize("config", [{"window": 1}, {"stride": 0}, {"stride": 30}, {"passes": 0},
                                    {"mode": "first", "window": 30}, {"mode": "magic"}, {"windw": 3}])
def test_bad_configuration(config):
    with pytest.raises(ConfigError):
        get_selector("listwise", **config)


def bracket_then_letter(first_alternatives: dict[str, float], letters: dict[str, float]) -> Completion:
    """What a model without prefill emits: "[" first (letters only as faint alternatives), then the letter."""
    opening = TokenLogprob(token="[", logprob=math.log(0.97), top=[TopLogprob(token="[", logprob=math.log(0.97))] + [
        TopLogprob(token=t, logprob=math.log(p)) for t, p in first_alternatives.items()])
    best = max(letters, key=letters.get)
    letter = TokenLogprob(token=best, logprob=math.log(letters[best]),
                          top=[TopLogprob(token=t, logprob=math.log(p)) for t, p in letters.items()])
    return Completion(text="[" + best, logprobs=[opening, letter], finish_reason="length")


def test_first_ignores_the_faint_letters_at_the_opening_bracket():
    completion = bracket_then_letter({"A": 0.01, "E": 0.008, "B": 0.005}, {"C": 0.6, "D": 0.3, "A": 0.05})
    found = first_letter_logprobs(completion, 5)
    assert sorted(found, key=lambda i: -found[i]) == [2, 3, 0]


def test_first_reads_the_letter_after_a_passage_prefix():
    opening = TokenLogprob(token="Passage", logprob=-0.05, top=[TopLogprob(token="Passage", logprob=-0.05),
                                                                TopLogprob(token="A", logprob=math.log(0.02))])
    letter = TokenLogprob(token=" B", logprob=math.log(0.7), top=[TopLogprob(token=" B", logprob=math.log(0.7)),
                                                                  TopLogprob(token=" C", logprob=math.log(0.2))])
    found = first_letter_logprobs(Completion(text="Passage B", logprobs=[opening, letter]), 3)
    assert sorted(found, key=lambda i: -found[i]) == [1, 2]


def test_first_gives_nothing_when_the_model_starts_with_prose():
    prose = TokenLogprob(token="The", logprob=-0.1, top=[TopLogprob(token="The", logprob=-0.1),
                                                         TopLogprob(token="A", logprob=math.log(0.05))])
    assert first_letter_logprobs(Completion(text="The", logprobs=[prose]), 3) == {}


async def test_first_mode_ranks_by_the_letter_position_of_a_realistic_stream(candidates):
    llm = ScriptedLLM(cycle=[bracket_then_letter({"A": 0.01, "B": 0.008}, {"D": 0.5, "C": 0.3, "E": 0.1})])
    selection = await get_selector("listwise", mode="first", calibrate=False, check_reversed=False, **RAW).select("q?", candidates(5), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == ["c3", "c2", "c4", "c0", "c1"]


async def test_listwise_scores_keep_the_retriever_shape_for_the_cutoff():
    """The elbow after listwise sees the slot scores (a clear gap after 3), not n - position."""
    from ragpipe.schema import Chunk, ScoredChunk

    values = [20.0, 19.5, 19.0, 6.0, 5.8, 5.6, 5.4, 5.2, 5.0, 4.8]
    cands = [ScoredChunk(chunk=Chunk(id=f"c{i}", doc_id=f"d{i}", position=0, text=f"text {i}"), score=v, rank=i + 1)
             for i, v in enumerate(values)]
    llm = ScriptedLLM(cycle=["[2] > [1] > [3] > [4] > [5] > [6] > [7] > [8] > [9] > [10]"])
    selection = await get_selector("listwise", cutoff="zscore_gap").select("q?", cands, RunContext(llm=llm))
    assert sorted(c.id for c in selection.kept) == ["c0", "c1", "c2"]  # the elbow, not min_keep
    assert [round(c.score, 6) for c in selection.ranked] == values
    raw = await get_selector("listwise", cutoff="zscore_gap", **RAW).select("q?", cands, RunContext(llm=llm))
    assert [c.id for c in raw.kept] == ["c1", "c0", "c2"]


async def test_a_one_passage_window_is_not_sent(candidates):
    llm = ScriptedLLM(cycle=[" > ".join(f"[{i}]" for i in range(1, 21))])
    selection = await get_selector("listwise", window=20, stride=20).select("q?", candidates(21), RunContext(llm=llm))
    assert len(llm.requests) == 1  # windows [1, 21) and [0, 1): the second has nothing to rank
    assert not any(e.kind == "fallback" for e in selection.trace)


async def test_a_single_candidate_is_kept_without_a_call_even_fail_closed(candidates):
    llm = ScriptedLLM()  # any call would raise: no reply scripted
    selection = await get_selector("listwise", fail_policy="closed").select("q?", candidates(1), RunContext(llm=llm))
    assert [c.id for c in selection.kept] == ["c0"] and llm.requests == []


async def test_a_ranking_with_a_short_preamble_is_not_cut(candidates):
    ranking = " > ".join(f"[{i}]" for i in range(20, 0, -1))
    llm = ScriptedLLM(["Sure! Here is the ranking of all the passages, most relevant first: " + ranking])
    selection = await get_selector("listwise", **RAW).select("q?", candidates(20), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(19, -1, -1)]
    assert not any(e.kind == "repair" for e in selection.trace)


async def test_reversed_check_averages_the_two_answers_and_feeds_the_harm_bound(candidates):
    def position_biased(request):  # always answers the window in the order it was shown
        return "[1] > [2] > [3] > [4]"

    llm = ScriptedLLM(fn=position_biased)
    selection = await get_selector("listwise", check_reversed=True).select("q?", candidates(4), RunContext(llm=llm))
    assert len(llm.requests) == 2
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["self_agreement"] == 0.0 and harm.data["trusted"] == "input"
    assert [c.id for c in selection.ranked] == ["c0", "c1", "c2", "c3"]


def _capped_prompts(tmp_path, base: str, max_tokens: int):
    """A user prompt folder whose copy of ``base`` lowers the prompt file's max_tokens."""
    import yaml

    from ragpipe.prompts import PromptRegistry, default_registry

    spec = default_registry().get(base).spec.model_dump(exclude={"name"}, exclude_none=True)
    spec["max_tokens"] = max_tokens
    (tmp_path / f"{base}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return PromptRegistry([tmp_path])


async def test_the_prompt_files_max_tokens_caps_the_answer(candidates, tmp_path):
    llm = ScriptedLLM(["[3] > [1] > [2] > [4] > [5] > [6]"])
    ctx = RunContext(llm=llm, prompts=_capped_prompts(tmp_path, "listwise.default", 4))
    selection = await get_selector("listwise", **RAW).select("q?", candidates(6), ctx)
    assert llm.requests[0].max_tokens == 4
    # the cut answer "[3] > [1]" still leads, the rest follows in input order
    assert [c.id for c in selection.ranked][:2] == ["c2", "c0"]


def test_first_adds_up_the_spellings_of_one_letter():
    # "B" and " B" together (0.25 + 0.2) outweigh "A" (0.4), as yes/no and A/B spellings do elsewhere
    completion = logprob_reply({"A": 0.4, "B": 0.25, " B": 0.2, "C": 0.15})
    found = first_letter_logprobs(completion, 3)
    assert sorted(found, key=lambda i: -found[i]) == [1, 0, 2]
    assert math.exp(found[1]) == pytest.approx(0.45)


def letters_of(request) -> dict[str, str]:
    """The window as the model sees it: letter -> passage text."""
    import re

    return dict(re.findall(r"^\[([A-Z])\] <data[^>]*>\n(.*)$", request.messages[-1].content, re.MULTILINE))


def first_reply(letters: dict[str, float]) -> Completion:
    """A FIRST answer without prefill: "[" first, then the letter, with the tail spread thin."""
    return bracket_then_letter({"A": 0.004, "B": 0.002}, letters)


async def test_first_checks_each_window_reversed_by_default_and_keeps_the_input_for_a_position_biased_model(
        candidates):
    """Qwen-0.5B-like: most of the mass on whatever letter comes first, whatever it holds."""
    llm = ScriptedLLM(cycle=[first_reply({"A": 0.62, "B": 0.14, "C": 0.07, "E": 0.03, "D": 0.02})])
    selection = await get_selector("listwise", mode="first", calibrate=False).select("q?", candidates(6), RunContext(llm=llm))
    assert len(llm.requests) == 2 and all(r.max_tokens <= 3 for r in llm.requests)
    shown = [letters_of(r)["A"] for r in llm.requests]
    assert "Passage 0 " in shown[0] and "Passage 5 " in shown[1]  # the second call sees the window reversed
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "input" and harm.data["self_agreement"] < 0.2
    assert "agreed with itself" in harm.message
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(6)]


async def test_first_trusts_a_model_that_picks_the_same_passage_from_either_end(candidates):
    def relevant_first(request):  # the needle wins wherever it stands; the tail order is noise
        letters = letters_of(request)
        needle = next(x for x, text in letters.items() if "needle" in text)
        others = [x for x in letters if x != needle]
        return first_reply({needle: 0.55, others[0]: 0.2, others[-1]: 0.1, others[1]: 0.04})

    texts = [f"Passage {i} about something else." for i in range(8)]
    texts[5] = "Passage 5 with the needle in it."
    llm = ScriptedLLM(fn=relevant_first)
    selection = await get_selector("listwise", mode="first", calibrate=False).select("q?", candidates(8, texts=texts),
                                                                     RunContext(llm=llm))
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "fused" and harm.data["self_agreement"] > 0.65
    assert harm.data["llm_weight"] > 0.5  # agreement shown: more weight than an unchecked order gets
    assert selection.ranked[0].id == "c5"
    info = next(e for e in selection.trace if "letter distributions agree" in e.message)
    assert info.data["top"][0] == 5


async def test_first_without_the_reversed_check_is_one_call(candidates):
    llm = ScriptedLLM(cycle=[first_reply({"C": 0.5, "A": 0.3})])
    selection = await get_selector("listwise", mode="first", calibrate=False, check_reversed=False).select(
        "q?", candidates(4), RunContext(llm=llm))
    assert len(llm.requests) == 1
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["self_checks"] == 0 and harm.data["self_agreement"] is None


async def test_generation_is_not_asked_twice_unless_requested(candidates):
    llm = ScriptedLLM(cycle=["[2] > [1] > [3]"])
    await get_selector("listwise").select("q?", candidates(3), RunContext(llm=llm))
    assert len(llm.requests) == 1


def test_first_consensus_ignores_the_order_of_letters_neither_answer_considered():
    from ragpipe.select.listwise import first_consensus

    n = 10
    tail = [math.log(0.001 * (1 + i)) for i in range(n)]  # near-zero alternatives, in opposite orders
    forwards = {i: tail[i] for i in range(n)} | {3: math.log(0.7), 6: math.log(0.2)}
    backwards = {i: tail[n - 1 - i] for i in range(n)} | {3: math.log(0.6), 6: math.log(0.3)}
    consensus = first_consensus(forwards, backwards, n)
    assert consensus.order[:2] == [3, 6]
    assert consensus.agreement > 0.85  # plain pair counting would say about 0.5


def test_first_consensus_of_two_answers_that_pick_different_passages():
    from ragpipe.select.listwise import first_consensus

    forwards = {0: math.log(0.8), 1: math.log(0.1), 2: math.log(0.05)}
    backwards = {2: math.log(0.8), 1: math.log(0.1), 0: math.log(0.05)}  # mirror image: pure position bias
    consensus = first_consensus(forwards, backwards, 4)
    assert consensus.agreement < 0.5  # they agree only that passage 3, which neither considered, is last
    assert consensus.order == [0, 2, 1, 3]


async def test_first_whose_reversed_window_gives_no_ranking_keeps_the_input_order(candidates):
    prose = TokenLogprob(token="The", logprob=-0.1, top=[TopLogprob(token="The", logprob=-0.1)])
    llm = ScriptedLLM([first_reply({"D": 0.7, "A": 0.1}), Completion(text="The", logprobs=[prose]),
                       "The passages are all relevant."])  # reversed: prose, then generation: no ranking either
    selection = await get_selector("listwise", mode="first", calibrate=False).select("q?", candidates(5), RunContext(llm=llm))
    assert len(llm.requests) == 3
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "input" and harm.data["self_agreement"] == 0.0
    assert any("reversed window gave no ranking" in e.message for e in selection.trace)
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(5)]


# --- calibration: the content-free letter prior is divided out of FIRST answers ---

QWEN_PRIOR = [0.55, 0.15, 0.08, 0.05, 0.04, 0.03, 0.02, 0.02]  # letter A..H whatever it labels


def prior_times_relevance(request) -> Completion:
    """A small model: the letter prior times a relevance factor, one letter's mass split over spellings."""
    letters = letters_of(request)
    weights = {x: QWEN_PRIOR[i] * (6.0 if "needle" in text else 1.0) for i, (x, text) in enumerate(letters.items())}
    total = sum(weights.values()) / 0.95  # the rest goes to "]" and friends
    probs = {}
    for x, w in weights.items():
        probs[x], probs[" " + x] = 0.8 * w / total, 0.2 * w / total  # "B" and " B" are the same answer
    return bracket_then_letter({"A": 0.004, "B": 0.002}, probs)


def test_calibration_divides_the_letter_prior_out_of_a_bracketed_answer():
    from ragpipe.select.listwise import calibrated, letter_prior

    content_free = bracket_then_letter({"A": 0.01}, {"A": 0.6, " A": 0.05, "B": 0.2, "C": 0.1, "D": 0.04})
    prior = letter_prior(first_letter_logprobs(content_free, 5), 5)
    assert prior is not None and len(prior) == 5
    assert math.isclose(sum(math.exp(v) for v in prior), 1.0)
    assert prior[0] > prior[1] > prior[2] > prior[3] > prior[4]  # E unseen: below the least likely shown
    answer = first_letter_logprobs(bracket_then_letter({"A": 0.01}, {"A": 0.5, "C": 0.3, " C": 0.05, "B": 0.1}), 5)
    assert max(answer, key=answer.get) == 0  # read raw, A wins
    fixed = calibrated(answer, prior)
    assert sorted(fixed, key=lambda i: -fixed[i]) == [2, 0, 1]  # C is what this passage adds over the prior
    assert 3 not in fixed  # a letter the answer did not show stays unrated


async def test_calibrated_first_finds_the_relevant_passage_under_a_strong_letter_prior(candidates):
    texts = [f"Passage {i} about something else." for i in range(8)]
    texts[5] = "Passage 5 with the needle in it."
    llm = ScriptedLLM(fn=prior_times_relevance)
    selection = await get_selector("listwise", mode="first", calibrate=True).select("q?", candidates(8, texts=texts),
                                                                     RunContext(llm=llm))
    assert len(llm.requests) == 4  # two content-free calls, then the window forwards and reversed
    assert [set(letters_of(r).values()) for r in llm.requests[:2]] == [{"N/A"}, {"[MASK]"}]
    prior = next(e for e in selection.trace if "letter prior" in e.message)
    assert prior.message.startswith("calibration (8 passages): letter prior A 59%")  # 0.55 of the letters' 0.94
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "fused" and harm.data["self_agreement"] > 0.9
    assert selection.ranked[0].id == "c5"


async def test_the_same_model_uncalibrated_looks_position_biased_and_keeps_the_input(candidates):
    texts = [f"Passage {i} about something else." for i in range(8)]
    texts[5] = "Passage 5 with the needle in it."
    llm = ScriptedLLM(fn=prior_times_relevance)
    selection = await get_selector("listwise", mode="first", calibrate=False).select(
        "q?", candidates(8, texts=texts), RunContext(llm=llm))
    assert len(llm.requests) == 2
    harm = next(e for e in selection.trace if e.kind == "harm_bound")
    assert harm.data["trusted"] == "input"
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(8)]


async def test_a_model_that_only_repeats_its_prior_leaves_the_input_order(candidates):
    llm = ScriptedLLM(fn=prior_times_relevance)  # no needle anywhere: every answer is the prior
    selection = await get_selector("listwise", mode="first", calibrate=True).select("q?", candidates(8), RunContext(llm=llm))
    assert [c.id for c in selection.ranked] == [f"c{i}" for i in range(8)]


async def test_one_calibration_call_per_window_size(candidates):
    llm = ScriptedLLM(fn=prior_times_relevance)
    selection = await get_selector("listwise", mode="first", calibrate=True, window=8, stride=4).select(
        "q?", candidates(10), RunContext(llm=llm))  # windows [2, 10) and [0, 6): sizes 8 and 6
    content_free = [r for r in llm.requests if set(letters_of(r).values()) == {"N/A"}]
    assert sorted(len(letters_of(r)) for r in content_free) == [6, 8]
    assert len(llm.requests) == 2 * 2 + 2 * 2 == selection.usage.calls


async def test_an_unreadable_calibration_answer_leaves_first_uncalibrated(candidates):
    prose = TokenLogprob(token="The", logprob=-0.1, top=[TopLogprob(token="The", logprob=-0.1)])
    llm = ScriptedLLM([Completion(text="The", logprobs=[prose]), Completion(text="The", logprobs=[prose])],
                      cycle=[first_reply({"C": 0.6, "A": 0.2})])
    selection = await get_selector("listwise", mode="first", calibrate=True, check_reversed=False).select(
        "q?", candidates(4), RunContext(llm=llm))
    assert any("FIRST letters used uncalibrated" in e.message for e in selection.trace)
    assert selection.extras["llm_order"][0] == "c2"


async def test_the_prior_averages_the_placeholders_that_gave_letters(candidates):
    prose = TokenLogprob(token="The", logprob=-0.1, top=[TopLogprob(token="The", logprob=-0.1)])
    llm = ScriptedLLM([first_reply({"A": 0.8, "B": 0.1}), Completion(text="The", logprobs=[prose])],
                      cycle=[first_reply({"A": 0.8, "B": 0.1})])  # the answer is the prior: nothing learned
    selection = await get_selector("listwise", mode="first", calibrate=True, check_reversed=False).select(
        "q?", candidates(3), RunContext(llm=llm))
    prior = next(e for e in selection.trace if "letter prior" in e.message)
    assert prior.data["placeholders"] == 1 and prior.message.endswith("A 84%, B 11%, C 5%")
    assert any("no identifier letter" in e.message and e.kind == "repair" for e in selection.trace)
    assert selection.extras["llm_order"] == ["c0", "c1", "c2"]
