"""Groupwise scoring (GroupRank): score groups of candidates jointly, then fuse with the retriever.

Candidates are shuffled with a seed and cut into groups of ``group_size``; each group is scored
0-10 in one call, so the model compares documents against each other. ``repeats`` regroupings
(2 by default) are averaged, which smooths out a document's luck in its group, and how well two
groupings agree on the order of the documents they both scored is the self-agreement the harm
bound checks. As in the paper the model first writes a short ``<reason>`` block and then the JSON
scores inside ``<answer>``; the output budget is the JSON plus ``reasoning_tokens``. All groups
are sent at once; the context's LLM limits how many are in flight. The final score is
``alpha * mean_group_score / 10 + (1 - alpha) * input prior`` (min-max of the retriever score,
or of the input rank when the candidates carry no scores).

Repairs: a document the model left out of a parsed group gets the mean score of the documents
it did score in that group; a document whose groups all failed gets the mean of every score the
model gave (neutral: neither above nor below the scored documents, so the input prior decides).
Equal final scores keep the input order.
"""

from __future__ import annotations

import asyncio
import json
import random
from statistics import mean

from pydantic import model_validator

from ragpipe.errors import LLMError
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import LLMSelectorConfig, Selector, SelectorRun, register_selector, retrieval_prior
from ragpipe.select.budget import fit_prompt
from ragpipe.select.parsing import extract_json_object, neutralise_identifiers, parse_score_map

MAX_SCORE = 10.0
OUTPUT_SLACK_TOKENS = 16


class GroupwiseConfig(LLMSelectorConfig):
    group_size: int = 20
    repeats: int = 2
    seed: int = 0
    alpha: float = 0.6
    reasoning: bool = True  # a <reason> block before the scores, as in the paper
    reasoning_tokens: int = 384
    max_passage_words: int = 200
    prompt: str = "groupwise.default"

    @model_validator(mode="after")
    def _check(self) -> GroupwiseConfig:
        if self.group_size < 1 or self.repeats < 1:
            raise ValueError("group_size and repeats must be at least 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha must be between 0 and 1")
        return self


def make_groups(n: int, group_size: int, repeats: int, seed: int) -> list[list[int]]:
    """``repeats`` seeded shuffles of ``range(n)``, each cut into consecutive groups."""
    rng = random.Random(seed)
    groups = []
    for _ in range(repeats):
        order = list(range(n))
        rng.shuffle(order)
        groups.extend(order[i : i + group_size] for i in range(0, n, group_size))
    return groups


def fuse(group_scores: list[float], prior: list[float], alpha: float) -> list[float]:
    """``alpha * group/10 + (1 - alpha) * prior`` (prior: the input order as a 0-1 score)."""
    return [alpha * g / MAX_SCORE + (1 - alpha) * r for g, r in zip(group_scores, prior)]


def repeat_agreement(per_repeat: list[dict[int, float]]) -> tuple[int, int]:
    """(agreeing, compared) document pairs whose order two groupings both decided."""
    agreed = compared = 0
    for a in range(len(per_repeat)):
        for b in range(a + 1, len(per_repeat)):
            shared = sorted(set(per_repeat[a]) & set(per_repeat[b]))
            for x in range(len(shared)):
                for y in range(x + 1, len(shared)):
                    i, j = shared[x], shared[y]
                    first = per_repeat[a][i] - per_repeat[a][j]
                    second = per_repeat[b][i] - per_repeat[b][j]
                    if first and second:
                        compared += 1
                        agreed += int((first > 0) == (second > 0))
    return agreed, compared


def score_schema(n: int) -> dict:
    keys = [str(i) for i in range(1, n + 1)]
    return {
        "type": "object",
        "properties": {k: {"type": "integer", "minimum": 0, "maximum": 10} for k in keys},
        "required": keys,
        "additionalProperties": False,
    }


