"""In ``auto`` mode: give the generated answer, or quote the evidence sentence instead?

A generated answer that passes the degenerate checks can still be worse than the evidence's own
best sentence. Seen from small models on real documentation: "The cache file keeps files out of
your npm package" (built on the evidence sentence about npm's cache directory) when the evidence
says "Use a .npmignore file to keep stuff out of your package", and "Not found in the documents"
when an evidence sentence names the ``:vuln`` selector the question asks about. Both are judged by
the evidence alone, never by an expected answer:

- the words the answer adds to the question (its claim) come from an evidence sentence that
  addresses the question far less than the quoted sentence does: the claim rests on something else;
- the model abstained, yet one evidence sentence holds nearly all of the question's words and adds
  more: the evidence plainly addresses the question, and a quote is never worse than no answer.
  (A model's abstention over evidence that only partly matches the question stands.)
- the question asks for a number ("How many Publix stores are in …?", "In what year …?"), the
  answer states none ("… is Florida": a step on the way, not the answer), and the quote does.
  The other way round the answer stands: it states the number asked for (the degenerate checks
  already made sure the evidence holds it), the quote does not.
"""

from __future__ import annotations

import re

from ragpipe.generate.citations import MARKER
from ragpipe.generate.extractive import Extraction, candidates
from ragpipe.generate.sentences import content_words, question_coverage, split_sentences
from ragpipe.generate.support import added_words
from ragpipe.schema import ScoredChunk

MIN_BACKING_RATIO = 0.5  # of the quoted sentence's question coverage, for the claim's backing sentence
MIN_QUOTE_COVERAGE = 0.75  # of the question's words, for a quote to replace an abstention
MIN_QUESTION_WORDS = 3  # a shorter question says too little to tell a matching sentence by its words
_ASKS_NUMBER = re.compile(
    r"\bhow (?:many|much|old|long|far|tall|high|large|big|often)\b|\b(?:what|which) (?:year|percentage|number)\b",
    re.IGNORECASE)
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|million|billion|dozen|once|twice)\b", re.IGNORECASE)


def claim(answer: str, question: str) -> set[str]:
    """The words the answer adds to the question: those of its first sentence (the answer, in an
    answer-first reply), else of the whole answer when the first only restates the question."""
    sentences = split_sentences(MARKER.sub(" ", answer))
    added = added_words(sentences[0].text, question) if sentences else set()
    return added or added_words(answer, question)


def backing_coverage(answer: str, question: str, evidence: list[ScoredChunk]) -> float | None:
    """Question coverage of the evidence sentence that holds most of the answer's claim (the best
    covering one among equals); None when no evidence sentence holds any of it."""
    added = claim(answer, question)
    pool = [c.sentence.text for c in candidates(evidence)]
    held = [(len(added & content_words(text)), question_coverage(question, text)) for text in pool]
    if not added or not held or max(h for h, _ in held) == 0:
        return None
    return max(held)[1]


def states_no_number(answer: str, question: str) -> bool:
    """``question`` asks for a number and ``answer`` (its citation markers aside) states none."""
    return bool(_ASKS_NUMBER.search(question)) and not _NUMBER.search(MARKER.sub(" ", answer))


def gives_asked_number(answer: str, question: str) -> bool:
    """``question`` asks for a number and ``answer`` (its citation markers aside) states one."""
    return bool(_ASKS_NUMBER.search(question)) and not states_no_number(answer, question)


def quote_could_win(answer: str | None, question: str, evidence: list[ScoredChunk]) -> bool:
    """Whether :func:`prefer_quote` could pick a quote over ``answer``, judged by words alone.

    Ranking the evidence sentences embeds each of them, which costs more than the rest of a
    query's non-LLM work together; most answers stand on these word checks without it.
    """
    if len(content_words(question)) < MIN_QUESTION_WORDS:
        return False
    if answer is None:
        return any(question_coverage(question, text) >= MIN_QUOTE_COVERAGE
                   and content_words(text) - content_words(question)
                   for text in (c.sentence.text for c in candidates(evidence)))
    if states_no_number(answer, question) and any(
            not states_no_number(c.sentence.text, question) for c in candidates(evidence)):
        return True
    backing = backing_coverage(answer, question, evidence)
    return backing is not None and backing < MIN_BACKING_RATIO  # a quote covers at most all of the question


def prefer_quote(answer: str | None, question: str, evidence: list[ScoredChunk], quote: Extraction) -> str | None:
    """Why the quoted evidence answers better than ``answer`` (None: the model abstained); None
    when the generated answer should stand."""
    if len(content_words(question)) < MIN_QUESTION_WORDS:
        return None
    quoted = " ".join(c.sentence.text for c in quote.quoted)
    # Sentence by sentence: a claim resting on one hop of a two-part quote is not weaker than the quote.
    matched = max(question_coverage(question, c.sentence.text) for c in quote.quoted)
    if answer is None:  # one sentence must match: two half-matching ones from different places are weaker
        best = quote.quoted[0].sentence.text
        best_match = question_coverage(question, best)
        if best_match >= MIN_QUOTE_COVERAGE and content_words(best) - content_words(question):
            return f"the model abstained, yet an evidence sentence holds {best_match:.0%} of the question's words"
        return None
    if states_no_number(answer, question) and not states_no_number(quoted, question):
        return "the question asks for a number; the generated answer states none, the quoted sentence does"
    if gives_asked_number(answer, question) and states_no_number(quoted, question):
        return None
    backing = backing_coverage(answer, question, evidence)
    if backing is not None and backing < MIN_BACKING_RATIO * matched:
        return (f"the generated answer rests on evidence holding {backing:.0%} of the question's words; "
                f"the quoted sentence holds {matched:.0%}")
    return None
