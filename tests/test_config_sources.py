"""Every option is reachable from every source (TOML, env, ``--set``, keywords), and every typo is an
error that names the key, where it was set and the closest valid key."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ragpipe.cli import main
from ragpipe.config import Settings, load_settings, resolve_settings
from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.graph.state import RunState
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.pipeline import graph_from_settings
from ragpipe.retrieve.retriever import Retriever
from ragpipe.select import get_selector
from ragpipe.select.listwise import window_spans
from ragpipe.settings_layers import parse_value
from ragpipe.verify.verifier import Verifier
from tests.select.conftest import make_candidates

SOURCES = ("toml", "env", "set")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("RAGPIPE_") and key != "RAGPIPE_DATA":
            monkeypatch.delenv(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def settings_from(source: str, values: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  **overrides: Any) -> Settings:
    """Settings with ``values`` (dotted keys) given through one source."""
    if source == "toml":
        tables: dict[str, list[str]] = {}
        for key, value in values.items():
            table, _, name = key.rpartition(".")
            tables.setdefault(table, []).append(f"{name} = {_toml_value(value)}")
        text = "".join(f"[{table}]\n" + "\n".join(lines) + "\n" for table, lines in tables.items())
        path = tmp_path / "ragpipe.toml"
        path.write_text(text)
        return load_settings(path, **overrides)
    if source == "env":
        for key, value in values.items():
            raw = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
            monkeypatch.setenv("RAGPIPE_" + key.replace(".", "__").upper(), raw)
        return load_settings(**overrides)
    return load_settings(assignments=[f"{k}={_toml_value(v)}" for k, v in values.items()], **overrides)


def run(node: Any, state: RunState, llm: Any = None) -> dict[str, Any]:
    import asyncio

    return asyncio.run(node.arun(state, RunContext(llm=llm)))


# -- options change behaviour, from every source -------------------------------------------------------

@pytest.mark.parametrize("source", SOURCES)
def test_listwise_window_from_each_source_changes_the_calls(source, tmp_path, monkeypatch) -> None:
    candidates = make_candidates(30)
    calls = {}
    for window in (20, 10):
        settings = settings_from(source, {"select.listwise.window": window, "select.listwise.stride": 5},
                                 tmp_path, monkeypatch, method="listwise", verify=False)
        select = graph_from_settings(settings).nodes[1]
        llm = ScriptedLLM(cycle=["[2] > [1]"])
        run(select, RunState(question="q?", candidates=candidates), llm)
        calls[window] = len(llm.requests)
    assert calls == {20: len(window_spans(30, 20, 5)), 10: len(window_spans(30, 10, 5))}
    assert calls[10] > calls[20]


@pytest.mark.parametrize("source", SOURCES)
def test_fast_cutoff_budget_from_each_source_changes_what_is_kept(source, tmp_path, monkeypatch) -> None:
    gentle = make_candidates(12)  # evenly spaced scores: no pronounced knee, the budget decides
    default = run(graph_from_settings(load_settings(method="fast")).nodes[1],
                  RunState(question="q?", candidates=gentle))["selected"]
    settings = settings_from(source, {"select.fast.budget": 3}, tmp_path, monkeypatch, method="fast")
    kept = run(graph_from_settings(settings).nodes[1], RunState(question="q?", candidates=gentle))["selected"]
    assert (len(kept), len(default)) == (3, 5)


@pytest.mark.parametrize("source", SOURCES)
def test_verifier_fail_policy_from_each_source_decides_unreadable_verdicts(source, tmp_path, monkeypatch) -> None:
    state = RunState(question="How are keys rotated?", selected=make_candidates(4))
    opened = run(graph_from_settings(load_settings(method="fast")).nodes[2], state,
                 ScriptedLLM(cycle=["I cannot tell."]))
    settings = settings_from(source, {"verifier.fail_policy": "fail_closed"}, tmp_path, monkeypatch, method="fast")
    closed = run(graph_from_settings(settings).nodes[2], state, ScriptedLLM(cycle=["I cannot tell."]))
    assert (len(closed["evidence"]), len(opened["evidence"])) == (0, 4)


@pytest.mark.parametrize("source", SOURCES)
def test_verifier_weight_table_adds_to_the_defaults(source, tmp_path, monkeypatch) -> None:
    settings = settings_from(source, {"verifier.weights": {"llm": 2.0}}, tmp_path, monkeypatch)
    weights = settings.verifier_config().weights
    assert weights["llm"] == 2.0 and weights["near_duplicate"] == 0.5  # the other defaults stay


@pytest.mark.parametrize("source", SOURCES)
def test_hybrid_fusion_knobs_from_each_source_reach_the_retriever(source, tmp_path, monkeypatch) -> None:
    settings = settings_from(source, {"retrieval.fusion": "rrf", "retrieval.dense_weight": 0.5,
                                      "retrieval.bm25_weight": 0.5, "retrieval.candidates": 250,
                                      "retrieval.rrf_k": 20}, tmp_path, monkeypatch)
    retriever = Retriever(store=None, embedder=None, settings=settings.retrieval)
    assert retriever.fusion.method == "rrf" and retriever.fusion.rrf_k == 20
    assert dict(retriever.fusion.weights) == {"dense": 0.5, "bm25": 0.5}
    assert retriever.candidates == 250


@pytest.mark.parametrize("source", SOURCES)
def test_nested_harm_bound_and_meteora_options(source, tmp_path, monkeypatch) -> None:
    settings = settings_from(source, {"select.pointwise_scale.harm_bound.enabled": False,
                                      "select.meteora.budget": 7, "select.meteora.expansion_window": 0},
                             tmp_path, monkeypatch)
    assert settings.selector_config("pointwise_scale").harm_bound.enabled is False
    meteora = settings.selector_config("meteora")
    assert (meteora.budget, meteora.expansion_window) == (7, 0)


def test_python_keywords_and_eval_variants_reach_selector_options() -> None:
    from ragpipe.evaluate.build import eval_settings
    from ragpipe.evaluate.config import EvalConfig

    assert load_settings(select__groupwise__group_size=4).selector_options("groupwise") == {"group_size": 4}
    config = EvalConfig(name="x", dataset={"path": "d"}, variants=[{"name": "v", "method": "listwise"}],
                        settings={"select__listwise__window": 8})
    settings = eval_settings(config, {"select__listwise__stride": 4})
    assert settings.selector_options("listwise") == {"window": 8, "stride": 4}


def test_later_sources_win_key_by_key(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[select.listwise]\nwindow = 8\nstride = 4\n")
    monkeypatch.setenv("RAGPIPE_SELECT__LISTWISE__WINDOW", "6")
    settings, layers = resolve_settings(path, assignments=["select.listwise.stride=3"])
    assert settings.selector_options("listwise") == {"window": 6, "stride": 3}
    assert layers.source_of(("select", "listwise", "window")) == "environment variable RAGPIPE_SELECT__LISTWISE__WINDOW"
    assert layers.source_of(("select", "listwise", "stride")) == "--set select.listwise.stride=3"


# -- typos and bad values: the key, the source and the closest valid key ---------------------------------

@pytest.mark.parametrize("source, where", [
    ("toml", r"config file .*ragpipe.toml"),
    ("env", "environment variable RAGPIPE_RETRIEVAL__TOP_KK"),
    ("set", r"--set retrieval.top_kk=5"),
])
def test_a_typo_names_key_source_and_the_closest_key(source, where, tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match=rf"unknown setting 'retrieval.top_kk' \({where}\): "
                                          r"did you mean 'retrieval.top_k'\?") as raised:
        settings_from(source, {"retrieval.top_kk": 5}, tmp_path, monkeypatch)
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("key, table, hint", [
    ("select.listwise.windw", "select.listwise.windw", "did you mean 'select.listwise.window'"),
    ("select.listwize.window", "select.listwize", "did you mean 'select.listwise'"),
    ("verifier.fail_polcy", "verifier.fail_polcy", "did you mean 'verifier.fail_policy'"),
    ("select.listwise.harm_bound.enabeld", "select.listwise.harm_bound.enabeld",
     "did you mean 'select.listwise.harm_bound.enabled'"),
    ("llm.modle", "llm.modle", "did you mean 'llm.model'"),
    ("llm.zzz", "llm.zzz", "valid keys in [llm]: backend, model"),
])
def test_typos_in_every_table_are_errors(key, table, hint, tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match=rf"unknown setting '{table.replace('.', '[.]')}'.*{hint.replace('[', '.')}"):
        settings_from("set", {key: 1}, tmp_path, monkeypatch)


def test_bad_option_values_name_the_option_and_the_source(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAGPIPE_SELECT__LISTWISE__WINDOW", "1")
    with pytest.raises(ConfigError, match=r"'select.listwise'.*RAGPIPE_SELECT__LISTWISE__WINDOW"):
        load_settings()
    monkeypatch.delenv("RAGPIPE_SELECT__LISTWISE__WINDOW")
    with pytest.raises(ConfigError, match=r"setting 'verifier.fail_policy' \(--set .*\).*'fail_open' or 'fail_closed'"):
        load_settings(assignments=["verifier.fail_policy=maybe"])
    with pytest.raises(ConfigError, match=r"setting 'select.fast.budget' .*greater than or equal to 1"):
        load_settings(assignments=["select.fast.budget=0"])


@pytest.mark.parametrize("make, wording", [
    (lambda: get_selector("listwise", windw=3),
     r"^selector 'listwise': unknown setting 'windw': did you mean 'window'\?$"),
    (lambda: Verifier(fail_polcy="fail_open"),
     r"^verifier: unknown setting 'fail_polcy': did you mean 'fail_policy'\?$"),
    (lambda: Verifier(harm_bound=True),
     r"^verifier: unknown setting 'harm_bound'; valid keys in the top level: signals, .*fail_policy"),
    (lambda: Verifier(fail_policy="closed"),
     r"^verifier: setting 'fail_policy': Input should be 'fail_open' or 'fail_closed' \(got 'closed'\)$"),
])
def test_python_api_options_are_explained_in_the_settings_wording(make, wording) -> None:
    """A typo passed as a keyword reads like the same typo in TOML: key, closest key or what is wrong."""
    with pytest.raises(ConfigError, match=wording):
        make()


def test_unknown_ragpipe_variables_are_errors_but_tool_variables_are_not(monkeypatch) -> None:
    monkeypatch.setenv("RAGPIPE_DEBUG", "1")
    monkeypatch.setenv("RAGPIPE_BENCH_QWEN_GGUF", "/somewhere/model.gguf")
    load_settings()
    monkeypatch.setenv("RAGPIPE_RETRIEVAL__TOPK", "5")
    with pytest.raises(ConfigError, match="RAGPIPE_RETRIEVAL__TOPK.*did you mean 'retrieval.top_k'"):
        load_settings()


def test_settings_built_in_python_check_their_option_tables() -> None:
    with pytest.raises(ValueError, match="select.listwise.windw"):
        Settings(select={"listwise": {"windw": 3}})
    assert Settings(select={"listwise": {"window": 12}}).selector_config("listwise").window == 12


@pytest.mark.parametrize("text, value", [("5", 5), ("true", True), ("0.5", 0.5), ('["a", "b"]', ["a", "b"]),
                                         ("qwen2.5:7b", "qwen2.5:7b"), ("/models/x.gguf", "/models/x.gguf"),
                                         ('"quoted"', "quoted")])
def test_set_values_are_toml_values_or_plain_text(text, value) -> None:
    assert parse_value(text) == value


def test_a_malformed_set_says_the_expected_shape() -> None:
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_settings(assignments=["retrieval.top_k"])


# -- the CLI ---------------------------------------------------------------------------------------------

def test_cli_typos_exit_2_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Keys rotate every 90 days.")
    assert main(["ask", "q?", "--docs", str(docs), "--set", "retrieval.top_kk=5"]) == 2
    assert "did you mean 'retrieval.top_k'" in capsys.readouterr().err
    assert not (docs / ".ragpipe").exists()  # nothing was indexed
    bad = tmp_path / "bad.toml"
    bad.write_text("[select.listwise]\nwindw = 5\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "select.listwise.windw" in err and "bad.toml" in err and "select.listwise.window" in err
    monkeypatch.setenv("RAGPIPE_VERIFIER__FAIL_POLICY", "sometimes")
    assert main(["search", "q", "--docs", str(docs)]) == 2
    assert "RAGPIPE_VERIFIER__FAIL_POLICY" in capsys.readouterr().err


def test_config_check_accepts_a_good_file_and_ignores_the_environment(tmp_path, monkeypatch, capsys) -> None:
    good = tmp_path / "good.toml"
    good.write_text('method = "listwise"\n[select.listwise]\nwindow = 10\n[verifier]\nfail_policy = "fail_closed"\n')
    monkeypatch.setenv("RAGPIPE_RETRIEVAL__TOPK", "5")  # a bad variable is not the file's fault
    assert main(["config", "check", str(good)]) == 0
    assert "ok (3 settings)" in capsys.readouterr().out


def test_config_show_gives_each_value_and_its_source(tmp_path, monkeypatch, capsys) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[retrieval]\ntop_k = 12\n")
    monkeypatch.setenv("RAGPIPE_LLM__TIMEOUT_S", "30")
    assert main(["config", "show", "--json", "--config", str(path), "--method", "listwise",
                 "--set", "select.listwise.window=12"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {row["key"]: row for row in doc["settings"]}
    assert doc["schema_version"] == 1
    assert rows["retrieval.top_k"] == {"key": "retrieval.top_k", "value": 12, "source": f"config file {path}"}
    assert rows["llm.timeout_s"]["source"] == "environment variable RAGPIPE_LLM__TIMEOUT_S"
    assert rows["select.listwise.window"]["source"] == "--set select.listwise.window=12"
    assert rows["select.listwise.stride"] == {"key": "select.listwise.stride", "value": 10, "source": "default"}
    assert rows["llm.backend"]["source"] == "connector profile 'local'"
    assert rows["method"]["source"] == "command-line option"
    assert rows["verifier.fail_policy"]["value"] == "fail_open"
    assert main(["config", "show"]) == 0
    assert "retrieval.top_k = 30" in capsys.readouterr().out


def test_the_model_label_follows_the_gguf_file() -> None:
    from ragpipe.models import gguf_label

    assert gguf_label("smollm2-135m-instruct", "/m/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf") == \
        "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert gguf_label("smollm2-135m-instruct", None) == "smollm2-135m-instruct"
    assert gguf_label("my-qwen", "/m/qwen.gguf") == "my-qwen"  # a name the user chose is kept