@register_selector("groupwise")
class GroupwiseSelector(Selector[GroupwiseConfig]):
    """GroupRank-style joint 0-10 scoring of shuffled groups, fused with the retriever score."""

    Config = GroupwiseConfig

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        config = self.config
        groups = make_groups(len(candidates), config.group_size, config.repeats, config.seed)
        run.note("info", f"{len(groups)} group(s) of up to {config.group_size} ({config.repeats} grouping(s))",
                 seed=config.seed)
        results = await asyncio.gather(
            *(self._score_group(question, [candidates[i] for i in g], run, k) for k, g in enumerate(groups))
        )
        for result in results:
            run.reliability.answer(result is not None)
        if all(r is None for r in results):
            raise LLMError("every group failed to produce scores")
        collected: list[list[float]] = [[] for _ in candidates]
        groups_per_repeat = len(groups) // config.repeats
        per_repeat: list[dict[int, float]] = [{} for _ in range(config.repeats)]
        for k, (group, result) in enumerate(zip(groups, results)):
            for index, value in zip(group, result or []):
                collected[index].append(value)
                per_repeat[k // groups_per_repeat][index] = value
        agreed, compared = repeat_agreement(per_repeat)
        for done in range(compared):
            run.reliability.check(done < agreed)
        given = [v for values in collected for v in values]
        neutral = mean(given)
        unscored = [candidates[i].id for i, values in enumerate(collected) if not values]
        if unscored:
            run.note("repair", f"{len(unscored)} candidate(s) in failed groups only: given the mean score "
                     f"{neutral:.2f}, ordered by the input", ids=unscored[:20])
        group_scores = [mean(values) if values else neutral for values in collected]
        return fuse(group_scores, retrieval_prior(candidates), config.alpha)

    async def _score_group(self, question: str, group: list[ScoredChunk], run: SelectorRun, k: int
                           ) -> list[float] | None:
        config = self.config
        label = f"group {k + 1}"
        n = len(group)
        ideal = json.dumps({str(i): 10 for i in range(1, n + 1)})
        prompt = run.ctx.prompts.get(config.prompt)
        # the answer is sized to the ideal JSON, never past the prompt file's ceiling; reasoning comes on top
        max_tokens = min(run.llm.count_tokens(ideal) + OUTPUT_SLACK_TOKENS, prompt.max_tokens)
        if config.reasoning:
            max_tokens += config.reasoning_tokens
        query = neutralise_identifiers(question)

        extra = {"reasoning": config.reasoning} if "reasoning" in prompt.spec.variables else {}

        def render(passages: list[str]):
            return prompt.render(question=query, passages=[{"ident": i, "text": t} for i, t in enumerate(passages, 1)],
                                 **extra)

        fitted = fit_prompt(render, [neutralise_identifiers(c.chunk.text) for c in group], run.llm,
                            max_words=config.max_passage_words, output_tokens=max_tokens)
        if fitted.truncated:
            run.note("truncation", f"{label}: {fitted.truncated} passage(s) cut to {fitted.words} words "
                     f"(prompt {fitted.prompt_tokens} tokens, budget {fitted.budget})", words=fitted.words)
        if not fitted.fits:
            run.note("fallback", f"{label}: prompt of {fitted.prompt_tokens} tokens exceeds the budget "
                     f"{fitted.budget} even at {fitted.words} words; group left unscored")
            return None
        # A schema would forbid the reasoning block, so it constrains only answers without one.
        use_schema = run.llm.capabilities.json_schema and not config.reasoning
        options = {"json_schema": score_schema(n)} if use_schema else {}
        try:
            completion = await run.chat(fitted.messages, purpose=label, max_tokens=max_tokens, temperature=0.0,
                                        seed=config.seed, **options)
            obj, repairs = extract_json_object(completion.text)
            scores, more = parse_score_map(obj, n, high=MAX_SCORE)
        except Exception as err:
            run.note("fallback", f"{label}: {type(err).__name__}: {err}; group left unscored (neutral)",
                     error=type(err).__name__)
            return None
        if completion.truncated:
            repairs.insert(0, "output stopped at max_tokens; used the partial JSON")
        missing = [i + 1 for i in range(n) if i not in scores]
        if missing:
            neutral = mean(scores.values())
            repairs.append(f"id(s) {missing} not scored: given the group's mean score {neutral:.2f}")
            scores.update({i - 1: neutral for i in missing})
        for repair in repairs + more:
            run.note("repair", f"{label}: {repair}")
        return [scores[i] for i in range(n)]


__all__ = ["GroupwiseSelector", "GroupwiseConfig", "make_groups", "fuse", "score_schema"]
