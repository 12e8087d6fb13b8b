"""Fault catalogue, what ``ragpipe ask`` prints: terminal injection, fallbacks, wording, JSON errors.

File names and chunk text may hold ANSI escapes or newlines; they are shown as visible escapes
and never break the citation line. Fallbacks and uncited answers are said in a line (human) and
in ``fallbacks``/``uncited`` (``--json``). A failed question with ``--json`` still prints a JSON
document. ``--docs FILE`` says the documents must be a folder.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ragpipe.cli import main
from ragpipe.errors import LLMTimeout, LLMUnavailable
from ragpipe.llm.scripted import REFUSAL, ScriptedLLM
from ragpipe.schema import Chunk

EVIL_NAME = "notes\x1b[2J\x1b]0;owned\x07\nfake [9] line.md"
EVIL_TEXT = "Rotate API keys every 90 days.\x1b[31m red \x1b[0m\x1b]8;;http://evil\x07link\x1b]8;;\x07 \u202eevil"
ESC = "\x1b"


def routed_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm, chunks: list[Chunk] | None = None) -> Path:
    """Make ``ragpipe ask`` use an in-memory index of ``chunks`` and ``llm``; returns the docs folder."""
    from ragpipe.ingest.testing import HashingEmbedder
    from ragpipe.pipeline import Pipeline
    from ragpipe.retrieve.memory import MemoryStore

    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "a.md").write_text("placeholder")
    chunks = chunks or [
        Chunk(id="c1", doc_id="d1", position=0, text="Rotate the API keys every 90 days from the admin console.",
              source="keys.md", start_char=0, end_char=57),
        Chunk(id="c2", doc_id="d2", position=0, text="API keys are stored in the vault.", source="vault.md"),
    ]
    embedder = HashingEmbedder()
    store = MemoryStore(tmp_path / "index")
    store.add(chunks, embedder.embed([c.text for c in chunks]))
    index = SimpleNamespace(store=store, embedder=embedder, dir=tmp_path / "index", partial=None)
    monkeypatch.setattr("ragpipe.cli.ask.open_index_for", lambda *a, **k: index)
    original = Pipeline.from_settings.__func__

    def with_llm(cls, *args, **kwargs):
        return original(cls, *args, **{**kwargs, "llm": llm})

    monkeypatch.setattr(Pipeline, "from_settings", classmethod(with_llm))
    return docs


def ask(docs: Path, *flags: str, question: str = "How often are API keys rotated?") -> list[str]:
    return ["ask", question, "--docs", str(docs), *flags]


# -- terminal injection --------------------------------------------------------------------------


def test_escape_sequences_in_file_names_and_chunk_text_never_reach_the_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    chunk = Chunk(id="e1", doc_id="e", position=0, text=EVIL_TEXT, source=EVIL_NAME, start_char=0, end_char=30)
    docs = routed_to(tmp_path, monkeypatch, ScriptedLLM(fn=lambda r: "Every 90 days [1]."), [chunk])
    code = main(ask(docs, "--method", "fast", "--no-verify"))
    out = capsys.readouterr().out
    assert code == 0
    assert ESC not in out and "\x07" not in out and "\u202e" not in out
    citation = [line for line in out.splitlines() if line.strip().startswith("[1] ")]
    assert len(citation) == 1  # one whole citation line, not broken by the newline in the name
    assert "\\x1b[2J" in citation[0] and "\\n" in citation[0] and "line.md #0 chars 0-30" in citation[0]
    assert "fake [9] line.md" in citation[0]


def test_answer_text_with_escapes_is_sanitised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    docs = routed_to(tmp_path, monkeypatch, ScriptedLLM(fn=lambda r: "Every 90 days [1].\x1b[2J\x1b[31m"))
    assert main(ask(docs, "--method", "fast", "--no-verify", "--trace")) == 0
    out = capsys.readouterr().out
    assert ESC not in out and "Every 90 days [1]." in out


def test_error_lines_are_sanitised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no\x1b[31mpe\nsecond line"
    assert main(["ask", "q?", "--docs", str(missing)]) == 2
    err = capsys.readouterr().err
    assert ESC not in err and len(err.strip().splitlines()) == 1 and "\\x1b[31m" in err


def test_printable_is_the_one_sanitiser() -> None:
    from ragpipe.cli.terminal import markup_safe, printable

    assert printable("a\x1b[1mb\x00c\x7fd\x9be") == "a\\x1b[1mb\\x00c\\x7fd\\x9be"
    assert printable("two\nlines\tand tab") == "two\nlines\tand tab"
    assert printable("two\nlines\tand tab", one_line=True) == "two\\nlines\\tand tab"
    assert printable("abc \u202edcba \u2066x\u2069") == "abc \\u202edcba \\u2066x\\u2069"
    assert markup_safe("[bold red]x[/]") == "\\[bold red]x\\[/]"
    assert printable("ordinary text, ünïcode, 日本語") == "ordinary text, ünïcode, 日本語"


# -- fallbacks and uncited answers are said --------------------------------------------------------


def test_a_selector_that_fell_back_says_so_in_human_output_and_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def reply(request):
        if "Rank" in request.messages[-1].content or "rank" in request.messages[-1].content:
            return "I cannot rank these, sorry."
        return "Every 90 days [1]."

    docs = routed_to(tmp_path, monkeypatch, ScriptedLLM(fn=reply))
    assert main(ask(docs, "--method", "listwise", "--no-verify")) == 0
    out = capsys.readouterr().out
    assert re.search(r"^fallback: listwise: .*kept (its|the input) order", out, re.MULTILINE), out
    assert main(ask(docs, "--method", "listwise", "--no-verify", "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fallbacks"] and {f["node"] for f in doc["fallbacks"]} == {"listwise"}
    assert all(f["reason"] for f in doc["fallbacks"]) and doc["uncited"] is False


def test_no_fallback_line_when_nothing_fell_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    docs = routed_to(tmp_path, monkeypatch, ScriptedLLM(fn=lambda r: "Every 90 days [1]."))
    assert main(ask(docs, "--method", "fast", "--no-verify", "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fallbacks"] == [] and doc["uncited"] is False and doc["citations"]


@pytest.mark.parametrize("reply", [REFUSAL, '{"answer": "90 days", "cit', "As an AI model I have no opinion."])
def test_a_refusal_or_broken_answer_is_flagged_not_passed_off(
        reply: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    docs = routed_to(tmp_path, monkeypatch, ScriptedLLM(fn=lambda r: reply))
    assert main(ask(docs, "--method", "fast", "--no-verify", "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert reply not in doc["answer"], doc
    # The broken reply is replaced by evidence quoted from the documents (answer mode auto).
    assert doc["answer_mode"] == "extracted" and doc["citations"] and not doc["uncited"], doc
    assert main(ask(docs, "--method", "fast", "--no-verify")) == 0
    out = capsys.readouterr().out
    assert "quoted from the documents" in out and reply not in out
    assert main(ask(docs, "--method", "fast", "--no-verify", "--answer", "generate", "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert reply not in doc["answer"] and (doc["abstained"] or doc["uncited"]), doc


# -- wording and the JSON error document -------------------------------------------------------------


def test_docs_pointing_at_a_file_says_it_must_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "notes.md"
    file.write_text("text")
    assert main(["ask", "q?", "--docs", str(file)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "folder" in err and str(tmp_path) in err and "does not exist" not in err


def test_json_failure_prints_a_json_error_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    llm = ScriptedLLM(cycle=[LLMUnavailable("cannot reach http://127.0.0.1:9/v1: is the server running?")])
    docs = routed_to(tmp_path, monkeypatch, llm)
    code = main(ask(docs, "--method", "fast", "--no-verify", "--json"))
    captured = capsys.readouterr()
    assert code == 3
    doc = json.loads(captured.out)
    assert doc == {"schema_version": 1, "error": {"type": "LLMUnavailable", "exit_code": 3,
                             "message": "cannot reach http://127.0.0.1:9/v1: is the server running?"}}
    assert captured.err.strip().startswith("error: cannot reach")


def test_json_failure_before_the_llm_is_a_json_document_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "q?", "--docs", str(tmp_path / "missing"), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["type"] == "ConfigError" and doc["error"]["exit_code"] == 2


def test_malformed_server_replies_show_no_python_internals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ragpipe.llm.openai_compat import OpenAICompatLLM
    from tests.llm.fake_openai_server import FakeOpenAIServer

    for action in ("garbage", "truncated", "wrongshape", "nullchoice"):
        with FakeOpenAIServer(default=action) as server, monkeypatch.context() as patched:
            llm = OpenAICompatLLM(base_url=server.base_url, model="m", max_retries=0, timeout_s=5)
            docs = routed_to(tmp_path, patched, llm)
            code = main(ask(docs, "--method", "fast", "--no-verify"))
        err = capsys.readouterr().err
        assert code == 3, (action, err)
        line = err.strip().splitlines()[-1]
        assert "llm.base_url" in line and "OpenAI-compatible" in line, (action, line)
        for internal in ("NoneType", "JSONDecodeError", "subscriptable", "attribute", "char ", "Traceback"):
            assert internal not in err, (action, err)


# -- a status line while the LLM is slow ---------------------------------------------------------------


def test_status_line_while_waiting_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragpipe.cli import ask as ask_module
    from ragpipe.llm.deadline import CallBudget

    monkeypatch.setattr(ask_module, "STATUS_EVERY_S", 0.2)
    budget = CallBudget(60)
    stream = io.StringIO()
    call_id = budget._enter("listwise")
    with ask_module.StatusLine(budget, stream):
        time.sleep(0.8)
    budget._leave(call_id)
    lines = stream.getvalue().splitlines()
    assert lines and all(line.startswith("waiting for the LLM (listwise): ") for line in lines)
    assert "gives up in" in lines[-1] and ESC not in stream.getvalue()


def test_status_line_rewrites_itself_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragpipe.cli import ask as ask_module
    from ragpipe.llm.deadline import CallBudget

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(ask_module, "STATUS_AFTER_S", 0.1)
    budget = CallBudget(None)
    stream = Terminal()
    call_id = budget._enter("verify")
    with ask_module.StatusLine(budget, stream):
        time.sleep(1.2)
    budget._leave(call_id)
    shown = stream.getvalue()
    assert shown.count("\r\x1b[K") >= 2 and "waiting for the LLM (verify)" in shown and "\n" not in shown
    assert shown.endswith("\r\x1b[K")  # cleared when the wait is over


def test_nothing_is_printed_when_the_llm_is_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    docs = routed_to(tmp_path, monkeypatch, ScriptedLLM(fn=lambda r: "Every 90 days [1]."))
    assert main(ask(docs, "--method", "fast", "--no-verify", "--json")) == 0
    assert "waiting for the LLM" not in capsys.readouterr().err


def test_a_timeout_in_the_generator_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    docs = routed_to(tmp_path, monkeypatch, ScriptedLLM(cycle=[LLMTimeout("http://x/v1 did not answer within 1 s")]))
    assert main(ask(docs, "--method", "fast", "--no-verify")) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "did not answer" in err[0]
