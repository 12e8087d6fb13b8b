"""Chunks fit the token budget, have exact spans, stable ids, overlap, and their segment's headings."""

from __future__ import annotations

import pytest

from ragpipe.ingest.chunker import Chunker, ChunkPlan
from ragpipe.ingest.loaders.base import LoadedDocument, Segment
from ragpipe.ingest.testing import HashingEmbedder

TEXT = " ".join(f"Sentence number {i} says something about widgets and gadgets." for i in range(40))


def chunker(tokens: int = 40, overlap: int = 10, max_tokens: int = 128) -> Chunker:
    tok = HashingEmbedder(max_tokens=max_tokens)
    return Chunker(tok, ChunkPlan.for_embedder(tokens, overlap, max_tokens))


def tokens(text: str) -> int:
    return len(HashingEmbedder().token_offsets(text))


def test_spans_are_exact_and_budget_respected():
    doc = LoadedDocument(TEXT).ensure_segments()
    chunks = chunker().chunk(doc, "d1", "a.txt").chunks
    assert len(chunks) > 5
    for chunk in chunks:
        assert TEXT[chunk.start_char : chunk.end_char] == chunk.text
        assert tokens(chunk.text) <= 40
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")  # sentence boundaries
    assert chunks[0].start_char == 0 and chunks[-1].end_char == len(TEXT)


def test_overlap_repeats_trailing_sentences():
    chunks = chunker(overlap=12).chunk(LoadedDocument(TEXT).ensure_segments(), "d1", "a.txt").chunks
    for before, after in zip(chunks, chunks[1:]):
        assert after.start_char < before.end_char  # they overlap...
        assert after.start_char > before.start_char  # ...and always move forward
        assert before.text.endswith(TEXT[after.start_char : before.end_char])
    no_overlap = chunker(overlap=0).chunk(LoadedDocument(TEXT).ensure_segments(), "d1", "a.txt").chunks
    assert all(a.start_char > b.end_char - 1 for b, a in zip(no_overlap, no_overlap[1:]))
    assert len(no_overlap) < len(chunks)


def test_budget_never_exceeds_the_embedder_limit():
    plan = ChunkPlan.for_embedder(chunk_tokens=500, overlap_tokens=400, max_tokens=64)
    assert plan.chunk_tokens == 62  # room for the two special tokens
    assert plan.overlap_tokens <= plan.chunk_tokens // 2


def test_over_long_sentence_is_cut_and_noted():
    text = "word " * 300 + "end."
    result = chunker(tokens=50, overlap=0).chunk(LoadedDocument(text).ensure_segments(), "d1", "a.txt")
    assert all(tokens(c.text) <= 50 for c in result.chunks)
    assert "".join(c.text for c in result.chunks).replace(" ", "") == text.replace(" ", "")
    assert result.notes and "cut at token boundaries" in result.notes[0]


def test_ids_are_stable_and_content_addressed():
    doc = LoadedDocument(TEXT).ensure_segments()
    first = chunker().chunk(doc, "d1", "a.txt").chunks
    again = chunker().chunk(LoadedDocument(TEXT).ensure_segments(), "d1", "a.txt").chunks
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    edited = TEXT.replace("Sentence number 39", "Sentence number thirty-nine")
    changed = chunker().chunk(LoadedDocument(edited).ensure_segments(), "d1", "a.txt").chunks
    edit_at = TEXT.index("Sentence number 39")
    before_edit = [c.id for c in first if c.end_char <= edit_at]
    assert len(before_edit) >= 3
    assert [c.id for c in changed][: len(before_edit)] == before_edit  # chunks before the edit keep their ids
    assert changed[-1].id != first[-1].id
    other_doc = chunker().chunk(doc, "d2", "b.txt").chunks
    assert not {c.id for c in other_doc} & {c.id for c in first}


def test_links_positions_and_segment_metadata():
    text = "# A\n\nAlpha text here.\n\n# B\n\nBeta text here. More beta."
    doc = LoadedDocument(
        text,
        title="Doc",
        segments=[Segment(0, 21, ["A"], {"page": 1}), Segment(23, len(text), ["B"], {"page": 2})],
    )
    chunks = chunker().chunk(doc, "d1", "x.md", {"file_type": "md"}).chunks
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert [c.headings for c in chunks] == [["A"], ["B"]]
    assert [c.metadata["page"] for c in chunks] == [1, 2]
    assert all(c.title == "Doc" and c.source == "x.md" and c.metadata["file_type"] == "md" for c in chunks)
    assert chunks[0].prev_id is None and chunks[0].next_id == chunks[1].id
    assert chunks[1].prev_id == chunks[0].id and chunks[1].next_id is None
    assert "Beta" not in chunks[0].text  # never crosses a segment


def test_blank_document_has_no_chunks():
    assert chunker().chunk(LoadedDocument("  \n\n ").ensure_segments(), "d", "s").chunks == []


@pytest.mark.integration
def test_real_tokenizer_chunks_fit_minilm(minilm):
    """Re-tokenized on its own, no chunk exceeds the model's max_seq_length (special tokens included)."""
    text = ("Transformers encode text into vectors. " * 80) + ("Supercalifragilistic" * 60) + ". Done."
    plan = ChunkPlan.for_embedder(chunk_tokens=1000, overlap_tokens=30, max_tokens=minilm.max_tokens)
    chunks = Chunker(minilm, plan).chunk(LoadedDocument(text).ensure_segments(), "d", "s").chunks
    assert len(chunks) >= 3
    for chunk in chunks:
        assert text[chunk.start_char : chunk.end_char] == chunk.text
        assert minilm.count_tokens(chunk.text) <= minilm.max_tokens
