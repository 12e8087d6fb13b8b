"""Where the evaluation data is: ``--data``, ``RAGPIPE_DATA`` and the default, for the library, ``ragpipe eval``
and every benchmark script (their argument parsing and data check run for real, on a tiny folder, without models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragpipe.cli import main
from ragpipe.evaluate import datafolder
from ragpipe.evaluate.config import load_eval_config
from ragpipe.evaluate.datafolder import DataError, find_data, merge_descriptions, resolve_data_root

REPO = Path(__file__).resolve().parents[2]
BEIR = ("queries.jsonl", "qrels.tsv", "corpus.jsonl")
# Each dataset folder of the fixture, with its number of queries (questions); distinct so counts are checkable.
BEIR_SETS = {"scifact_goldpool": 2, "fiqa_goldpool": 3, "hotpotqa_hipporag_train100": 4, "musique_hipporag_train100": 5,
             "noveleval": 6, "trec_dl2019_bm25": 7, "trec_dl2020_bm25": 8, "trec_dl2021_bm25": 9}
POISON_SETS = {"robustrag_realtimeqa": 2, "robustrag_simpleqa": 3, "poisonedrag": 4, "revprag_poison": 5}
RUN_FILES = {"trec_dl2019_bm25": "run_bm25_top100.tsv", "trec_dl2020_bm25": "run_bm25_top100.tsv",
             "trec_dl2021_bm25": "run_bm25_top100.tsv", "noveleval": "run_candidates.tsv"}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _tsv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")


def write_beir(folder: Path, queries: int) -> None:
    """``queries`` queries, two passages each (the first relevant), a BM25-style run and, for QA sets, qa.jsonl."""
    folder.mkdir(parents=True)
    docs = [{"_id": f"d{q}-{k}", "title": f"Topic {q}", "text": f"Passage {k} about topic {q}."}
            for q in range(queries) for k in range(2)]
    _jsonl(folder / "corpus.jsonl", docs)
    _jsonl(folder / "queries.jsonl", [{"_id": f"q{q}", "text": f"What about topic {q}?"} for q in range(queries)])
    _tsv(folder / "qrels.tsv", "query-id\tcorpus-id\tscore", [f"q{q}\td{q}-0\t2" for q in range(queries)])
    if folder.name in RUN_FILES:
        _tsv(folder / RUN_FILES[folder.name], "query-id\tcorpus-id\trank\tscore",
             [f"q{q}\td{q}-{k}\t{k + 1}\t{1.0 - k / 2}" for q in range(queries) for k in range(2)])
    if folder.name.endswith("_train100"):
        _jsonl(folder / "qa.jsonl", [{
            "id": f"q{q}", "question": f"What about topic {q}?", "answers": [f"answer {q}"],
            "contexts": [{"doc_id": f"d{q}-{k}", "title": f"Topic {q}", "text": f"Passage {k} about topic {q}.",
                          "is_supporting": k == 0} for k in range(2)],
            "supporting_doc_ids": [f"d{q}-0"]} for q in range(queries)])


def write_poison(folder: Path, questions: int) -> None:
    folder.mkdir(parents=True)
    _jsonl(folder / "poison.jsonl", [{
        "id": f"set:{q}", "question": f"Who wrote song {q}?", "correct_answer": "Ann", "correct_answers": ["Ann"],
        "target_answer": "Bob", "poisoned_texts": [f"Bob wrote song {q}."], "clean_texts": [f"Ann wrote song {q}."],
        "clean_contexts": [{"title": "Song", "text": f"Ann wrote song {q}.", "link": ""}]} for q in range(questions)])


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data folder with every dataset the benchmarks read, a few records each, in the shared formats."""
    root = tmp_path / "data"
    for name, n in BEIR_SETS.items():
        write_beir(root / name, n)
    for name, n in POISON_SETS.items():
        write_poison(root / name, n)
    return root


@pytest.fixture(autouse=True)
def no_data_variable(monkeypatch) -> None:
    monkeypatch.delenv("RAGPIPE_DATA", raising=False)


def script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAGPIPE_DATA"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env | extra


def run_script(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=script_env(**env), capture_output=True, text=True,
                          timeout=120)


