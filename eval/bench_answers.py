"""QA benchmark of the answer modes: does the user get the answer, and is it a real one?

    flock /tmp/llm-bench.lock python eval/bench_answers.py --models smollm2 --limit 16
    flock /tmp/llm-bench.lock python eval/bench_answers.py --models qwen --qwen PATH.gguf --limit 16

Sets: HotpotQA and MuSiQue dev questions (the first ``--limit`` of each; their paragraphs, all
questions' together, form the corpus) and a folder of real HTML documentation (npm's "using npm"
pages as installed with Node.js, read in place; questions and gold answers in
``eval/answers_npm_docs.json``). Retrieval is the ``fast`` preset without the verifier, so the
figures isolate the answer step.

Per set and model, each answer mode:
- ``baseline``: the first generated answer as it stood before degenerate-answer handling
  (read from the trace of the auto run: same call, same text);
- ``generate``: generated answers with one retry; abstains when both are degenerate (derived
  from the auto run: auto's answer, except where auto quoted the evidence: there the answer auto
  replaced as weaker than the quote, or an abstention when generation stayed degenerate);
- ``extractive``: quoted evidence sentences, no LLM (its own run);
- ``auto``: generate, quote the evidence when generation stays degenerate or when the quote
  answers better than the generated answer or abstention (its own run).
Metrics: answer contains a gold answer (normalised), token F1, share of degenerate answers that
reach the user, share of abstentions, share citing a chunk that holds a gold answer, seconds per
question. Writes ``eval/results/answers.json`` (results of earlier runs for other set/model pairs
are kept, so the models can run in separate invocations).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from datapaths import add_data_arguments, open_data  # noqa: E402

from ragpipe.evaluate.answers import contains_answer, token_f1  # noqa: E402
from ragpipe.generate.abstain import NOT_FOUND_TEXT  # noqa: E402
from ragpipe.generate.degenerate import degenerate_reason  # noqa: E402

QA_SETS = {"hotpotqa": "hotpotqa_hipporag_train100", "musique": "musique_hipporag_train100"}
DOCS_SET = "npm_docs"
DEFAULT_DOCS = Path("/usr/lib/node_modules/npm/docs/output/using-npm")
DOCS_QUESTIONS = ROOT / "eval" / "answers_npm_docs.json"
# "qwen" is Qwen2.5-Coder-0.5B-Instruct GGUF; its path comes from --qwen or RAGPIPE_BENCH_QWEN_GGUF.
MODELS: dict[str, str | None] = {"smollm2": None, "qwen": os.environ.get("RAGPIPE_BENCH_QWEN_GGUF")}
MODES = ("baseline", "generate", "extractive", "auto")
RESULTS = ROOT / "eval" / "results" / "answers.json"
WORK = Path(tempfile.gettempdir()) / "ragpipe-bench-answers"


# -- data -------------------------------------------------------------------------------------
def qa_questions(path: Path, limit: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return rows[:limit]


def write_corpus(name: str, rows: list[dict[str, Any]]) -> Path:
    """The paragraphs of ``rows`` as one text file each (title first), outside the repository."""
    folder = WORK / name / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        for ctx in row["contexts"]:
            path = folder / f"{ctx['doc_id']}.txt"
            if not path.exists():
                path.write_text(f"{ctx['title']}\n\n{ctx['text']}\n", encoding="utf-8")
    return folder


def load_sets(args: argparse.Namespace) -> dict[str, tuple[Path, list[dict[str, Any]]]]:
    sets: dict[str, tuple[Path, list[dict[str, Any]]]] = {}
    wanted = args.sets.split(",")
    qa_wanted = {k: v for k, v in QA_SETS.items() if k in wanted}
    if qa_wanted:
        data = open_data(args, {folder: ("qa.jsonl",) for folder in qa_wanted.values()})
        for name, folder in qa_wanted.items():
            rows = qa_questions(data / folder / "qa.jsonl", args.limit)
            sets[name] = (write_corpus(name, rows), rows)
    if DOCS_SET in wanted:
        docs = Path(args.docs)
        if not docs.is_dir():
            raise SystemExit(f"error: documentation folder {docs} does not exist; pass --docs DIR")
        spec = json.loads(DOCS_QUESTIONS.read_text(encoding="utf-8"))
        rows = [{"id": f"npm-{i}", "question": q["question"], "answers": q["answers"]}
                for i, q in enumerate(spec["questions"])]
        sets[DOCS_SET] = (docs, rows)
    return {name: sets[name] for name in wanted if name in sets}  # in the order asked for


# -- running ----------------------------------------------------------------------------------
def settings_for(name: str, model: str, answer: str) -> Any:
    from ragpipe.config import load_settings

    return load_settings(method="fast", verify=False, answer=answer, retrieval__top_k=5,
                         store__path=str(WORK / name / "index"), llm__model_path=MODELS[model],
                         llm__n_threads=2, llm__context_window=4096)


class CallTimer:
    """Times each completion of the shared LLM, so the first call can be told from the retry."""

    def __init__(self, llm: Any) -> None:
        self.seconds: list[float] = []
        inner = llm.complete

        async def timed(request: Any) -> Any:
            start = time.perf_counter()
            try:
                return await inner(request)
            finally:
                self.seconds.append(time.perf_counter() - start)

        llm.complete = timed


def replaced_answer(answer: Any) -> tuple[str, list[str], bool] | None:
    """The usable generated answer (text, cited chunk ids, abstained) that auto replaced by a quote
    because the evidence answered better; None when auto kept it or had none."""
    for event in answer.trace:
        if event.kind == "extractive" and "replaced" in event.data:
            replaced = event.data["replaced"]
            return replaced["text"], list(replaced["cited"]), bool(replaced["abstained"])
    return None


def first_attempt(answer: Any) -> tuple[str, list[str], bool]:
    """The first generated answer (text, cited chunk ids, abstained) as the trace recorded it."""
    for event in answer.trace:
        if event.kind == "degenerate":
            text = event.data.get("text", "")
            return text, list(event.data.get("cited", [])), not text.strip()
    return replaced_answer(answer) or (answer.text, [c.chunk_id for c in answer.citations], answer.abstained)


def score(question: str, text: str, cited: list[str], abstained: bool, golds: list[str],
          evidence: list[Any], seconds: float) -> dict[str, Any]:
    shown = NOT_FOUND_TEXT if abstained else text
    reason = None if abstained else degenerate_reason(text, question, evidence)
    texts = {e.id: e.chunk.text for e in evidence}
    return {
        "text": shown,
        "contains": contains_answer(shown, golds),
        "f1": token_f1(shown, golds).value or 0.0,
        "degenerate": reason,
        "abstained": abstained,
        "cites_answer_chunk": any(contains_answer(texts.get(cid, ""), golds) for cid in cited),
        "seconds": round(seconds, 3),
    }


def run_set(name: str, folder: Path, rows: list[dict[str, Any]], model: str, llm: Any, timer: CallTimer,
            save: Any = None) -> dict[str, Any]:
    """Every mode on every question of one set; ``save`` gets the summary so far after each one."""
    from ragpipe.ingest.indexer import index_folder, open_index
    from ragpipe.pipeline import Pipeline

    settings = settings_for(name, model, "auto")
    index_folder(folder, settings)  # incremental: adds the paragraphs of a larger --limit
    index = open_index(folder, settings)
    pipes = {mode: Pipeline.from_settings(index=index, llm=llm, settings=settings, answer=mode)
             for mode in ("extractive", "auto")}
    per_query = []
    for row in rows:
        question, golds = row["question"], list(row["answers"])
        record: dict[str, Any] = {"id": row["id"], "gold": golds}
        start = time.perf_counter()
        extracted = pipes["extractive"].ask(question)
        record["extractive"] = score(question, extracted.text, [c.chunk_id for c in extracted.citations],
                                     extracted.abstained, golds, extracted.evidence,
                                     time.perf_counter() - start)
        timer.seconds.clear()
        start = time.perf_counter()
        answer = pipes["auto"].ask(question, trace=True)
        total = time.perf_counter() - start
        evidence = answer.evidence
        record["evidence_holds_answer"] = any(contains_answer(e.chunk.text, golds) for e in evidence)
        record["auto"] = score(question, answer.text, [c.chunk_id for c in answer.citations], answer.abstained,
                               golds, evidence, total)
        record["auto"]["mode"] = answer.mode
        record["auto"]["preferred_quote"] = replaced_answer(answer) is not None
        extract_s = sum(e.data.get("seconds", 0.0) for e in answer.trace if e.kind == "extractive")
        replaced = replaced_answer(answer)
        if replaced is not None:  # generate mode would have given the answer auto replaced
            record["generate"] = score(question, *replaced, golds, evidence, total - extract_s)
        elif answer.mode == "extracted":
            record["generate"] = score(question, NOT_FOUND_TEXT, [], True, golds, evidence, total - extract_s)
        else:
            record["generate"] = dict(record["auto"])
        retry_s = sum(timer.seconds[1:])
        text, cited, abstained = first_attempt(answer)
        record["baseline"] = score(question, text, cited, abstained, golds, evidence, total - extract_s - retry_s)
        record["llm_calls"] = len(timer.seconds)
        per_query.append(record)
        keep_trace(name, model, row, answer)
        print(f"  {name}/{model} {row['id']}: auto={answer.mode} contains="
              f"{record['auto']['contains']} extractive={record['extractive']['contains']} "
              f"baseline={record['baseline']['contains']} {total:.1f}s", flush=True)
        if save is not None and len(per_query) < len(rows):
            save({**summarise(per_query), "partial": True})
    return summarise(per_query)


def keep_trace(name: str, model: str, row: dict[str, Any], answer: Any) -> None:
    """Evidence and every generated text of one question, outside the repository (it holds passages):
    the material for tuning the answer checks offline, without running the models again."""
    path = WORK / f"trace-{name}-{model}.jsonl"
    attempts = [e.data.get("text", "") for e in answer.trace if e.kind == "degenerate"]
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({
            "id": row["id"], "question": row["question"], "gold": list(row["answers"]),
            "evidence": [{"id": e.id, "text": e.chunk.text} for e in answer.evidence],
            "final": answer.text, "mode": answer.mode, "degenerate_attempts": attempts,
            "trace": [{"kind": e.kind, "message": e.message} for e in answer.trace if e.node == "generate"],
        }) + "\n")


def summarise(per_query: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(per_query)

    def mean(mode: str, key: str) -> float:
        return round(sum(float(bool(q[mode][key])) if key != "f1" and key != "seconds" else q[mode][key]
                         for q in per_query) / n, 4)

    modes = {
        mode: {
            "contains_gold": mean(mode, "contains"),
            "token_f1": mean(mode, "f1"),
            "degenerate_share": mean(mode, "degenerate"),
            "abstained_share": mean(mode, "abstained"),
            "cites_answer_chunk": mean(mode, "cites_answer_chunk"),
            "seconds_per_question": mean(mode, "seconds"),
        }
        for mode in MODES
    }
    best_single = max(modes["generate"]["contains_gold"], modes["extractive"]["contains_gold"])
    wtl = {}
    for other in ("baseline", "generate", "extractive"):
        wins = sum(q["auto"]["contains"] and not q[other]["contains"] for q in per_query)
        losses = sum(q[other]["contains"] and not q["auto"]["contains"] for q in per_query)
        wtl[f"auto_vs_{other}"] = {"wins": wins, "ties": n - wins - losses, "losses": losses}
    return {
        "questions": n,
        "evidence_holds_answer": round(sum(q["evidence_holds_answer"] for q in per_query) / n, 4),
        "auto_extracted_share": round(sum(q["auto"]["mode"] == "extracted" for q in per_query) / n, 4),
        "auto_preferred_quote_share": round(sum(q["auto"].get("preferred_quote", False) for q in per_query) / n, 4),
        "modes": modes,
        "goal_auto_ge_best_single": modes["auto"]["contains_gold"] >= best_single,
        "wins_ties_losses": wtl,
        "per_query": per_query,
    }


# -- output -----------------------------------------------------------------------------------
def print_table(runs: dict[str, Any]) -> None:
    print(f"\n{'set/model':24} {'mode':10} {'contains':>8} {'F1':>6} {'degen':>6} {'abst':>6} {'cites':>6} {'s/q':>6}")
    for key, run in sorted(runs.items()):
        for mode in MODES:
            m = run["modes"][mode]
            print(f"{key:24} {mode:10} {m['contains_gold']:8.3f} {m['token_f1']:6.3f} {m['degenerate_share']:6.3f} "
                  f"{m['abstained_share']:6.3f} {m['cites_answer_chunk']:6.3f} {m['seconds_per_question']:6.2f}")
        w = run["wins_ties_losses"]
        print(f"{'':24} auto vs generate W/T/L {w['auto_vs_generate']['wins']}/{w['auto_vs_generate']['ties']}/"
              f"{w['auto_vs_generate']['losses']}, vs extractive {w['auto_vs_extractive']['wins']}/"
              f"{w['auto_vs_extractive']['ties']}/{w['auto_vs_extractive']['losses']}; evidence holds answer "
              f"{run['evidence_holds_answer']:.3f}; goal auto >= best: {run['goal_auto_ge_best_single']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--sets", default="hotpotqa,musique,npm_docs")
    parser.add_argument("--models", default="smollm2,qwen")
    parser.add_argument("--qwen", default=None, metavar="GGUF",
                        help="path of the Qwen2.5-Coder-0.5B-Instruct GGUF file (or RAGPIPE_BENCH_QWEN_GGUF)")
    parser.add_argument("--limit", type=int, default=16, help="questions per QA set")
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="documentation folder of the npm_docs set")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    sets = load_sets(args)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    runs = previous.get("runs", {})
    from ragpipe.llm.factory import build_llm

    for model in args.models.split(","):
        if model not in MODELS:
            raise SystemExit(f"error: unknown model '{model}'; choose from {', '.join(MODELS)}")
        if model == "qwen":
            MODELS["qwen"] = args.qwen or MODELS["qwen"]
            if not MODELS["qwen"]:
                raise SystemExit("error: the qwen model needs --qwen GGUF (or RAGPIPE_BENCH_QWEN_GGUF)")
        llm = build_llm(settings_for("probe", model, "auto"))
        timer = CallTimer(llm)
        for name, (folder, rows) in sets.items():
            key = f"{name}/{model}"
            start = time.perf_counter()

            def save(run: dict[str, Any], key: str = key, start: float = start) -> None:
                run["wall_seconds"] = round(time.perf_counter() - start, 1)
                runs[key] = run
                write_results(out, runs, args.docs)

            save(run_set(name, folder, rows, model, llm, timer, save))
    print_table({k: v for k, v in runs.items()})


def write_results(out: Path, runs: dict[str, Any], docs: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "description": "Answer modes on HotpotQA, MuSiQue (dev) and npm's HTML docs: fast retrieval "
                       "(top 5, score-elbow cutoff, no verifier), SmolLM2-135M and Qwen2.5-Coder-0.5B.",
        "derived_modes": "baseline and generate are read from the auto run's trace (same LLM calls)",
        "docs_folder": str(Path(docs)),
        "runs": runs,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
