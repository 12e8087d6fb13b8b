"""Citation markers: kept when in range, dropped (and traced) when not, renumbered by first use."""

from __future__ import annotations

from ragpipe.generate.citations import resolve_citations
from ragpipe.schema import Chunk, ScoredChunk


def evidence(n: int) -> list[ScoredChunk]:
    return [
        ScoredChunk(chunk=Chunk(id=f"c{i}", doc_id=f"d{i}", position=i, text=f"text {i}", source=f"doc{i}.md",
                                start_char=10 * i, end_char=10 * i + 9))
        for i in range(1, n + 1)
    ]


def test_in_range_markers_resolve_to_their_chunks_with_source_position_and_span() -> None:
    cited = resolve_citations("Alpha [1]. Beta [2].", evidence(3))
    assert cited.text == "Alpha [1]. Beta [2]."
    assert [(c.n, c.chunk_id, c.source, c.position, c.start_char, c.end_char) for c in cited.citations] == [
        (1, "c1", "doc1.md", 1, 10, 19),
        (2, "c2", "doc2.md", 2, 20, 29),
    ]
    assert cited.events == []


def test_out_of_range_markers_are_removed_and_recorded() -> None:
    cited = resolve_citations("Alpha [5]. Beta [2][0].", evidence(4))
    assert cited.text == "Alpha. Beta [1]."
    assert [c.chunk_id for c in cited.citations] == ["c2"]
    repair = next(e for e in cited.events if "outside" in e.message)
    assert repair.kind == "repair" and repair.data["out_of_range"] == [5, 0]


def test_citations_are_renumbered_in_order_of_first_use_and_list_only_cited_chunks() -> None:
    cited = resolve_citations("First [3]. Second [1]. Again [3].", evidence(3))
    assert cited.text == "First [1]. Second [2]. Again [1]."
    assert [(c.n, c.chunk_id) for c in cited.citations] == [(1, "c3"), (2, "c1")]
    assert any(e.data.get("mapping") == {"3": 1, "1": 2} for e in cited.events)


def test_grouped_and_range_markers_are_split_and_deduplicated() -> None:
    cited = resolve_citations("Both [1, 2]. All [1-3]. Semi [2;2].", evidence(3))
    assert cited.text == "Both [1][2]. All [1][2][3]. Semi [2]."
    assert [c.chunk_id for c in cited.citations] == ["c1", "c2", "c3"]


def test_text_without_markers_has_no_citations() -> None:
    cited = resolve_citations("In 2024 the list had 3 items.", evidence(2))
    assert cited.citations == [] and cited.text == "In 2024 the list had 3 items."
