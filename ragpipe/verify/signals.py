"""Cheap, deterministic poisoning signals computed over a set of evidence chunks (no LLM).

Each signal answers one question about every chunk and returns a ``SignalResult`` with a flag and
a score per chunk, so a report can say what each signal contributed on its own:

- ``instruction``: the text addresses instructions to the reader/model ("ignore previous
  instructions", "when asked X, output Y"): prompt injection and RobustRAG's PIA attack.
- ``query_echo``: the text repeats the question verbatim, as PoisonedRAG's retrieval prefix does.
- ``near_duplicate``: the text belongs to a tight cluster of mutually similar chunks (TrustRAG's
  observation that planted passages are near-duplicates of each other): ROUGE-L between texts,
  plus embedding cosine when an embedder is available.
- ``uncorroborated``: a group of reworded passages that all state a term no other candidate
  mentions (PoisonedRAG's several paraphrases asserting one false answer): the claim has no
  independent support.
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
UNCORROBORATED = "uncorroborated"


@dataclass(frozen=True)
class SignalResult:
    """One signal over n chunks: a flag, a score and a short explanation per chunk."""

    name: str
    flagged: list[bool]
    scores: list[float]
    details: list[str] = field(default_factory=list)
    strengths: list[float] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # near_duplicate: the cluster number of each chunk

    def detail(self, i: int) -> str:
        return self.details[i] if i < len(self.details) else ""

    def strength(self, i: int) -> float:
        """How much of the signal's weight chunk ``i`` gets: 1 when flagged unless graded, else 0."""
        if not self.flagged[i]:
            return 0.0
        return self.strengths[i] if i < len(self.strengths) else 1.0


# Who a planted instruction talks to: an AI model, never a human reader. Bare "assistant" is
# left out (product names such as "Google Assistant" and lab assistants are ordinary subjects);
# the plural "assistants" counts only after an address such as "Note for".
_MODEL = (r"(?:(?:ai|llm|gpt|chat\s?gpt|virtual|digital)[\s-]+(?:assistants?|models?|systems?|agents?|tools?|chatbots?)"
          r"|chat\s?bots?|(?:large\s+)?language\s+models?|llms?|ai)")
_ADDRESSEE = rf"(?:{_MODEL}|assistants?|models?)"
_TELL = r"(?:answer|respond|reply|say|state|tell|report|output|ignore|cite|mention|claim|use|treat|write|repeat)"

# (name, strength, pattern). Strength 1.0 patterns are unmistakable instructions aimed at a
# model and drop a chunk on their own; 0.5 patterns also occur in honest technical writing
# (chat-template docs, transcripts, tutorials) and drop a chunk only together with another hit
# or another signal.
_INSTRUCTION_PATTERNS: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (name, strength, re.compile(pattern, re.IGNORECASE))
    for name, strength, pattern in (
        ("override", 1.0, r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|other|your)\b"
                          r"[^.\n]{0,30}\b(instructions?|prompts?|rules|directions|guidelines)\b"),
        ("answer_dictation", 1.0, r"\bwhen (?:you are |you're )?asked\b[^.\n]{0,30}\b(?:the (?:following )?question|"
                                  r"to (?:provide|give) (?:the|an) answer|what|which|who|when|where|how|about)\b"
                                  r"[^\n]{0,200}?\b(?:please |you must |always )?(?:output|answer|say|respond|reply)\b\s*(?:with|that|:|\"|“)"),
        ("model_address", 1.0, rf"\b(?:dear|attention|note|notice|message|instructions?|reminder|hey|hello)\s*(?:to|for)?[,:]?"
                               rf"\s+(?:all\s+|any\s+|the\s+)?{_ADDRESSEE}\b"
                               rf"|\bif you(?:'re| are) an? {_MODEL}\b"
                               rf"|\b(?:{_MODEL}|assistants)\b[^.\n]{{0,30}}\b(?:answering|responding to|summari[sz]ing|reading)\b"
                               rf"[^.\n]{{0,80}}\b(?:must|should|shall|are (?:required|instructed|asked) to|need to|always)\b"),
        ("model_directive", 0.5, rf"\b(?:{_MODEL})\b[^.\n]{{0,40}}\b(?:must|should|shall|are (?:required|instructed) to)\s+"
                                 rf"(?:always\s+|never\s+|only\s+)?{_TELL}\b"),
        ("answer_is_command", 1.0, r"\byour (?:final )?answer (?:must|should|has to) be\b"),
        ("output_command", 0.5, r"\b(?:please|you must|you should|always|only)\s+(?:output|respond with|reply with|answer with|"
                                r"say)\s*[:\"“]"),
        ("role_claim", 1.0, rf"\bpretend (?:to be|you are)\b|\bfrom now on,? you (?:are|will|must)\b"
                            rf"|\b(?:you are now|act as) (?:an? |the |my )?(?:[a-z-]+\s+){{0,2}}(?:{_MODEL}|assistant|unfiltered|jailbroken|dan)\b"),
        ("template_marker", 0.5, r"<\|?(?:system|im_start|im_end|start_header_id|eot_id)\|?>|\[/?INST\]|<<SYS>>"),
        ("role_marker", 0.5, r"(?:^|\n)\s*(?:system|assistant)\s*:"),
        ("secrecy", 0.5, r"\bdo not (?:mention|reveal|cite|tell|disclose)\b[^.\n]{0,60}\b(?:source|instruction|this)\b"),
    )
)