# script argv, the dataset -> first file it checks, and a dataset whose removal must stop it.
SCRIPTS = {
    "bench_retrieval": (["eval/bench_retrieval.py"], {n: "queries.jsonl" for n in (
        "scifact_goldpool", "fiqa_goldpool", "hotpotqa_hipporag_train100", "musique_hipporag_train100")}),
    "bench_ingest": (["eval/bench_ingest.py"], {n: "corpus.jsonl" for n in BEIR_SETS}),
    "bench_latency_prepare": (["eval/bench_latency.py", "prepare"], {n: "corpus.jsonl" for n in (
        "trec_dl2019_bm25", "trec_dl2020_bm25", "trec_dl2021_bm25", "fiqa_goldpool", "scifact_goldpool",
        "hotpotqa_hipporag_train100", "musique_hipporag_train100")}),
    "bench_latency_run": (["eval/bench_latency.py", "run"], {n: "queries.jsonl" for n in (
        "trec_dl2019_bm25", "trec_dl2020_bm25", "trec_dl2021_bm25")}),
    "bench_selection": (["eval/bench_selection.py"], {n: "queries.jsonl" for n in (
        "hotpotqa_hipporag_train100", "musique_hipporag_train100", "scifact_goldpool", "fiqa_goldpool")}),
    "bench_selectors": (["eval/bench_selectors.py"], {n: "queries.jsonl" for n in (
        "trec_dl2019_bm25", "trec_dl2020_bm25", "noveleval", "trec_dl2021_bm25")}),
    "bench_poisoning": (["eval/bench_poisoning.py"], {n: "poison.jsonl" for n in POISON_SETS} | {
        n: "corpus.jsonl" for n in ("hotpotqa_hipporag_train100", "trec_dl2019_bm25")}),  # clean negatives
    "ragas_parity": (["eval/ragas_parity.py"], {"hotpotqa_hipporag_train100": "qa.jsonl"}),
}
RESULTS = {"bench_retrieval": "retrieval.json", "bench_ingest": "ingest.json", "bench_latency": "latency.json",
           "bench_selection": "selection.json", "bench_selectors": "selectors.json", "bench_poisoning": "poisoning.json",
           "ragas_parity": "ragas_parity.json", "bench_startup": "startup.json", "bench_llm": "llm.json",
           "bench_ask": "ask.json"}


def expected_count(dataset: str, file: str) -> int:
    n = BEIR_SETS.get(dataset) or POISON_SETS[dataset]
    return 2 * n if file == "corpus.jsonl" else n


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_check_data_lists_every_dataset_a_benchmark_needs_with_its_counts(script: str, data_root: Path) -> None:
    argv, needs = SCRIPTS[script]
    proc = run_script([*argv, "--data", str(data_root), "--check-data"])
    assert proc.returncode == 0, proc.stderr
    assert f"data folder {data_root} (chosen by --data)" in proc.stdout
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert set(lines) == set(needs)
    for dataset, file in needs.items():
        assert f"{file}: {expected_count(dataset, file)}" in lines[dataset]


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_missing_dataset_stops_a_benchmark_with_a_message_naming_folder_and_layout_doc(
        script: str, data_root: Path) -> None:
    argv, needs = SCRIPTS[script]
    dataset, file = next(reversed(needs.items()))
    (data_root / dataset / file).unlink()
    proc = run_script([*argv, "--data", str(data_root), "--check-data"])
    assert proc.returncode == 2 and not proc.stdout
    assert str(data_root / dataset) in proc.stderr and f"missing {file}" in proc.stderr
    assert "eval/datasets.md" in proc.stderr and "Traceback" not in proc.stderr


def test_benchmarks_honour_the_data_variable_and_say_when_the_folder_is_absent(data_root: Path, tmp_path) -> None:
    proc = run_script(["eval/bench_poisoning.py", "--check-data", "--datasets", "poisonedrag"],
                      RAGPIPE_DATA=str(data_root))
    assert proc.returncode == 0, proc.stderr
    assert "(chosen by RAGPIPE_DATA)" in proc.stdout and "poison.jsonl: 4" in proc.stdout
    # --data wins over the variable.
    proc = run_script(["eval/ragas_parity.py", "--data", str(tmp_path / "moved"), "--check-data"],
                      RAGPIPE_DATA=str(data_root))
    assert proc.returncode == 2
    assert f"data folder {tmp_path / 'moved'} (chosen by --data) does not exist" in proc.stderr
    assert "RAGPIPE_DATA" in proc.stderr and "eval/datasets.md" in proc.stderr


@pytest.mark.parametrize("script", list(RESULTS))
def test_every_benchmark_help_states_what_it_measures_the_data_and_the_json(script: str) -> None:
    proc = run_script([f"eval/{script}.py", "--help"])
    assert proc.returncode == 0, proc.stderr
    help_text = " ".join(proc.stdout.split())
    assert f"eval/results/{RESULTS[script]}" in help_text
    assert "Data" in help_text
    if script in ("bench_startup", "bench_llm", "bench_ask"):
        assert "no evaluation data" in help_text
    elif script != "bench_latency":  # its data flags are on the prepare/run sub-commands
        assert "--data DIR" in help_text and "--check-data" in help_text and "eval/datasets.md" in help_text


# -- the convention itself --------------------------------------------------------------------------


def test_the_flag_wins_over_the_variable_which_wins_over_the_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(datafolder, "DEFAULT_DATA", tmp_path / "default")
    assert resolve_data_root() == ((tmp_path / "default").resolve(), "default")
    monkeypatch.setenv("RAGPIPE_DATA", str(tmp_path / "env"))
    assert resolve_data_root() == ((tmp_path / "env").resolve(), "RAGPIPE_DATA")
    assert resolve_data_root(tmp_path / "flag") == ((tmp_path / "flag").resolve(), "--data")


