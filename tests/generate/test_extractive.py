"""The extractive answer: the right sentence, quoted, cited to its characters, no LLM."""

from __future__ import annotations

import numpy as np

from ragpipe.generate.extractive import extract_answer, rank_sentences
from ragpipe.generate.sentences import split_sentences
from ragpipe.schema import Chunk, ScoredChunk

DOC = ("# Loops\n\nPython has two loop statements. Loop statements may have an else clause. "
       "It is executed when the loop terminates through exhaustion of the iterable, but not when the loop is "
       "terminated by a break statement.\n\nThe pass statement does nothing.")
START = 1000  # the chunk's offset in its document


def chunk(text: str, ident: str, start: int | None = START) -> ScoredChunk:
    end = start + len(text) if start is not None else None
    return ScoredChunk(chunk=Chunk(id=ident, doc_id="doc-" + ident, position=2, text=text,
                                   source=f"{ident}.html", start_char=start, end_char=end))


def test_sentences_keep_their_offsets() -> None:
    sentences = split_sentences(DOC)
    assert all(DOC[s.start:s.end] == s.text for s in sentences)
    assert [s.text for s in sentences][:2] == ["# Loops", "Python has two loop statements."]
    assert sentences[-1].text == "The pass statement does nothing."


def test_the_sentence_that_answers_is_quoted_and_cited_to_its_characters() -> None:
    evidence = [chunk("Unrelated text about lists. Lists are mutable sequences.", "lists", start=0), chunk(DOC, "loops")]
    result = extract_answer("When is a loop's else clause not executed?", evidence)
    assert result is not None
    best = result.quoted[0].sentence.text
    # The answer opens with "It", so the sentence it refers back to is quoted with it.
    assert best == ("Loop statements may have an else clause. It is executed when the loop terminates through "
                    "exhaustion of the iterable, but not when the loop is terminated by a break statement.")
    assert result.text == f"\u201c{best}\u201d [1]"
    citation = result.citations[0]
    assert citation.chunk_id == "loops" and citation.n == 1 and citation.quote == best
    assert DOC[citation.quote_start_char - START:citation.quote_end_char - START] == best


def test_without_document_offsets_the_quote_is_kept_but_not_placed() -> None:
    result = extract_answer("What does the pass statement do?", [chunk(DOC, "loops", start=None)])
    assert result.citations[0].quote == "The pass statement does nothing."
    assert result.citations[0].quote_start_char is None


def test_a_sentence_that_only_restates_the_question_loses_to_one_that_adds_the_answer() -> None:
    text = "Which statement does nothing? The pass statement does nothing at all in Python."
    ranked = rank_sentences("Which statement does nothing?", [chunk(text, "q")])
    assert ranked[0].sentence.text.startswith("The pass statement")


class TopicEmbedder:
    """Vectors by topic word, so embedding similarity can decide what word overlap cannot."""

    topics = ("loop", "river", "key")

    def embed(self, texts, *, batch_size=None):
        rows = [[float(t in text.lower()) for t in self.topics] for text in texts]
        return np.asarray(rows, dtype=np.float32) + 1e-3

    def embed_query(self, text):
        return self.embed([text])[0]


def test_embedding_similarity_breaks_a_word_overlap_tie() -> None:
    text = "The key opens the door of the house. The river opens into the sea near the town."
    question = "Where does the river end?"
    lexical_only = rank_sentences(question, [chunk(text, "t")])
    with_embedding = rank_sentences(question, [chunk(text, "t")], TopicEmbedder())
    assert with_embedding[0].sentence.text.startswith("The river")
    assert with_embedding[0].score > lexical_only[0].score


def test_a_close_second_from_another_chunk_is_quoted_too() -> None:
    evidence = [chunk("Christopher Nolan is an English film director.", "nolan", start=0),
                chunk("Sathish Kalathil is an Indian film director.", "kalathil", start=0)]
    result = extract_answer("Are Christopher Nolan and Sathish Kalathil both film directors?", evidence)
    assert [c.chunk_id for c in result.citations] == ["nolan", "kalathil"]
    assert result.text == ("\u201cChristopher Nolan is an English film director.\u201d [1] "
                           "\u201cSathish Kalathil is an Indian film director.\u201d [2]")


def test_nothing_to_quote_gives_none() -> None:
    assert extract_answer("Anything?", [chunk("ok", "tiny")]) is None


HTML_TEXT = ('loglevel\nDefault: "notice"\nType: "silent", "error", "warn", "notice"\n'
             "What level of logs to report. All logs are written to a debug log.")


def test_heading_lines_of_extracted_html_are_their_own_sentences() -> None:
    assert [s.text for s in split_sentences(HTML_TEXT)] == [
        "loglevel", 'Default: "notice"', 'Type: "silent", "error", "warn", "notice"',
        "What level of logs to report.", "All logs are written to a debug log.",
    ]


def test_a_fragment_is_quoted_with_the_heading_it_belongs_to() -> None:
    result = extract_answer("What is the default loglevel?", [chunk(HTML_TEXT, "config")])
    assert result.quoted[0].sentence.text == 'loglevel\nDefault: "notice"'


def test_stopwords_are_dropped_before_stemming_so_does_and_this_carry_no_meaning() -> None:
    from ragpipe.generate.sentences import content_words

    assert content_words("What does this loop do when it has no items?") == {"loop", "item"}
    assert content_words("The directories of this project") == {"directory", "project"}


def test_initials_in_a_name_do_not_end_a_sentence() -> None:
    from ragpipe.generate.sentences import split_sentences

    text = 'Roddy Maude-Roxby\n\nRoderick A. "Roddy" Maude-Roxby (born 1930) is an English actor. See J. R. R. Tolkien.'
    assert [s.text for s in split_sentences(text)] == [
        "Roddy Maude-Roxby",
        'Roderick A. "Roddy" Maude-Roxby (born 1930) is an English actor.',
        "See J. R. R. Tolkien.",
    ]
