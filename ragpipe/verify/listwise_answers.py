"""Every passage's short answer to the question from one LLM call (the cheap half of isolate-then-aggregate).

The per-passage isolated answers of the robust mode cost one call per passage; this asks for all
of them at once, one ``N: answer`` line per numbered passage. The answers feed the same
``answer_consistency`` aggregation (near-duplicates count as one source), so a planted cluster
whose answer loses to the independent sources is flagged. The reply is untrusted: lines that
copy the prompt's placeholder or only repeat the question count as no answer, and a reply with
no readable line is reported as unreadable, never read as "no answers disagree".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragpipe.context import RunContext
from ragpipe.errors import LLMError
from ragpipe.llm.json_reply import parse_json_lenient
from ragpipe.schema import ScoredChunk, TraceEvent, Usage
from ragpipe.verify.calls import CallSite, ask_over_passages, call_failed
from ragpipe.verify.isolation import IsolatedAnswers
from ragpipe.verify.signals import rouge_tokens

ANSWERS_PROMPT = "verifier.answers"
_LINE = re.compile(r"^\s*(?:passage\s*|document\s*|\[|#)?(\d{1,3})\]?\s*[:.)\-–]\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_PLACEHOLDER = re.compile(r"^<?\s*answer\s*>?$|<answer>", re.IGNORECASE)


def clean_answer(answer: object, question_words: set[str]) -> str | None:
    """The answer text, or None for a placeholder, an empty answer or a copy of the question."""
    text = str(answer if answer is not None else "").strip().strip('"').strip()
    if not text or _PLACEHOLDER.search(text):
        return None
    words = rouge_tokens(text)
    if not words or all(w in question_words for w in words):
        return None
    return text[:80]


def parse_answers(text: str, n: int, question: str) -> tuple[list[str | None], str]:
    """(answer per passage, problem): ``problem`` is empty when the reply could be read."""
    asked = set(rouge_tokens(question))
    answers: list[str | None] = [None] * n
    pairs: list[tuple[object, object]] = []
    parsed = parse_json_lenient(text)
    if parsed and isinstance(parsed.value, dict):
        value = parsed.value.get("answers", parsed.value)
        pairs = list(value.items()) if isinstance(value, dict) else list(enumerate(value, 1)) if isinstance(value, list) else []
    if not pairs:
        pairs = [(m.group(1), m.group(2)) for m in _LINE.finditer(text)]
    read = 0
    for key, answer in pairs:
        digits = re.fullmatch(r"\s*(?:passage\s*|document\s*)?(\d{1,3})\s*", str(key), re.IGNORECASE)
        if not digits or not 1 <= int(digits.group(1)) <= n:
            continue
        read += 1
        answers[int(digits.group(1)) - 1] = clean_answer(answer, asked)
    if not read:
        return answers, "no 'N: answer' line could be read from the reply"
    return answers, ""


async def listwise_answers(
    question: str, evidence: Sequence[ScoredChunk], ctx: RunContext, call: CallSite = CallSite(ANSWERS_PROMPT),
) -> tuple[IsolatedAnswers, str]:
    """(answers, problem) from one call; a failed call or unreadable reply gives no answers and says why."""
    try:
        completion = await ask_over_passages(call, evidence, ctx, question=question)
    except LLMError as err:
        event = call_failed(call.node, "listwise answers", err)
        return (IsolatedAnswers([None] * len(evidence), Usage(calls=1, failed_calls=1), [event], failed=len(evidence)),
                f"LLM call failed ({type(err).__name__})")
    answers, problem = parse_answers(completion.text, len(evidence), question)
    event = TraceEvent(node=call.node, kind="llm_reply", message=f"short answers of {len(evidence)} passages",
                       data={"raw": completion.text, "answers": answers, "readable": not problem,
                             "finish_reason": completion.finish_reason})
    return (IsolatedAnswers(answers, completion.usage.model_copy(update={"calls": 1}), [event],
                            failed=len(evidence) if problem else 0), problem)
