"""The runner over real Pipelines (in-memory retriever, scripted LLM): rows, failures, resume, reports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from ragpipe import Pipeline
from ragpipe.context import RunContext
from ragpipe.errors import ConfigError
from ragpipe.evaluate.checkpoint import Checkpoint
from ragpipe.evaluate.config import MetricsConfig
from ragpipe.evaluate.datasets import EvalDataset, file_name, load_dataset
from ragpipe.evaluate.report import PLOTS, write_report
from ragpipe.evaluate.runner import PipelineVariant, run_eval
from ragpipe.evaluate.scoring import Scorer, source_doc_id
from ragpipe.graph import AcceptNode, GenerateNode, RetrieveNode, SelectNode, Sequence
from ragpipe.graph.memory import InMemoryRetriever
from ragpipe.llm.base import ChatRequest
from ragpipe.llm.scripted import ScriptedLLM
from ragpipe.schema import Chunk, TraceEvent, Usage


class KeepTop:
    """A selector double keeping the first ``n`` candidates and reporting its elbow."""

    name = "keeptop"

    def __init__(self, n: int) -> None:
        self.n = n

    async def select(self, question, candidates, ctx):
        event = TraceEvent(node="keeptop", kind="cutoff", data={"elbow_index": self.n - 1})
        return SimpleNamespace(ranked=candidates, kept=candidates[: self.n], trace=[event], usage=Usage(),
                               extras={}, cutoff=None)


def chunks_of(dataset: EvalDataset) -> list[Chunk]:
    return [Chunk(id=f"c-{doc.id}", doc_id=doc.id, position=0, text=doc.text, source=file_name(doc.id))
            for doc in dataset.documents.values()]


def answer_from_evidence(request: ChatRequest) -> str:
    """The generator double: repeats the first colour word of the evidence, with a citation."""
    found = re.search(r"colour\d", request.messages[-1].content)  # the question itself names no colour
    return f"It is {found.group(0)} [1]." if found else "Not found in the documents."


def judge_reply(request: ChatRequest) -> str:
    """A judge double: correct when the answer quotes a gold colour; q3 gets prose (a parse error)."""
    text = request.messages[-1].content
    if "item3" in text:
        return "The answer looks right to me."
    if "Gold answer" in text:
        found = re.search(r"It is (colour\d)", text)
        return json.dumps({"match": found.group(1) if found else "", "correct": bool(found)})
    return json.dumps({"reason": "r", "verdict": int("The colour of" in text)})


def make_variants(dataset: EvalDataset, llm: ScriptedLLM, fail_on: str | None = None) -> list[PipelineVariant]:
    def pipeline(n: int) -> Pipeline:
        graph = Sequence.of(RetrieveNode(retriever=InMemoryRetriever(chunks_of(dataset), top_k=4)),
                            SelectNode(method="keeptop", selector=KeepTop(n)), AcceptNode(), GenerateNode())
        return Pipeline(graph, RunContext(llm=llm))

    class Flaky(PipelineVariant):
        async def run(self, query):
            if query.id == fail_on:
                raise RuntimeError("index went away")
            return await super().run(query)

    return [PipelineVariant("top1", pipeline(1)), Flaky("top2", pipeline(2))]


def make_scorer(dataset: EvalDataset, judge: ScriptedLLM | None = None) -> Scorer:
    stems = {Path(file_name(d)).stem: d for d in dataset.documents}
    metrics = MetricsConfig(ir=["ndcg@10", "mrr"], judged=["correctness", "context_precision"] if judge else [])
    return Scorer(metrics, source_doc_id(stems), count_tokens=lambda t: len(t.split()), judge_llm=judge)


async def test_rows_cover_every_pair_and_a_failed_run_is_counted(qa_dir: Path, tmp_path: Path) -> None:
    dataset = load_dataset(qa_dir)
    llm, judge = ScriptedLLM(fn=answer_from_evidence), ScriptedLLM(fn=judge_reply)
    rows = await run_eval(dataset.queries, make_variants(dataset, llm, fail_on="q2"), make_scorer(dataset, judge),
                          Checkpoint(tmp_path / "out", "fp"), progress=False)
    assert [(r["variant"], r["query_id"]) for r in rows] == [(v, f"q{i}") for i in range(4) for v in ("top1", "top2")]
    ok = next(r for r in rows if r["variant"] == "top1" and r["query_id"] == "q0")
    assert ok["answer"] == "It is colour0 [1]." and ok["evidence_docs"] == ["gold-0"]
    assert ok["metrics"]["exact_match"]["value"] == 0.0 and ok["metrics"]["token_f1"]["value"] == pytest.approx(0.5)
    assert ok["metrics"]["ndcg@10"]["value"] == 1.0 and ok["metrics"]["correctness"]["value"] == 1.0
    assert ok["metrics"]["chunks_kept"]["value"] == 1.0 and ok["cost"]["calls"] == 1
    assert ok["cost"]["judge"]["calls"] == 2  # correctness + one context verdict
    assert ok["curve"]["elbow_index"] == 0 and len(ok["curve"]["scores"]) >= 2
    failed = next(r for r in rows if r["variant"] == "top2" and r["query_id"] == "q2")
    assert failed["status"] == "error" and "index went away" in failed["error"]
    assert failed["metrics"]["correctness"]["status"] == "error"
    assert next(r for r in rows if r["query_id"] == "q3")["metrics"]["correctness"]["status"] == "parse_error"


class Interrupt(Exception):
    pass


async def test_an_interrupted_run_resumes_without_duplicates(qa_dir: Path, tmp_path: Path) -> None:
    dataset = load_dataset(qa_dir)
    llm = ScriptedLLM(fn=answer_from_evidence)
    checkpoint = Checkpoint(tmp_path / "out", "fp")
    seen: list[dict] = []

    def stop_after_three(row: dict) -> None:
        seen.append(row)
        if len(seen) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        await run_eval(dataset.queries, make_variants(dataset, llm), make_scorer(dataset), checkpoint,
                       progress=False, on_row=stop_after_three)
    assert len(llm.requests) == 3
    # A crash in the middle of a write leaves half a line; it must not poison the file.
    with checkpoint.path.open("a") as fh:
        fh.write('{"variant": "top1", "query_')
    rows = await run_eval(dataset.queries, make_variants(dataset, llm), make_scorer(dataset), checkpoint,
                          progress=False)
    assert len(rows) == 8 and len(llm.requests) == 8  # only the 5 missing pairs ran again
    lines = [json.loads(line) for line in checkpoint.path.read_text().splitlines()]
    pairs = [(r["variant"], r["query_id"]) for r in lines]
    assert len(pairs) == len(set(pairs)) == 8


async def test_resume_refuses_a_checkpoint_of_another_config_and_no_resume_starts_over(
        qa_dir: Path, tmp_path: Path) -> None:
    dataset = load_dataset(qa_dir)
    llm = ScriptedLLM(fn=answer_from_evidence)
    await run_eval(dataset.queries[:1], make_variants(dataset, llm), make_scorer(dataset),
                   Checkpoint(tmp_path / "out", "A"), progress=False)
    with pytest.raises(ConfigError, match="--no-resume"):
        Checkpoint(tmp_path / "out", "B").open(resume=True)
    rows = await run_eval(dataset.queries[:1], make_variants(dataset, llm), make_scorer(dataset),
                          Checkpoint(tmp_path / "out", "B"), resume=False, progress=False)
    assert len(rows) == 2 and len(llm.requests) == 4


def _table_cells(markdown: str) -> dict[tuple[str, str], str]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:
        values = [c.strip() for c in line.strip("|").split("|")]
        if len(values) != len(header):
            break
        for name, value in zip(header[1:], values[1:]):
            cells[(values[0], name)] = value
    return cells


async def test_report_files_plots_and_tables_match_the_json(qa_dir: Path, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    dataset = load_dataset(qa_dir)
    rows = await run_eval(dataset.queries, make_variants(dataset, ScriptedLLM(fn=answer_from_evidence), "q1"),
                          make_scorer(dataset, ScriptedLLM(fn=judge_reply)), Checkpoint(tmp_path / "out", "fp"),
                          progress=False)
    report = write_report(tmp_path / "out", config={"name": "tiny", "seed": 3}, dataset={"name": "qa", "kind": "qa"},
                          rows=rows, variants=["top1", "top2"], command="ragpipe eval tiny.toml")
    out = tmp_path / "out"
    for name in ("report.json", "summary.md", *PLOTS):
        assert (out / name).is_file(), name
    for name in PLOTS:
        image = mpimg.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100
    saved = json.loads((out / "report.json").read_text())
    assert saved["seed"] == 3 and saved["versions"]["python"] and len(saved["rows"]) == 8
    assert saved["aggregates"]["top2"]["n_failed_runs"] == 1
    cells = _table_cells((out / "summary.md").read_text())
    checked = 0
    for variant, agg in saved["aggregates"].items():
        for metric, values in agg["metrics"].items():
            cell = cells[(variant, metric)]
            expected = "n/a" if values["mean"] is None else f"{values['mean']:.3f}"
            assert cell == f"{expected} ({values['n_valid']}/{values['n']})", (variant, metric)
            checked += 1
    assert checked >= 16
    # The judge's prose for q3 is counted as a parse error, not averaged in as zero.
    correctness = saved["aggregates"]["top1"]["metrics"]["correctness"]
    assert correctness["statuses"].get("parse_error") == 1 and correctness["n_valid"] == 3
    assert report["aggregates"]["top1"]["metrics"]["correctness"]["mean"] == correctness["mean"]


async def test_poisoning_rows_score_detection_by_document_and_aggregate_micro(poison_dir: Path, tmp_path: Path) -> None:
    from ragpipe.evaluate.report import aggregate_variant
    from ragpipe.evaluate.scoring import QueryRun
    from ragpipe.schema import Answer, DroppedEvidence, ScoredChunk

    dataset = load_dataset(poison_dir)
    query = dataset.queries[0]
    chunk = {c.doc_id: ScoredChunk(chunk=c, score=1.0) for c in chunks_of(dataset)}
    clean = next(d for d in query.doc_ids if d not in query.poisoned_doc_ids)
    p1, p2 = query.poisoned_doc_ids
    answer = Answer(question=query.question, text="Frank Sinatra recorded it [1].", evidence=[chunk[p1], chunk[clean]],
                    dropped=[DroppedEvidence(chunk=chunk[p2], reason="planted")])
    row = await make_scorer(dataset).score("v", query, QueryRun(answer=answer, candidates=list(chunk.values())))
    m = row["metrics"]
    assert row["evidence_docs"] == [p1, clean] and row["dropped_docs"] == [p2]
    assert m["attack_success"]["value"] == 1.0 and m["poison_in_evidence"]["value"] == 1.0
    assert m["detection_precision"]["value"] == 1.0 and m["detection_recall"]["value"] == 0.5
    assert m["clean_dropped"]["value"] == 0.0
    assert "ndcg@10" not in m  # no relevance labels in poisoning sets
    agg = aggregate_variant([row, {**row, "poison_counts": {"tp": 0, "fp": 1, "fn": 0, "tn": 0}}])
    assert agg["detection_micro"]["detection_precision"]["value"] == 0.5
