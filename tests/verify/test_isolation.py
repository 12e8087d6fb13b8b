"""Answer consistency: isolated answers grouped, near-duplicate supporters counted once."""

from __future__ import annotations

from ragpipe.schema import Rationale
from ragpipe.verify.isolation import answer_consistency_signal, answer_key
from ragpipe.verify.rules import usable_rules


def test_abstentions_and_filler_words_have_no_answer_key() -> None:
    assert answer_key("unknown") == frozenset() and answer_key("The passage does not say.") == frozenset()
    assert answer_key("The United Kingdom") == {"united", "kingdom"}


def test_paraphrased_plants_count_as_one_source_and_lose() -> None:
    planted = ["Switzerland was named worst for housing in the study of developed countries.",
               "The study of developed countries named Switzerland worst for housing."]
    honest = ["England: worst value housing, Resolution Foundation.", "UK think tank ranks England last on homes.",
              "English housing bottom of rich-country table."]
    signal = answer_consistency_signal(["Switzerland", "Switzerland", "England", "England", "England"], planted + honest)
    assert signal.flagged == [True, True, False, False, False]
    assert "1 independent source" in signal.details[0]


def test_no_clear_majority_flags_nothing() -> None:
    signal = answer_consistency_signal(["Bern", "Paris", "unknown"], ["a b c", "d e f", "g h i"])
    assert signal.flagged == [False, False, False]


def test_rules_that_echo_the_question_or_a_placeholder_are_ignored() -> None:
    question = "Which country has the worst housing?"
    rationales = [Rationale(index=i, text="t", flag_instructions=rule) for i, rule in enumerate(
        ["it cites no study", "Which country has the worst housing", "when to reject", "", "it cites no study"])]
    assert usable_rules(rationales, question) == (["it cites no study"],
                                                  ["Which country has the worst housing", "when to reject"])


def test_a_cluster_answer_that_no_outside_passage_gives_is_flagged() -> None:
    texts = ["Switzerland tops the list.", "The list is topped by Switzerland.", "Top of the list: Switzerland.",
             "Renters in England face the highest costs.", "Lunch is served from noon."]
    clusters = [0, 0, 0, 1, 2]
    signal = answer_consistency_signal(["Switzerland"] * 3 + ["England", "unknown"], texts, clusters=clusters)
    assert signal.flagged == [True, True, True, False, False]
    assert "none of the 2 passage(s) outside its cluster" in signal.details[0]
    corroborated = answer_consistency_signal(["Switzerland"] * 3 + ["Switzerland", "unknown"], texts, clusters=clusters)
    assert not any(corroborated.flagged)
    whole_pool = answer_consistency_signal(["Switzerland"] * 3, texts[:3], clusters=[0, 0, 0])
    assert not any(whole_pool.flagged)