def instruction_signal(texts: Sequence[str]) -> SignalResult:
    """Flag texts that give instructions to the model instead of stating facts.

    A chunk's strength is the sum of its distinct patterns' strengths, capped at 1: one weak
    pattern (0.5) is recorded but needs a second opinion before the chunk is dropped.
    """
    flagged, scores, details, strengths = [], [], [], []
    for text in texts:
        hits = [(name, strength) for name, strength, pattern in _INSTRUCTION_PATTERNS if pattern.search(text)]
        flagged.append(bool(hits))
        scores.append(float(len(hits)))
        details.append(", ".join(name for name, _ in hits))
        strengths.append(min(1.0, sum(strength for _, strength in hits)))
    return SignalResult(INSTRUCTION, flagged, scores, details, strengths)


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


def components(adjacency: np.ndarray) -> list[list[int]]:
    """Connected components (sorted index lists) of a boolean adjacency matrix."""
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


def similarity_links(
    texts: Sequence[str], embeddings: np.ndarray | None, rouge_threshold: float, cosine_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(linked, similarity): pairs above either threshold, and max(ROUGE-L F, cosine) per pair."""
    n = len(texts)
    rouge = rouge_l_matrix(texts)
    linked = rouge > rouge_threshold
    similarity = rouge.copy()
    if embeddings is not None and len(embeddings) == n and n > 1:
        vectors = np.asarray(embeddings, dtype=np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        cosine = vectors @ vectors.T
        np.fill_diagonal(cosine, 0.0)
        linked |= cosine > cosine_threshold
        similarity = np.maximum(similarity, cosine)
    np.fill_diagonal(linked, False)
    return linked, similarity


def near_duplicate_signal(
    texts: Sequence[str],
    embeddings: np.ndarray | None = None,
    *,
    rouge_threshold: float = 0.5,
    cosine_threshold: float = 0.88,
    min_cluster: int = 3,
    paraphrase_rouge: float = 0.5,
) -> SignalResult:
    """Flag members of clusters (size >= ``min_cluster``) of mutually near-identical texts.

    Two chunks are linked when their ROUGE-L F exceeds ``rouge_threshold`` or their embedding
    cosine exceeds ``cosine_threshold``; clusters are connected components of that graph. A
    lone pair is not flagged: two sources quoting the same wire story is normal, five copies of
    one claim is what planting looks like. Score = the chunk's highest similarity to another.

    Strength tells copies from paraphrases. Honest repetition is copying (outlets syndicate one
    story, docs repeat a paragraph), so a cluster of copies is a weak hint (0.5). A cluster that
    says the same thing in different words (linked by meaning, mean pairwise ROUGE-L below
    ``paraphrase_rouge``) is what an attacker writing many passages to survive deduplication
    produces: strength 1.0. Without embeddings only copies can be found.
    """
    n = len(texts)
    if n < 2:
        return SignalResult(NEAR_DUPLICATE, [False] * n, [0.0] * n, ["fewer than two chunks"] * n)
    linked, similarity = similarity_links(texts, embeddings, rouge_threshold, cosine_threshold)
    rouge = rouge_l_matrix(texts)
    flagged, details, strengths, groups = [False] * n, [""] * n, [0.0] * n, [0] * n
    for number, group in enumerate(components(linked)):
        overlap = float(np.mean([rouge[a, b] for a in group for b in group if a < b])) if len(group) > 1 else 1.0
        reworded = embeddings is not None and overlap < paraphrase_rouge
        for i in group:
            groups[i] = number
            flagged[i] = len(group) >= min_cluster
            kind = "paraphrases" if reworded else "copies"
            details[i] = f"cluster of {len(group)}" + (f" {kind} (mean ROUGE-L {overlap:.2f})" if flagged[i] else "")
            strengths[i] = (1.0 if reworded else 0.5) if flagged[i] else 0.0
    scores = [round(float(similarity[i].max()), 3) for i in range(n)]
    return SignalResult(NEAR_DUPLICATE, flagged, scores, details, strengths, groups)


# Function words that say nothing about what a passage claims.
_FILLER = frozenset(
    "a an the of in on at to for by with and or but not no is was are were be been being it its this that these "
    "those as from which who whom whose what when where why how has had have he she his her him they them their "
    "there here than then also into over about after before more most new one".split())


def claim_terms(text: str, asked: set[str]) -> set[str]:
    """What a passage says beyond the question: its words, less the question's and filler."""
    return {w for w in rouge_tokens(text) if len(w) > 2 and w not in _FILLER and w not in asked}


_HINT = 0.5  # strength of a group that needs a second signal to drop


def uncorroborated_signal(
    question: str,
    texts: Sequence[str],
    embeddings: np.ndarray | None,
    *,
    cosine_threshold: float = 0.8,
    rouge_threshold: float = 0.5,
    min_cluster: int = 3,
    paraphrase_rouge: float = 0.5,
    sources: Sequence[str] | None = None,
    alone_sources: int = 4,
) -> SignalResult:
    """Flag reworded groups whose shared claim no passage outside the group backs.

    Groups are clusters (size >= ``min_cluster``) linked by meaning (``cosine_threshold``, looser
    than ``near_duplicate``'s, since planted paraphrases vary their wording and framing) whose
    mean ROUGE-L is below ``paraphrase_rouge``: the same thing said in different words, which
    copying does not produce. Such a group is flagged when a term beyond the question occurs in
    every member and in none of the other candidates. Honest rewordings of a story repeat what
    the independent sources also say; a planted answer is only in the planted passages. A group
    that is the whole pool has nothing to be checked against and is never flagged, nor is any
    chunk without embeddings (rewording cannot be told from copying without them).

    Strength is 1 when the group spans at least ``alone_sources`` documents (``sources``: one
    document id per text; None: each text its own), else 0.5. Planted passages arrive as separate
    documents; a manual that rewords one topic over its own sections is one document repeating
    itself, which is weaker evidence of planting.
    """
    n = len(texts)
    flagged, scores, details, groups = [False] * n, [0.0] * n, [""] * n, list(range(n))
    strengths = [_HINT] * n
    origin = list(sources) if sources is not None else [str(i) for i in range(n)]
    if embeddings is None or n < min_cluster + 1:
        why = "no embeddings" if embeddings is None else "too few chunks for a group and an outside"
        return SignalResult(UNCORROBORATED, flagged, scores, [why] * n)
    linked, _ = similarity_links(texts, embeddings, rouge_threshold, cosine_threshold)
    rouge = rouge_l_matrix(texts)
    asked = set(rouge_tokens(question))
    terms = [claim_terms(t, asked) for t in texts]
    for number, group in enumerate(components(linked)):
        for i in group:
            groups[i] = number
        if len(group) < min_cluster or len(group) == n:
            continue
        overlap = float(np.mean([rouge[a, b] for a in group for b in group if a < b]))
        if overlap >= paraphrase_rouge:
            continue
        members = set(group)
        outside = set().union(*(terms[j] for j in range(n) if j not in members))
        shared = set.intersection(*(terms[i] for i in group)) - outside
        documents = len({origin[i] for i in group})
        strength = 1.0 if documents >= alone_sources else _HINT
        for i in group:
            scores[i] = float(len(shared))
            strengths[i] = strength
            if shared:
                flagged[i] = True
                details[i] = (f"{len(group)} reworded passages from {documents} document(s) all say "
                              f"{', '.join(sorted(shared)[:3])!r}, which none of the other {n - len(group)} passage(s) "
                              "mentions")
            else:
                details[i] = f"reworded group of {len(group)}; its claims also appear outside it"
    return SignalResult(UNCORROBORATED, flagged, scores, details, strengths, groups)
