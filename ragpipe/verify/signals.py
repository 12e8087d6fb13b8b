"""Cheap, deterministic poisoning signals computed over a set of evidence chunks (no LLM).

Each signal answers one question about every chunk and returns a ``SignalResult`` with a flag and
a score per chunk, so a report can say what each signal contributed on its own:

- ``instruction``: the text addresses instructions to the reader/model ("ignore previous
  instructions", "when asked X, output Y"): prompt injection and RobustRAG's PIA attack.
- ``query_echo``: the text repeats the question verbatim, as PoisonedRAG's retrieval prefix does.
- ``near_duplicate``: the text belongs to a tight cluster of mutually similar chunks (TrustRAG's
  observation that planted passages are near-duplicates of each other): ROUGE-L between texts,
  plus embedding cosine when an embedder is available.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np

INSTRUCTION = "instruction"
QUERY_ECHO = "query_echo"
NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class SignalResult:
    """One signal over n chunks: a flag, a score and a short explanation per chunk."""

    name: str
    flagged: list[bool]
    scores: list[float]
    details: list[str] = field(default_factory=list)

    def detail(self, i: int) -> str:
        return self.details[i] if i < len(self.details) else ""


_INSTRUCTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("override", r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|other|your)\b"
                     r"[^.\n]{0,30}\b(instructions?|prompts?|rules|context|directions|guidelines)\b"),
        ("answer_dictation", r"\bwhen (you are |you're )?asked\b[^.\n]{0,200}\b(output|answer|say|respond|reply|write)\b"),
        ("output_command", r"\b(please |you must |you should |always )?(output|respond with|reply with|answer with|"
                           r"say only|print)\b\s*[:\"'“]"),
        ("answer_is_command", r"\b(your|the) (final )?answer (must|should|has to) be\b"),
        ("role_claim", r"\b(you are now|act as|pretend to be|from now on,? you)\b"),
        ("model_address", r"\b(dear|attention|note to|hey)\s+(ai|assistant|chatbot|language model|llm|model)\b"
                          r"|\b(as an ai|ai assistant|language model)\b[^.\n]{0,40}\b(must|should|will)\b"),
        ("system_marker", r"(^|\n)\s*(system|assistant|user)\s*:|<\|?(system|im_start|im_end)\|?>|\[/?INST\]"),
        ("secrecy", r"\bdo not (mention|reveal|cite|tell|disclose)\b[^.\n]{0,60}\b(source|instruction|this|user)\b"),
    )
)


def instruction_signal(texts: Sequence[str]) -> SignalResult:
    """Flag texts that give instructions to the model instead of stating facts."""
    flagged, scores, details = [], [], []
    for text in texts:
        hits = [name for name, pattern in _INSTRUCTION_PATTERNS if pattern.search(text)]
        flagged.append(bool(hits))
        scores.append(float(len(hits)))
        details.append(", ".join(hits))
    return SignalResult(INSTRUCTION, flagged, scores, details)


_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """ROUGE's default tokens: lower-cased ASCII letter/digit runs, no stemming."""
    return _ROUGE_TOKEN.findall(text.lower())


def query_echo_signal(question: str, texts: Sequence[str], *, min_share: float = 0.9, min_words: int = 4) -> SignalResult:
    """Flag texts containing (almost) the whole question as one contiguous run of words."""
    q = rouge_tokens(question)
    flagged, scores, details = [], [], []
    for text in texts:
        if len(q) < min_words:
            flagged.append(False), scores.append(0.0), details.append("question too short to test")
            continue
        t = rouge_tokens(text)
        match = SequenceMatcher(None, q, t, autojunk=False).find_longest_match(0, len(q), 0, len(t))
        share = match.size / len(q)
        flagged.append(share >= min_share)
        scores.append(round(share, 3))
        details.append(f"{match.size}/{len(q)} question words in a row")
    return SignalResult(QUERY_ECHO, flagged, scores, details)


def rouge_l_matrix(texts: Sequence[str]) -> np.ndarray:
    """Pairwise ROUGE-L F-measure (symmetric, zero diagonal).

    F = 2·LCS / (|a| + |b|) over word tokens; the longest common subsequences come from
    rapidfuzz's C++ LCS, all pairs in one call (pure-Python LCS cost ~10 ms per pair of chunks).
    """
    from rapidfuzz.distance import LCSseq
    from rapidfuzz.process import cdist

    tokens = [rouge_tokens(t) for t in texts]
    n = len(tokens)
    if n < 2:
        return np.zeros((n, n), dtype=np.float32)
    lcs = cdist(tokens, tokens, scorer=LCSseq.similarity, dtype=np.int32).astype(np.float32)
    lengths = np.asarray([len(t) for t in tokens], dtype=np.float32)
    total = lengths[:, None] + lengths[None, :]
    matrix = np.divide(2.0 * lcs, total, out=np.zeros_like(lcs), where=total > 0)
    np.fill_diagonal(matrix, 0.0)
    return matrix


def _components(adjacency: np.ndarray) -> list[list[int]]:
    n = adjacency.shape[0]
    seen, groups = set(), []
    for start in range(n):
        if start in seen:
            continue
        stack, group = [start], []
        seen.add(start)
        while stack:
            node = stack.pop()
            group.append(node)
            for other in np.flatnonzero(adjacency[node]):
                if int(other) not in seen:
                    seen.add(int(other))
                    stack.append(int(other))
        groups.append(sorted(group))
    return groups


def near_duplicate_signal(
    texts: Sequence[str],
    embeddings: np.ndarray | None = None,
    *,
    rouge_threshold: float = 0.5,
    cosine_threshold: float = 0.88,
    min_cluster: int = 3,
) -> SignalResult:
    """Flag members of clusters (size >= ``min_cluster``) of mutually near-identical texts.

    Two chunks are linked when their ROUGE-L F exceeds ``rouge_threshold`` or their embedding
    cosine exceeds ``cosine_threshold``; clusters are connected components of that graph. A
    lone pair is not flagged: two sources quoting the same wire story is normal, five copies of
    one claim is what planting looks like. Score = the chunk's highest similarity to another.
    """
    n = len(texts)
    if n < 2:
        return SignalResult(NEAR_DUPLICATE, [False] * n, [0.0] * n, ["fewer than two chunks"] * n)
    rouge = rouge_l_matrix(texts)
    linked = rouge > rouge_threshold
    similarity = rouge.copy()
    if embeddings is not None and len(embeddings) == n:
        vectors = np.asarray(embeddings, dtype=np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        cosine = vectors @ vectors.T
        np.fill_diagonal(cosine, 0.0)
        linked |= cosine > cosine_threshold
        similarity = np.maximum(similarity, cosine)
    np.fill_diagonal(linked, False)
    flagged, details = [False] * n, [""] * n
    for group in _components(linked):
        for i in group:
            details[i] = f"cluster of {len(group)}"
            flagged[i] = len(group) >= min_cluster
    scores = [round(float(similarity[i].max()), 3) for i in range(n)]
    return SignalResult(NEAR_DUPLICATE, flagged, scores, details)
