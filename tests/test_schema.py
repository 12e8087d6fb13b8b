"""How a hit leaves ragpipe: one flat form, the same spelling in every outlet."""

from __future__ import annotations

from ragpipe.cli.ask import _evidence_row
from ragpipe.cli.search import hit_to_json
from ragpipe.integrations.convert import chunk_metadata, scored_chunk
from ragpipe.schema import Chunk, ScoredChunk

HIT = ScoredChunk(
    chunk=Chunk(id="c1", doc_id="d1", position=3, text="Bonds pay interest.", source="notes.md",
                start_char=10, end_char=29, metadata={"lang": "en"}),
    score=0.5, rank=2, stage_scores={"dense": 0.4, "bm25": 7.0}, stage_ranks={"dense": 1, "bm25": 3},
)


def test_flat_gives_the_named_fields_in_order_and_copies_the_mappings() -> None:
    row = HIT.flat("text", "chunk_id", "id", "stage_scores")
    assert list(row) == ["text", "chunk_id", "id", "stage_scores"]
    assert row["chunk_id"] == row["id"] == "c1"
    row["stage_scores"]["dense"] = 0.0
    assert HIT.stage_scores["dense"] == 0.4


def test_the_outlets_keep_their_keys() -> None:
    assert list(hit_to_json(HIT)) == ["rank", "score", "chunk_id", "id", "doc_id", "source", "position",
                                      "stage_scores", "stage_ranks", "metadata", "text"]
    assert _evidence_row(HIT, {}) == {"chunk_id": "c1", "id": "c1", "source": "notes.md", "position": 3,
                                      "text": "Bonds pay interest.", "score": 0.5, "verdict": None}
    meta = chunk_metadata(HIT, selector="listwise")
    assert list(meta) == ["lang", "chunk_id", "doc_id", "source", "position", "start_char", "end_char",
                          "score", "stage_scores", "selector"]


def test_metadata_going_out_comes_back_as_the_same_chunk() -> None:
    back = scored_chunk(HIT.chunk.text, chunk_metadata(HIT), 0)
    assert back.chunk.model_dump() == HIT.chunk.model_dump()
    assert (back.score, back.stage_scores) == (HIT.score, HIT.stage_scores)
