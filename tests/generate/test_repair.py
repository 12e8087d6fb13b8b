"""Citation repair: an uncited answer gets ``[n]`` after each sentence it restates, never inside a word."""

from __future__ import annotations

import pytest

from ragpipe.generate.quotes import pin_citations
from ragpipe.generate.repair import attribute_citations
from ragpipe.schema import Chunk, Citation, ScoredChunk

EVIDENCE = [
    ScoredChunk(chunk=Chunk(id="c1", doc_id="d1", position=0, source="scripts.html",
                            text="If there is a server.js file in the root of your package, then npm will default "
                                 "the start command to node server.js."), score=1.0),
]


@pytest.mark.parametrize("answer, cited", [
    ("The default start command is node server.js.", "The default start command is node server.js [1]."),
    ("The default start command is node server.js", "The default start command is node server.js [1]"),
    ("npm will default the start command to node server.js. It runs first.",
     "npm will default the start command to node server.js [1]. It runs first."),
])
def test_a_dot_inside_a_file_name_does_not_end_the_sentence(answer: str, cited: str) -> None:
    text, attributed = attribute_citations(answer, EVIDENCE)
    assert text == cited
    assert attributed == {0: 1}


def test_a_citation_after_a_file_name_is_pinned_by_the_whole_sentence() -> None:
    evidence = [ScoredChunk(chunk=Chunk(id="c1", doc_id="d1", position=0, source="scripts.html",
                                        text="Scripts run in order. If there is a server.js file in the root of your "
                                             "package, then npm will default the start command to node server.js."),
                            score=1.0)]
    citation = Citation(n=1, chunk_id="c1", source="scripts.html", position=0)
    [pinned] = pin_citations("The default start command of a package is node server.js [1].", [citation], evidence)
    assert pinned.quote is not None and pinned.quote.endswith("node server.js.")
