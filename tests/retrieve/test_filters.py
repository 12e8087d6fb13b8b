"""The filter language: parsing, evaluation, and the translation to a Chroma ``where``."""

from __future__ import annotations

import pytest

from ragpipe.errors import ConfigError
from ragpipe.retrieve.filters import (
    And,
    Cond,
    Or,
    chunk_fields,
    evaluate,
    is_fully_pushed_down,
    matches,
    parse_filter,
    to_chroma_where,
)
from ragpipe.schema import Chunk


def chunk(source: str, **meta) -> Chunk:
    return Chunk(id="c", doc_id="d", position=3, text="t", source=source, metadata=meta)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source~=*.md", Cond("source", "glob", "*.md")),
        ("file_type=pdf", Cond("file_type", "eq", "pdf")),
        ("year>=2020", Cond("year", "gte", 2020)),
        ("lang != de", Cond("lang", "ne", "de")),
        ("tags*=finance", Cond("tags", "contains", "finance")),
        ("lang in en, de", Cond("lang", "in", ["en", "de"])),
        ("lang not in fr", Cond("lang", "nin", ["fr"])),
        ("file_type=pdf || source~=notes/*", Or(Cond("file_type", "eq", "pdf"), Cond("source", "glob", "notes/*"))),
    ],
)
def test_cli_expressions(text, expected):
    assert parse_filter(text) == expected


def test_several_cli_expressions_are_anded():
    assert parse_filter(["a=1", "b~=x*"]) == And(Cond("a", "eq", 1), Cond("b", "glob", "x*"))


@pytest.mark.parametrize("bad", ["source", "=x", "a=", "a ?? b"])
def test_unreadable_expressions_say_how_to_write_them(bad):
    with pytest.raises(ConfigError):
        parse_filter(bad)


def test_dict_form_matches_chroma_style():
    flt = parse_filter({"$or": [{"lang": "de"}, {"year": {"$gt": 2020}}], "source": {"$glob": "papers/*"}})
    assert flt == And(Or(Cond("lang", "eq", "de"), Cond("year", "gt", 2020)), Cond("source", "glob", "papers/*"))
    with pytest.raises(ConfigError):
        parse_filter({"year": {"$near": 3}})


def test_fields_include_source_file_type_position_and_metadata():
    fields = chunk_fields(chunk("docs/a/Report.PDF", lang="en"))
    assert fields["file_type"] == "pdf"
    assert fields["position"] == 3 and fields["lang"] == "en" and fields["source"] == "docs/a/Report.PDF"
    assert chunk_fields(chunk("x.txt", file_type="markdown"))["file_type"] == "markdown"


def test_evaluation_semantics():
    c = chunk("docs/a/b.md", lang="en", year=2021, tags=["finance", "tax"])
    assert matches(parse_filter("source~=docs/*.md"), c)
    assert not matches(parse_filter("source~=*.pdf"), c)
    assert matches(parse_filter("tags*=tax"), c)
    assert matches(parse_filter("source*=a/b"), c)
    assert not matches(parse_filter("year<2020"), c)
    assert not matches(parse_filter("missing>3"), c)  # None never compares true
    assert matches(parse_filter(["lang in en,de", "year>=2021"]), c)
    assert evaluate(Or(Cond("lang", "eq", "fr"), Cond("year", "eq", 2021)), chunk_fields(c))


def test_chroma_where_pushes_down_what_it_can():
    flt = parse_filter(["file_type=pdf", "source~=papers/*", "year in 2019,2021"])
    assert to_chroma_where(flt) == {"$and": [{"file_type": {"$eq": "pdf"}}, {"year": {"$in": [2019, 2021]}}]}
    assert not is_fully_pushed_down(flt)
    # an OR with a glob cannot be pushed down at all (pushing half of it would be stricter)
    assert to_chroma_where(parse_filter("lang=de || source~=*.md")) is None
    assert to_chroma_where(parse_filter("lang=de || year>2020")) == {"$or": [{"lang": {"$eq": "de"}}, {"year": {"$gt": 2020}}]}
    assert is_fully_pushed_down(parse_filter("lang=de || year>2020"))
    assert to_chroma_where(None) is None


def test_fields_the_store_does_not_hold_stay_for_post_filtering():
    flt = parse_filter(["file_type=pdf", "lang=en"])
    assert to_chroma_where(flt, stored={"lang", "source"}) == {"lang": {"$eq": "en"}}
    assert not is_fully_pushed_down(flt, stored={"lang", "source"})
