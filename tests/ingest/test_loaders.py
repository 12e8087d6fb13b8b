"""Each file type loads with its structure; every kind of bad file is refused with a reason."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from ragpipe.errors import IngestError
from ragpipe.ingest.loaders import loader_for, register_loader, supported_suffixes
from ragpipe.ingest.loaders.adapters import from_langchain, from_llamaindex
from ragpipe.ingest.loaders.base import LoadedDocument
from ragpipe.ingest.walk import walk_folder
from tests.ingest.fixtures import write_docx, write_pdf


def load(path: Path) -> LoadedDocument:
    loader = loader_for(path)
    assert loader is not None, path
    return loader(path)


def segment_texts(doc: LoadedDocument) -> list[str]:
    return [doc.text[s.start : s.end] for s in doc.segments]


def test_every_documented_type_has_a_loader():
    for suffix in (".txt", ".md", ".html", ".pdf", ".docx", ".json", ".jsonl", ".csv"):
        assert suffix in supported_suffixes()


def test_text(tmp_path):
    (tmp_path / "a.txt").write_text("\ufeffHello there.\nSecond line.")
    doc = load(tmp_path / "a.txt")
    assert doc.text == "Hello there.\nSecond line."  # BOM stripped
    assert segment_texts(doc) == [doc.text]


def test_markdown_headings_and_title(tmp_path):
    md = "# Guide\n\nIntro.\n\n## Install\n\nRun pip.\n\n```\n# not a heading\n```\n\n### Linux\n\nUse apt.\n\n## Use\n\nCall it.\n"
    (tmp_path / "g.md").write_text(md)
    doc = load(tmp_path / "g.md")
    assert doc.title == "Guide"
    assert [s.headings for s in doc.segments] == [
        ["Guide"],
        ["Guide", "Install"],
        ["Guide", "Install", "Linux"],
        ["Guide", "Use"],
    ]
    assert "# not a heading" in segment_texts(doc)[1]
    assert segment_texts(doc)[2].startswith("### Linux")


def test_html_drops_scripts_and_keeps_sections(tmp_path):
    html = (
        "<html><head><title>Docs page</title><style>p{}</style></head><body><nav>Home | About</nav>"
        "<h1>Setup</h1><p>Install it.</p><script>alert('x')</script><h2>Options</h2><ul><li>fast</li><li>safe</li></ul>"
        "</body></html>"
    )
    (tmp_path / "p.html").write_text(html)
    doc = load(tmp_path / "p.html")
    assert doc.title == "Docs page"
    assert "alert" not in doc.text and "Home | About" not in doc.text and "p{}" not in doc.text
    assert [s.headings for s in doc.segments] == [["Setup"], ["Setup", "Options"]]
    assert segment_texts(doc)[1] == "Options\nfast\nsafe"


def test_pdf_pages_become_segments_with_page_numbers(tmp_path):
    write_pdf(
        tmp_path / "two.pdf",
        [
            [(72, 720, "Left column starts here."), (320, 720, "Right column text.")],
            [],
            [(72, 700, "Third page mentions zebras.")],
        ],
    )
    doc = load(tmp_path / "two.pdf")
    assert [s.metadata["page"] for s in doc.segments] == [1, 3]
    first, third = segment_texts(doc)
    assert "Left column starts here." in first and "Right column text." in first
    assert "zebras" in third
    assert doc.metadata["pages"] == 3 and doc.metadata["empty_pages"] == 1
    assert doc.metadata["chars_per_page"][1] == 0


def test_docx_headings_and_tables(tmp_path):
    doc = load(write_docx(tmp_path / "r.docx"))
    assert doc.title == "Annual Report"
    by_heading = {tuple(s.headings): doc.text[s.start : s.end] for s in doc.segments}
    assert "twelve percent" in by_heading[("Revenue",)]
    assert "slower growth" in by_heading[("Revenue", "Outlook")]
    assert "north | 12%" in by_heading[("table 1",)]


def test_json_and_jsonl_records(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="ragpipe.ingest")
    (tmp_path / "r.json").write_text(json.dumps([{"id": 7, "title": "Felines", "text": "Cats purr."}, {"a": 1, "b": "x"}]))
    doc = load(tmp_path / "r.json")
    assert segment_texts(doc) == ["Felines\nCats purr.", "a: 1\nb: x"]
    assert doc.segments[0].headings == ["Felines"] and doc.segments[0].metadata["record_id"] == "7"

    (tmp_path / "r.jsonl").write_text('{"_id": "d1", "text": "one"}\n{broken\n\n{"_id": "d2", "text": "two"}\n')
    doc = load(tmp_path / "r.jsonl")
    assert segment_texts(doc) == ["one", "two"]
    assert doc.metadata["invalid_lines"] == 1
    assert "invalid JSON line" in caplog.text


def test_csv_rows_keep_their_header(tmp_path):
    (tmp_path / "t.csv").write_text("name;city\nAda;London\nAlan;Wilmslow\n")
    doc = load(tmp_path / "t.csv")
    assert segment_texts(doc) == ["name: Ada\ncity: London", "name: Alan\ncity: Wilmslow"]
    assert [s.metadata["row"] for s in doc.segments] == [1, 2]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("corrupt.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "unreadable PDF"),
        ("binary.txt", b"\x7fELF\x00\x00\x01\x02", "binary content"),
        ("bad-bom.txt", b"\xff\xfe\x00\xd8", "byte-order mark"),
        ("broken.json", b'{"a": [1, 2', "invalid JSON"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "unreadable .docx"),
        ("nothing.jsonl", b"{oops\n[also bad\n", "no valid JSON line"),
    ],
)
def test_bad_content_raises_ingest_error_with_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(IngestError) as err:
        load(tmp_path / name)
    assert reason in err.value.reason


def test_walk_refuses_bad_files_and_skips_the_index_folder(tmp_path, monkeypatch):
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "ok.txt").write_text("fine")
    (root / "sub" / "deep.md").write_text("# deep")
    (root / "empty.txt").write_text("")
    (root / "big.txt").write_text("x" * 5000)
    (root / "picture.png").write_bytes(b"\x89PNG")
    (root / ".hidden.txt").write_text("secret")
    (root / ".ragpipe").mkdir()
    (root / ".ragpipe" / "inside.txt").write_text("index internals")
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    os.symlink(outside, root / "escape.txt")
    os.symlink(root / "ok.txt", root / "alias.txt")
    (root / "locked.txt").write_text("no access")
    os.chmod(root / "locked.txt", 0)
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for a normal user
        real_open = Path.open

        def guarded(self, *args, **kwargs):
            if self.name == "locked.txt":
                raise PermissionError(13, "Permission denied")
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", guarded)

    result = walk_folder(root, index_dir=root / ".ragpipe", max_bytes=1000)
    assert [f.rel for f in result.files] == ["ok.txt", "sub/deep.md"]
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons.keys() == {"alias.txt", "empty.txt", "big.txt", "escape.txt", "locked.txt"}
    assert reasons["alias.txt"] == "same file as ok.txt (indexed once)"
    assert reasons["empty.txt"] == "empty file"
    assert "size limit" in reasons["big.txt"]
    assert "outside the folder" in reasons["escape.txt"]
    assert "unreadable" in reasons["locked.txt"]
    assert result.unsupported == 1


def test_walk_include_and_exclude_globs(tmp_path):
    for rel in ("a.md", "b.txt", "notes/c.md", "notes/draft-d.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("text")
    result = walk_folder(tmp_path, include=["*.md"], exclude=["draft-*"])
    assert [f.rel for f in result.files] == ["a.md", "notes/c.md"]
    result = walk_folder(tmp_path, include=["notes/*"])
    assert [f.rel for f in result.files] == ["notes/c.md", "notes/draft-d.md"]


def test_a_new_type_is_one_registered_function(tmp_path):
    @register_loader(".shout")
    def load_shout(path: Path) -> LoadedDocument:
        return LoadedDocument(path.read_text().lower()).ensure_segments()

    (tmp_path / "x.shout").write_text("HELLO")
    assert load(tmp_path / "x.shout").text == "hello"
    assert [f.rel for f in walk_folder(tmp_path).files] == ["x.shout"]


def test_langchain_and_llamaindex_documents_become_ragpipe_documents():
    from langchain_core.documents import Document as LCDocument
    from llama_index.core import Document as LIDocument

    lc = from_langchain([LCDocument(page_content="alpha", metadata={"source": "wiki/a", "page": 2, "tags": ["x"]})])
    assert lc[0].source == "wiki/a" and lc[0].text == "alpha" and lc[0].metadata["page"] == 2
    assert "tags" not in lc[0].metadata  # only scalar metadata can be stored with chunks

    class Reader:
        def load_data(self):
            return [LIDocument(text="beta", metadata={"file_path": "/data/b.txt"}), LIDocument(text="gamma", id_="g1")]

    li = from_llamaindex(Reader())
    assert [d.source for d in li] == ["/data/b.txt", "llamaindex:g1"]
    assert [d.text for d in li] == ["beta", "gamma"]