def test_describe_records_each_dataset_and_file_count(data_root: Path) -> None:
    data = find_data(data_root, {"noveleval": ("queries.jsonl", "run_candidates.tsv"), "poisonedrag": ("poison.jsonl",)})
    assert data / "noveleval" == data_root / "noveleval"
    record = data.describe()
    assert record["chosen_by"] == "--data" and record["folder"] == str(data_root)
    assert record["datasets"] == {"noveleval": 6, "poisonedrag": 4}
    assert record["files"] == {"noveleval": {"queries.jsonl": 6, "run_candidates.tsv": 12},
                               "poisonedrag": {"poison.jsonl": 4}}
    json.dumps(record)  # goes into results files as is


def test_a_folder_beside_the_checkout_is_recorded_relative_to_it(tmp_path: Path, monkeypatch) -> None:
    checkout = tmp_path / "ragpipe"
    write_poison(tmp_path / "shared" / "data" / "poisonedrag", 1)
    monkeypatch.setattr(datafolder, "CHECKOUT", checkout)
    record = find_data(tmp_path / "shared" / "data", {"poisonedrag": ("poison.jsonl",)}).describe()
    assert record["folder"] == os.path.join("..", "shared", "data")


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "scifact_goldpool" / "queries.jsonl").write_text(""), "no records in queries.jsonl"),
    (lambda root: (root / "scifact_goldpool" / "corpus.jsonl").write_text('{"id": "d1", "text": "x"}\n'),
     "corpus.jsonl:1: record lacks _id"),
    (lambda root: (root / "scifact_goldpool" / "corpus.jsonl").write_text("not json\n"), "not valid JSON"),
    (lambda root: (root / "scifact_goldpool" / "qrels.tsv").write_text("q\td\t1\n"), "qrels.tsv: header"),
    (lambda root: os.rename(root / "scifact_goldpool", root / "scifact"), "scifact_goldpool: no such folder"),
])
def test_incomplete_or_misconverted_datasets_are_named(data_root: Path, damage, message: str) -> None:
    damage(data_root)
    with pytest.raises(DataError) as err:
        find_data(data_root, {"scifact_goldpool": BEIR, "fiqa_goldpool": BEIR})
    assert message in str(err.value) and "eval/datasets.md" in str(err.value)
    assert "fiqa_goldpool" not in str(err.value)  # the intact dataset is not blamed


def test_merged_results_record_the_datasets_of_every_run(data_root: Path) -> None:
    first = find_data(data_root, {"scifact_goldpool": BEIR}).describe()
    second = find_data(data_root, {"fiqa_goldpool": BEIR}).describe()
    merged = merge_descriptions([first, None, second])
    assert merged["folder"] == str(data_root) and merged["chosen_by"] == "--data"
    assert merged["datasets"] == {"scifact_goldpool": 2, "fiqa_goldpool": 3}
    assert merge_descriptions([None]) is None


# -- ragpipe eval -------------------------------------------------------------------------------------

CONFIG = """
name = "tiny"
[dataset]
path = "${RAGPIPE_DATA}/hotpotqa_hipporag_train100"
[settings]
llm__backend = "scripted"
[[variants]]
name = "fast"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_eval_config_data_argument_wins_over_the_variable(config: Path, data_root: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAGPIPE_DATA", str(tmp_path / "elsewhere"))
    cfg = load_eval_config(config, data=data_root)
    assert cfg.dataset.path == str(data_root.resolve() / "hotpotqa_hipporag_train100")


def test_eval_config_without_the_variable_uses_the_default_and_says_when_it_is_missing(
        config: Path, data_root: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(datafolder, "DEFAULT_DATA", data_root)
    assert load_eval_config(config).dataset.path == str(data_root.resolve() / "hotpotqa_hipporag_train100")
    monkeypatch.setattr(datafolder, "DEFAULT_DATA", tmp_path / "absent")
    with pytest.raises(DataError) as err:
        load_eval_config(config)
    assert f"{tmp_path / 'absent'} (chosen by default) does not exist" in str(err.value)
    assert "--data" in str(err.value) and "eval/datasets.md" in str(err.value)


def test_ragpipe_eval_data_option_finds_the_dataset(config: Path, data_root: Path, capsys) -> None:
    assert main(["eval", str(config), "--data", str(data_root), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["queries"] == BEIR_SETS["hotpotqa_hipporag_train100"]


def test_ragpipe_eval_with_a_data_folder_lacking_the_dataset_names_it(config: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", str(config), "--data", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "hotpotqa_hipporag_train100") in err and "eval/datasets.md" in err


def test_bench_ask_check_data_names_a_missing_docs_folder_and_passes_a_real_one(tmp_path: Path) -> None:
    proc = run_script(["eval/bench_ask.py", "--check-data", "--docs", str(tmp_path / "nowhere")])
    assert proc.returncode != 0 and f"documentation folder {tmp_path / 'nowhere'} does not exist" in proc.stderr
    (tmp_path / "docs").mkdir()
    proc = run_script(["eval/bench_ask.py", "--check-data", "--docs", str(tmp_path / "docs"), "--questions", "10"])
    assert proc.returncode == 0, proc.stderr
    assert "10 questions" in proc.stdout
