"""Groupwise scoring (GroupRank): score groups of candidates jointly, then fuse with the retriever.

Candidates are shuffled with a seed and cut into groups of ``group_size``; each group is scored
0-10 in one call, so the model compares documents against each other. ``repeats`` regroupings
are averaged, which smooths out a document's luck in its group. All groups are sent at once;
the context's LLM limits how many are in flight. The final score is
``alpha * mean_group_score / 10 + (1 - alpha) * minmax(retriever score)`` (ALGORITHMS.md §3).

Repairs: a document the model left out of a parsed group gets the mean score of the documents
it did score in that group (neutral: neither promoted nor demoted against its group, so the
retriever decides); a group whose answer cannot be parsed is scored by its retriever order
instead (min-max of the retriever scores inside the group, times 10), for that group only.
"""

from __future__ import annotations

import asyncio
import json
import random
from statistics import mean

from pydantic import model_validator

from ragpipe.errors import LLMError
from ragpipe.schema import ScoredChunk
from ragpipe.select.base import Selector, SelectorConfig, SelectorRun, minmax, register_selector
from ragpipe.select.budget import fit_prompt
from ragpipe.select.parsing import extract_json_object, neutralise_identifiers, parse_score_map

MAX_SCORE = 10.0
OUTPUT_SLACK_TOKENS = 16


class GroupwiseConfig(SelectorConfig):
    group_size: int = 20
    repeats: int = 1
    seed: int = 0
    alpha: float = 0.6
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


def fuse(group_scores: list[float], retriever_scores: list[float], alpha: float) -> list[float]:
    """``alpha * group/10 + (1 - alpha) * minmax(retriever)``."""
    retriever = minmax(retriever_scores)
    return [alpha * g / MAX_SCORE + (1 - alpha) * r for g, r in zip(group_scores, retriever)]


def score_schema(n: int) -> dict:
    keys = [str(i) for i in range(1, n + 1)]
    return {
        "type": "object",
        "properties": {k: {"type": "integer", "minimum": 0, "maximum": 10} for k in keys},
        "required": keys,
        "additionalProperties": False,
    }


@register_selector("groupwise")
class GroupwiseSelector(Selector):
    """GroupRank-style joint 0-10 scoring of shuffled groups, fused with the retriever score."""

    name = "groupwise"
    Config = GroupwiseConfig

    async def score(self, question: str, candidates: list[ScoredChunk], run: SelectorRun) -> list[float]:
        config: GroupwiseConfig = self.config  # type: ignore[assignment]
        groups = make_groups(len(candidates), config.group_size, config.repeats, config.seed)
        run.note("info", f"{len(groups)} group(s) of up to {config.group_size} ({config.repeats} grouping(s))",
                 seed=config.seed)
        results = await asyncio.gather(
            *(self._score_group(question, [candidates[i] for i in g], run, k) for k, g in enumerate(groups))
        )
        if all(r is None for r in results):
            raise LLMError("every group failed to produce scores")
        collected: list[list[float]] = [[] for _ in candidates]
        for group, result in zip(groups, results):
            scores = result if result is not None else self._retriever_scores([candidates[i] for i in group])
            for index, value in zip(group, scores):
                collected[index].append(value)
        group_scores = [mean(values) for values in collected]
        return fuse(group_scores, [c.score for c in candidates], config.alpha)

    @staticmethod
    def _retriever_scores(group: list[ScoredChunk]) -> list[float]:
        """The fallback for a failed group: its retriever order, scaled to 0-10."""
        if len({c.score for c in group}) <= 1:
            return [MAX_SCORE * (len(group) - i) / len(group) for i in range(len(group))]
        return [MAX_SCORE * v for v in minmax([c.score for c in group])]

    async def _score_group(self, question: str, group: list[ScoredChunk], run: SelectorRun, k: int
                           ) -> list[float] | None:
        config: GroupwiseConfig = self.config  # type: ignore[assignment]
        label = f"group {k + 1}"
        n = len(group)
        ideal = json.dumps({str(i): 10 for i in range(1, n + 1)})
        max_tokens = run.llm.count_tokens(ideal) + OUTPUT_SLACK_TOKENS
        prompt = run.ctx.prompts.get(config.prompt)
        query = neutralise_identifiers(question)

        def render(passages: list[str]):
            return prompt.render(question=query, passages=[{"ident": i, "text": t} for i, t in enumerate(passages, 1)])

        fitted = fit_prompt(render, [neutralise_identifiers(c.chunk.text) for c in group], run.llm,
                            max_words=config.max_passage_words, output_tokens=max_tokens)
        if fitted.truncated:
            run.note("truncation", f"{label}: {fitted.truncated} passage(s) cut to {fitted.words} words "
                     f"(prompt {fitted.prompt_tokens} tokens, budget {fitted.budget})", words=fitted.words)
        options = {"json_schema": score_schema(n)} if run.llm.capabilities.json_schema else {}
        try:
            completion = await run.chat(fitted.messages, purpose=label, max_tokens=max_tokens, temperature=0.0,
                                        seed=config.seed, **options)
            obj, repairs = extract_json_object(completion.text)
            scores, more = parse_score_map(obj, n, high=MAX_SCORE)
        except Exception as err:
            run.note("fallback", f"{label}: {type(err).__name__}: {err}; scored by retriever order",
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
