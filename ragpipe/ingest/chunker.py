"""Sentence-aware, token-budgeted chunking with exact character spans.

Why not llama-index's ``SentenceSplitter``: it re-tokenizes every candidate split in Python and
returns strings without offsets. Measured on TREC passages it produced ~75 chunks/s on this
2-core machine, slower than the embedder consumes them (~30/s), and its spans have to be
searched back in the text. Here each segment is tokenized once by the embedding model's own
(Rust) tokenizer with offsets, sentences are packed greedily up to the budget, and a chunk's
text is always ``document.text[start_char:end_char]``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

from ragpipe.ingest.embed import OffsetTokenizer
from ragpipe.ingest.loaders.base import LoadedDocument, Segment
from ragpipe.schema import Chunk

# Sentence ends: terminal punctuation (plus closing quotes/brackets) before whitespace, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+|\n+")
SPECIAL_TOKENS = 2  # [CLS] ... [SEP] added by the embedder around every chunk


@dataclass
class ChunkPlan:
    """Token budget for chunks, derived from the embedder's limit and the settings."""

    chunk_tokens: int
    overlap_tokens: int

    @classmethod
    def for_embedder(cls, chunk_tokens: int, overlap_tokens: int, max_tokens: int) -> ChunkPlan:
        budget = max(8, min(chunk_tokens, max_tokens - SPECIAL_TOKENS))
        return cls(budget, max(0, min(overlap_tokens, budget // 2)))


@dataclass
class _Span:
    start: int
    end: int
    tokens: int


@dataclass
class Chunked:
    chunks: list[Chunk]
    notes: list[str] = field(default_factory=list)


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, cursor = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.start() > cursor:
            spans.append((cursor, match.start()))
        cursor = match.end()
    if cursor < end and text[cursor:end].strip():
        spans.append((cursor, end))
    return [(s, e) for s, e in spans if text[s:e].strip()]


class Chunker:
    """Splits loaded documents into chunks that fit the embedder, never crossing a segment."""

    def __init__(self, tokenizer: OffsetTokenizer, plan: ChunkPlan) -> None:
        self.tokenizer = tokenizer
        self.plan = plan

    def _token_spans(self, text: str, segment: Segment) -> tuple[list[int], list[int]]:
        offsets = self.tokenizer.token_offsets(text[segment.start : segment.end])
        starts = [segment.start + s for s, _ in offsets]
        ends = [segment.start + e for _, e in offsets]
        return starts, ends

    def _pieces(self, text: str, segment: Segment, notes: list[str]) -> list[_Span]:
        """Sentences with token counts; a sentence over budget is cut at token boundaries."""
        starts, ends = self._token_spans(text, segment)
        budget = self.plan.chunk_tokens
        pieces: list[_Span] = []
        for s, e in _sentences(text, segment.start, segment.end):
            first, last = bisect.bisect_left(starts, s), bisect.bisect_left(starts, e)
            count = last - first
            if count <= budget:
                pieces.append(_Span(s, e, count))
                continue
            notes.append(f"sentence of {count} tokens at char {s} cut at token boundaries")
            for window in range(first, last, budget):
                stop = min(window + budget, last)
                pieces.append(_Span(starts[window], ends[stop - 1], stop - window))
        return pieces

    def _pack(self, pieces: list[_Span]) -> list[tuple[int, int]]:
        """Greedy packing up to the budget; the next chunk repeats trailing sentences as overlap."""
        budget, overlap = self.plan.chunk_tokens, self.plan.overlap_tokens
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(pieces):
            used, j = 0, i
            while j < len(pieces) and (used + pieces[j].tokens <= budget or j == i):
                used += pieces[j].tokens
                j += 1
            spans.append((pieces[i].start, pieces[j - 1].end))
            if j >= len(pieces):
                break
            back, carried = j, 0
            while back - 1 > i and carried + pieces[back - 1].tokens <= overlap:
                back -= 1
                carried += pieces[back].tokens
            i = back
        return spans

    def chunk(
        self, document: LoadedDocument, doc_id: str, source: str, metadata: dict[str, Any] | None = None
    ) -> Chunked:
        """Chunks with stable ids, linked prev/next, headings/page/record from their segment."""
        notes: list[str] = []
        text = document.text
        planned: list[tuple[int, int, Segment]] = []
        for segment in document.ensure_segments().segments:
            planned.extend((s, e, segment) for s, e in self._pack(self._pieces(text, segment, notes)))
        chunks: list[Chunk] = []
        for position, (start, end, segment) in enumerate(planned):
            body = text[start:end]
            chunks.append(
                Chunk(
                    id=Chunk.make_id(doc_id, position, body),
                    doc_id=doc_id,
                    position=position,
                    text=body,
                    source=source,
                    start_char=start,
                    end_char=end,
                    title=document.title,
                    headings=list(segment.headings),
                    metadata={**(metadata or {}), **segment.metadata},
                )
            )
        for before, after in zip(chunks, chunks[1:]):
            before.next_id, after.prev_id = after.id, before.id
        return Chunked(chunks, notes)
