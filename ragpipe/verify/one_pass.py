"""The verifier's single LLM call: each passage's short answer and its verdict, one reply line per passage.

Two jobs share one prompt: naming the suspicious passages (planted, instruction-giving,
contradicting the rest) and each passage's own short answer to the question, which the
``answer_consistency`` aggregation compares across independent sources. One call instead of
two: the model reads every passage once. It needs a model that keeps the reply format; the
small local models tried (135M, 0.5B) copy the template back, so it is not the default.

The reply is untrusted. Lines ``N: <answer> | ok`` or ``N: <answer> | planted: <reason>`` are
read; an answer or a reason that copies the prompt's placeholder counts as none. The verdict
is unreadable (whole reply) when no line carries a verdict, when the reply copies the template
back, or when it names more than half of a pool of three or more (an echo of the numbering, not
a judgement); a passage the reply has no line for has an unreadable verdict of its own. What an
unreadable verdict means (keep or drop) is the verifier's fail policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragpipe.context import RunContext
from ragpipe.errors import LLMError
from ragpipe.schema import ScoredChunk, TraceEvent, Usage
from ragpipe.verify.calls import CallSite, ask_over_passages, call_failed, reply_events
from ragpipe.verify.listwise_answers import clean_answer
from ragpipe.verify.listwise_check import LISTWISE_FLAGS, Suspicion, names_most
from ragpipe.verify.signals import rouge_tokens

ONE_PASS_PROMPT = "verifier.one_pass"
_LINE = re.compile(r"^\s*(?:passage\s*|\[|#)?(\d{1,3})\]?\s*[:.)\-–]\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_FLAG = re.compile(rf"\b({'|'.join(LISTWISE_FLAGS)})\b\s*[:\-–,]?\s*(.*)", re.IGNORECASE)
_OK = re.compile(r"^\W*(ok|okay|honest|fine|clean|none|no|keep|not suspicious)\b\W*$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"<\s*(answer|reason|mark)\s*>|^\W*short reason\W*$", re.IGNORECASE)


@dataclass
class OnePassReply:
    """What one reply said about n passages (0-based indices)."""

    suspicious: dict[int, Suspicion] = field(default_factory=dict)
    answers: list[str | None] = field(default_factory=list)
    unjudged: set[int] = field(default_factory=set)  # passages with no readable verdict of their own
    readable: bool = True
    problem: str = ""
    answers_problem: str = ""
    ignored: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    trace: list[TraceEvent] = field(default_factory=list)


def _split(rest: str) -> tuple[str, str | None]:
    """(answer, verdict) of one line's text after its number; verdict None when the line has none."""
    if "|" in rest:
        answer, verdict = rest.split("|", 1)
        return answer.strip(), verdict.strip()
    flag = re.search(rf"[\s(\-–,;]+\(?({'|'.join(LISTWISE_FLAGS)})\b", rest, re.IGNORECASE)
    if flag:
        return rest[:flag.start()].strip(), rest[flag.start(1):].strip().rstrip(")")
    ok = re.search(r"[\s\-–,;(]+(ok|okay|honest)\W*$", rest, re.IGNORECASE)
    if ok:
        return rest[:ok.start()].strip(), ok.group(1)
    return rest.strip(), None


def parse_one_pass(text: str, n: int, question: str) -> OnePassReply:
    """Read the answers and verdicts of a pool of ``n`` passages (1-based numbers in the reply)."""
    reply = OnePassReply(answers=[None] * n)
    asked = set(rouge_tokens(question))
    seen: set[int] = set()
    verdicts = placeholders = 0
    for match in _LINE.finditer(text):
        number = int(match.group(1))
        if not 1 <= number <= n or number - 1 in seen:
            continue
        i = number - 1
        seen.add(i)
        answer, verdict = _split(match.group(2))
        placeholders += bool(_PLACEHOLDER.search(answer))
        reply.answers[i] = clean_answer(answer, asked)
        if verdict is None:
            reply.unjudged.add(i)
            continue
        flag = _FLAG.match(verdict) or _FLAG.search(verdict)
        if flag:
            reason = flag.group(2).strip().strip('"')
            if _PLACEHOLDER.search(reason):
                reply.ignored.append(f"the verdict for passage {number} copies the prompt's placeholder")
                reply.unjudged.add(i)
                continue
            reply.suspicious[i] = Suspicion(flag.group(1).lower(), reason[:300])
            verdicts += 1
        elif _OK.match(verdict):
            verdicts += 1
        else:
            reply.ignored.append(f"passage {number}: verdict {verdict[:40]!r} is neither ok nor a mark")
            reply.unjudged.add(i)
    reply.unjudged |= set(range(n)) - seen
    if not any(a is not None for a in reply.answers):
        reply.answers_problem = "no 'N: answer' line could be read from the reply"
    if seen and placeholders == len(seen):
        reply.readable, reply.problem = False, "the reply copies the prompt's template back"
        reply.answers_problem = reply.problem
    elif not verdicts:
        reply.readable = False
        reply.problem = ("no 'N: answer | verdict' line could be read from the reply" if not reply.ignored
                         else "every verdict was unusable: " + "; ".join(reply.ignored[:3]))
    elif problem := names_most(len(reply.suspicious), n):
        reply.readable, reply.problem = False, problem
    if not reply.readable:
        reply.suspicious, reply.unjudged = {}, set(range(n))
    return reply


async def one_pass(
    question: str,
    evidence: Sequence[ScoredChunk],
    rules: Sequence[str],
    ctx: RunContext,
    call: CallSite = CallSite(ONE_PASS_PROMPT),
) -> OnePassReply:
    """One LLM call for the answers and verdicts of ``evidence``; never raises for LLM failures."""
    n = len(evidence)
    try:
        completion = await ask_over_passages(call, evidence, ctx, question=question, rules=list(rules))
    except LLMError as err:
        problem = f"LLM call failed ({type(err).__name__})"
        return OnePassReply(answers=[None] * n, unjudged=set(range(n)), readable=False, problem=problem,
                            answers_problem=problem, usage=Usage(calls=1, failed_calls=1),
                            trace=[call_failed(call.node, "one-pass verifier", err)])
    reply = parse_one_pass(completion.text, n, question)
    reply.usage = completion.usage.model_copy(update={"calls": 1})
    reply.trace = reply_events(call.node, f"answers and verdicts of {n} passages", completion,
                               method="as_asked" if reply.readable else "none", readable=reply.readable,
                               answers=reply.answers, unjudged=sorted(reply.unjudged), ignored=reply.ignored)
    return reply
