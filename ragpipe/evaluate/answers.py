"""Answer metrics against gold answers: exact match and token F1 with SQuAD-style normalisation.

Both take the best score over all accepted gold answers (aliases), as the SQuAD and HotpotQA
scripts do. ``contains_answer`` is the substring test PoisonedRAG uses for attack success.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from ragpipe.evaluate.metric import MetricResult

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_PUNCT = set(string.punctuation)
_CITATION = re.compile(r"\[\d+\]")


def strip_citations(text: str) -> str:
    """Remove ``[n]`` citation markers: they are not part of the answer being scored."""
    return _CITATION.sub("", text)


def normalize_answer(text: str) -> str:
    """Drop citation markers, then the SQuAD rules: lower-case, drop punctuation and articles, collapse spaces."""
    text = strip_citations(text)
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, golds: Sequence[str]) -> MetricResult:
    """1 if the normalised prediction equals a normalised gold answer."""
    if not golds:
        return MetricResult.undefined("no gold answer")
    pred = normalize_answer(prediction)
    return MetricResult.ok(float(any(pred == normalize_answer(g) for g in golds)))


def token_f1(prediction: str, golds: Sequence[str]) -> MetricResult:
    """Best bag-of-tokens F1 between the prediction and any gold answer."""
    if not golds:
        return MetricResult.undefined("no gold answer")
    return MetricResult.ok(max(_token_f1(prediction, g) for g in golds))


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """True if any normalised answer occurs in the normalised text (word-bounded)."""
    haystack = f" {normalize_answer(text)} "
    return any(norm and f" {norm} " in haystack for norm in (normalize_answer(a) for a in answers))
