"""Poisoning benchmark: how well each defence finds planted passages, and what reaches the answer.

    python eval/bench_poisoning.py [--data DIR] [--limit 50] [--llm-limit 20] [--model PATH] [--datasets ...]
    python eval/bench_poisoning.py --merge A.json B.json --out eval/results/poisoning.json

Data: ``poison.jsonl`` of each ``--datasets`` folder, by default ``robustrag_realtimeqa``,
``robustrag_simpleqa``, ``poisonedrag`` and ``revprag_poison``; layout in ``eval/datasets.md``.

Per question of ``robustrag_realtimeqa`` / ``robustrag_simpleqa`` the candidate pool is the
``--top-k`` passages (clean search snippets + the 5 poisoned passages) closest to the question
under the packaged MiniLM embedder, i.e. what a dense retriever would hand the verifier.
``poisonedrag`` / ``revprag_poison`` ship no clean passages, so their 5 poisoned texts are injected
into a clean corpus made of other shared datasets (``--negatives``: Wikipedia paragraphs and MS
MARCO passages, as PoisonedRAG injects into NQ/HotpotQA/MS MARCO) and the pool is the ``--top-k``
closest of all: the planted texts plus the honest passages a retriever would return beside them,
none of which answers the question. ``--negatives`` with no dataset keeps the old pool of the 5
planted texts alone (then only the share flagged means anything).

Defences: ``none``; each cheap signal alone (``instruction``, ``query_echo``,
``near_duplicate``, ``uncorroborated``) and combined (``ragpipe_cheap``), over ``--limit`` questions; on the first
``--llm-limit`` of them: ``ragpipe`` (the default verifier, ``Verifier()``: cheap signals, a
listwise LLM flag check over the chunks they kept, then a listwise short-answer call for
``answer_consistency`` only when a chunk carries a weak hint: two calls at most),
``llm_listwise`` (that check's flags alone), ``answer_consistency`` (that signal alone),
``ragpipe_two_call`` on the first ``--two-call-limit`` (``Verifier(llm_mode="listwise")``, the
same configuration as the default spelled out; with ``--cache`` its calls replay ``ragpipe``'s),
``ragpipe_robust`` (``Verifier(**ROBUST)``: one isolated answer per kept chunk instead of the
listwise answers), and the baselines
``perplexity`` and ``llm_per_chunk`` (one LLM call per chunk) on the first ``--baseline-limit``.
Answers come from ragpipe's generator (``answer.cited`` prompt, ``--answer-tokens`` tokens) over
each defence's kept evidence. ``--model`` runs a GGUF file instead of the packaged SmolLM2 (one
results file per model). Results: a table on stdout and ``eval/results/poisoning*.json``
(``--out``): per dataset and defence precision, recall, F1, clean passages dropped and share
flagged, ASR and accuracy of the answers, LLM usage; ``data``: the data folder and the record
counts it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

from datapaths import add_data_arguments, merge_descriptions, open_data  # noqa: E402
from ragpipe.config import EmbeddingSettings, load_settings  # noqa: E402
from ragpipe.context import RunContext  # noqa: E402
from ragpipe.schema import Chunk, ScoredChunk, Usage  # noqa: E402
from ragpipe.verify import Verifier  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QA_SETS = ("robustrag_realtimeqa", "robustrag_simpleqa")
POISON_ONLY_SETS = ("poisonedrag", "revprag_poison")
CHEAP = ("instruction", "query_echo", "near_duplicate", "uncorroborated")
# Wikipedia paragraphs (for the NQ and HotpotQA questions) and MS MARCO passages (for MS MARCO's).
NEGATIVES = ("hotpotqa_hipporag_train100", "trec_dl2019_bm25")


# -- the local LLM ------------------------------------------------------------------------------

def build_local_llm(model_path: str | None = None, cache: str | None = None) -> Any:
    """The embedded llama.cpp LLM (the packaged SmolLM2, or ``model_path``), one call at a time.

    With ``cache`` (a folder) replies are kept on disk: a rerun that changes only how the verifier
    decides replays the same LLM replies instead of waiting for them again.
    """
    from ragpipe.llm.factory import build_llm

    overrides: dict[str, Any] = {"llm__max_concurrency": 1, "cache__enabled": cache is not None}
    if cache is not None:
        overrides["cache__path"] = cache
    if model_path:
        if not Path(model_path).is_file():
            raise SystemExit(f"--model {model_path}: no such GGUF file")
        overrides.update(llm__model_path=model_path, llm__model=Path(model_path).stem)
    return build_llm(load_settings(**overrides))


# -- data ---------------------------------------------------------------------------------------

def load_rows(folder: Path, limit: int) -> list[dict[str, Any]]:
    rows = []
    with (folder / "poison.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("poisoned_text_is_refusal") and all(row["poisoned_text_is_refusal"]):
                continue
            rows.append(row)
            if len(rows) >= limit:
                break
    return rows


def as_scored(texts: list[str], poisoned: list[bool], qid: str) -> list[ScoredChunk]:
    out = []
    for i, (text, bad) in enumerate(zip(texts, poisoned)):
        chunk = Chunk(id=f"{qid}#{i}", doc_id=f"{qid}#{i}", position=0, text=text, metadata={"poisoned": bad})
        out.append(ScoredChunk(chunk=chunk, score=0.0, rank=i + 1))
    return out


class CleanCorpus:
    """Clean passages of other shared datasets, embedded once: the honest part of the corpus that
    planted texts are injected into when a dataset ships no clean passages of its own."""

    def __init__(self, texts: list[str], embedder: Any, cache: str | None = None) -> None:
        self.texts = texts
        digest = hashlib.sha256("\n".join([getattr(embedder, "name", "?"), *texts]).encode("utf-8")).hexdigest()[:16]
        stored = Path(cache) / f"negatives-{digest}.npy" if cache else None
        if stored is not None and stored.is_file():  # embedding thousands of passages takes minutes on a laptop
            self.vectors = np.load(stored)
            return
        self.vectors = embedder.embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        if stored is not None:
            stored.parent.mkdir(parents=True, exist_ok=True)
            np.save(stored, self.vectors)


def load_negatives(folders: list[Path], per_folder: int) -> list[str]:
    texts: list[str] = []
    for folder in folders:
        with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if n >= per_folder:
                    break
                doc = json.loads(line)
                texts.append(" ".join(t for t in (doc.get("title"), doc.get("text")) if t))
    return texts


def candidate_pool(row: dict[str, Any], embedder: Any, top_k: int, negatives: CleanCorpus | None = None
                   ) -> list[ScoredChunk]:
    """The top_k passages by cosine to the question, best first (a dense retriever's view).

    A row without clean passages (PoisonedRAG, RevPRAG) is retrieved from its poisoned texts
    injected into ``negatives``: a corpus that holds honest text, none of it about the question.
    """
    texts = list(row["clean_texts"]) + list(row["poisoned_texts"])
    poisoned = [False] * len(row["clean_texts"]) + [True] * len(row["poisoned_texts"])
    if not row["clean_texts"] and negatives is None:
        return as_scored(texts, poisoned, row["id"])
    vectors = embedder.embed(texts)
    query = embedder.embed_query(row["question"])
    scores = vectors @ query
    if not row["clean_texts"] and negatives is not None and len(negatives.texts):
        texts = list(row["poisoned_texts"]) + negatives.texts
        poisoned = [True] * len(row["poisoned_texts"]) + [False] * len(negatives.texts)
        scores = np.concatenate([scores, negatives.vectors @ query])
    order = [int(i) for i in np.argsort(-scores)[:top_k]]
    pool = as_scored([texts[i] for i in order], [poisoned[i] for i in order], row["id"])
    return [c.model_copy(update={"score": float(scores[i])}) for c, i in zip(pool, order)]


# -- metrics ------------------------------------------------------------------------------------

class Tally:
    """Detection counts for one defence over many chunks."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.tn = 0

    def add(self, flagged: bool, poisoned: bool) -> None:
        if poisoned:
            self.tp += flagged
            self.fn += not flagged
        else:
            self.fp += flagged
            self.tn += not flagged

    def report(self) -> dict[str, Any]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        clean = self.fp + self.tn
        return {
            "precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3),
            "clean_dropped_rate": round(self.fp / clean, 3) if clean else None,
            "flagged_share": round((self.tp + self.fp) / max(1, self.tp + self.fp + self.fn + self.tn), 3),
            "poisoned_chunks": self.tp + self.fn, "clean_chunks": clean,
        }


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def contains(answer: str, options: list[str]) -> bool:
    norm = normalise(answer)
    return any(normalise(o) and normalise(o) in norm for o in options)


# -- runs ---------------------------------------------------------------------------------------

async def detect_cheap(rows: list[dict[str, Any]], embedder: Any, top_k: int, negatives: CleanCorpus | None = None,
                       ) -> tuple[dict[str, Tally], list[list[ScoredChunk]]]:
    """Every cheap signal alone and their combination (no LLM) over all rows."""
    tallies = {name: Tally() for name in ("none", *CHEAP, "ragpipe_cheap", "ragpipe_cheap_cluster_hard")}
    ctx = RunContext(llm=None, embedder=embedder)
    verifier = Verifier(signals=CHEAP)
    pools = []
    for row in rows:
        pool = candidate_pool(row, embedder, top_k, negatives)
        pools.append(pool)
        result = await verifier.verify(row["question"], pool, ctx)
        for chunk, verdict in zip(pool, result.verdicts):
            bad = chunk.chunk.metadata["poisoned"]
            tallies["none"].add(False, bad)
            for name in CHEAP:
                tallies[name].add(bool(verdict.signals[name]), bad)
            tallies["ragpipe_cheap"].add(not verdict.keep, bad)
            # The same signals with near_duplicate as a hard signal (weights={"near_duplicate": 1.0}).
            tallies["ragpipe_cheap_cluster_hard"].add(bool(verdict.signals["instruction"] or verdict.signals[
                "near_duplicate"]), bad)
    return tallies, pools


def _usage_of(ctx: RunContext) -> Usage:
    return ctx.meter.by_node().get("verify", Usage())


async def _timed_verify(verifier: Verifier, question: str, pool: list[ScoredChunk], llm: Any, embedder: Any
                        ) -> tuple[Any, float, Usage]:
    ctx = RunContext(llm=llm, embedder=embedder)
    start = time.perf_counter()
    result = await verifier.verify(question, pool, ctx)
    return result, time.perf_counter() - start, _usage_of(ctx)


async def detect_with_llm(
    rows: list[dict[str, Any]], pools: list[list[ScoredChunk]], llm: Any, embedder: Any, answer_tokens: int,
    baseline_limit: int, robust_limit: int, two_call_limit: int = 0,
) -> dict[str, Any]:
    """The default verifier (cheap signals + at most two listwise calls), the robust mode, and the baselines
    (perplexity, the per-chunk LLM check) over the same pools, with answers per defence."""
    from ragpipe.generate import Generator
    from ragpipe.verify import ROBUST

    names = ("perplexity", "llm_per_chunk", "llm_listwise", "answer_consistency", "ragpipe", "ragpipe_two_call",
             "ragpipe_robust")
    tallies = {name: Tally() for name in names}
    answers: dict[str, dict[str, int]] = {}
    outcomes: dict[str, list[int]] = {}
    cost: dict[str, dict[str, float]] = {}
    parse_status: dict[str, int] = {}
    unreadable = {"questions_with_unreadable_verdict": 0, "questions": 0}
    default = Verifier()
    robust = Verifier(**ROBUST)
    two_call = Verifier(llm_mode="listwise")
    perplexity = Verifier(signals=("perplexity",))
    per_chunk = Verifier(signals=("llm",), llm_mode="per_chunk")
    generator = Generator(max_tokens=answer_tokens)
    records = []

    def spend(defence: str, seconds: float, usage: Usage) -> None:
        c = cost.setdefault(defence, {"questions": 0, "calls": 0, "cached": 0, "tokens": 0, "seconds": 0.0})
        c["questions"] += 1
        c["calls"] += usage.calls
        c["cached"] += usage.cached_calls
        c["tokens"] += usage.prompt_tokens + usage.completion_tokens
        c["seconds"] += seconds

    for q, (row, pool) in enumerate(zip(rows, pools)):
        poisoned = [c.chunk.metadata["poisoned"] for c in pool]
        result, seconds, usage = await _timed_verify(default, row["question"], pool, llm, embedder)
        spend("ragpipe", seconds, usage)
        unreadable["questions"] += 1
        unreadable["questions_with_unreadable_verdict"] += result.unreadable > 0
        kept_by: dict[str, list[ScoredChunk]] = {"none": list(pool), "ragpipe": list(result.accepted)}
        record: dict[str, Any] = {"id": row["id"], "poisoned": poisoned, "ragpipe_drop": [not v.keep for v in result.verdicts],
                                  "llm_listwise": [v.signals.get("llm") is True for v in result.verdicts],
                                  "strength": {n: [s.strength(i) for i in range(len(pool))] for n, s in result.signals.items()}}
        for bad, verdict in zip(poisoned, result.verdicts):
            tallies["ragpipe"].add(not verdict.keep, bad)
            tallies["llm_listwise"].add(verdict.signals.get("llm") is True, bad)
            parse_status[verdict.parse_status] = parse_status.get(verdict.parse_status, 0) + 1
        ac = result.signals.get("answer_consistency")
        record["answers_listwise"] = {str(i): a for i, a in enumerate(result.isolated) if a is not None}
        for i, bad in enumerate(poisoned):
            tallies["answer_consistency"].add(bool(ac and ac.flagged[i]), bad)
        if q < two_call_limit:
            two, two_s, two_u = await _timed_verify(two_call, row["question"], pool, llm, embedder)
            spend("ragpipe_two_call", two_s, two_u)
            record["ragpipe_two_call_drop"] = [not v.keep for v in two.verdicts]
            kept_by["ragpipe_two_call"] = list(two.accepted)
            for bad, verdict in zip(poisoned, two.verdicts):
                tallies["ragpipe_two_call"].add(not verdict.keep, bad)
        if q < robust_limit:
            rob, rob_s, rob_u = await _timed_verify(robust, row["question"], pool, llm, embedder)
            spend("ragpipe_robust", rob_s, rob_u)
            record["isolated_answers"] = {str(i): a for i, a in enumerate(rob.isolated) if a is not None}
            record["ragpipe_robust_drop"] = [not v.keep for v in rob.verdicts]
            kept_by["ragpipe_robust"] = list(rob.accepted)
            for bad, verdict in zip(poisoned, rob.verdicts):
                tallies["ragpipe_robust"].add(not verdict.keep, bad)
        if q < baseline_limit:
            ppl, ppl_s, ppl_u = await _timed_verify(perplexity, row["question"], pool, llm, embedder)
            spend("perplexity", ppl_s, ppl_u)
            kept_by["perplexity"] = list(ppl.accepted)
            for bad, verdict in zip(poisoned, ppl.verdicts):
                tallies["perplexity"].add(not verdict.keep, bad)
            pc, pc_s, pc_u = await _timed_verify(per_chunk, row["question"], pool, llm, embedder)
            spend("llm_per_chunk", pc_s, pc_u)
            kept_by["llm_per_chunk"] = list(pc.accepted)
            for bad, verdict in zip(poisoned, pc.verdicts):
                tallies["llm_per_chunk"].add(not verdict.keep, bad)
        record["answers"] = {}
        for defence, evidence in kept_by.items():
            ctx = RunContext(llm=llm, embedder=embedder)
            generation = await generator.agenerate(row["question"], evidence[:5], ctx)
            text = generation.answer.text
            hit = contains(text, [row["target_answer"]])
            right = contains(text, row["correct_answers"] + row.get("expanded_answers", []))
            a = answers.setdefault(defence, {"asr": 0, "accuracy": 0, "n": 0})
            a["n"] += 1
            a["asr"] += hit
            a["accuracy"] += right
            outcomes.setdefault(defence, []).append(int(hit))
            record["answers"][defence] = {"text": text[:200], "attack_success": hit, "correct": right}
        records.append(record)
        print(f"  {row['id']}: verified {len(pool)} chunks in {seconds:.1f}s "
              f"({usage.calls} call(s)); dropped {sum(record['ragpipe_drop'])}, poisoned {sum(poisoned)}",
              file=sys.stderr, flush=True)
    none = outcomes.get("none", [])
    paired = {d: {"wins": sum(a < b for a, b in zip(o, none)), "ties": sum(a == b for a, b in zip(o, none)),
                  "losses": sum(a > b for a, b in zip(o, none)), "n": len(o)}
              for d, o in outcomes.items() if d != "none"}
    return {
        "detection": {k: t.report() for k, t in tallies.items() if t.tp + t.fp + t.fn + t.tn},
        "answers": {d: {"asr": round(a["asr"] / a["n"], 3), "accuracy": round(a["accuracy"] / a["n"], 3), "n": a["n"]}
                    for d, a in answers.items()},
        "asr_vs_no_defence_per_question": paired,
        "cost_per_question": {d: {"questions": c["questions"], "llm_calls": round(c["calls"] / c["questions"], 2),
                                  # replayed from --cache: their verify_seconds are not LLM time
                                  "llm_calls_cached": round(c["cached"] / c["questions"], 2),
                                  "tokens": round(c["tokens"] / c["questions"], 1),
                                  "verify_seconds": round(c["seconds"] / c["questions"], 2)} for d, c in cost.items()},
        "verdict_parse_status": parse_status,
        "unreadable_verdicts": unreadable,
        "per_question": records,
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"{'dataset':24} {'defence':16} {'P':>6} {'R':>6} {'F1':>6} {'cleanDrop':>9} {'flagged':>8} {'ASR':>6} {'acc':>6}")
    for name, res in results["datasets"].items():
        for defence, m in res["detection"].items():
            ans = (res.get("answers") or {}).get(defence) or {}
            print(f"{name:24} {defence:16} {m['precision']:6.2f} {m['recall']:6.2f} {m['f1']:6.2f} "
                  f"{m['clean_dropped_rate'] if m['clean_dropped_rate'] is not None else '-':>9} {m['flagged_share']:8.2f} "
                  f"{ans.get('asr', '-'):>6} {ans.get('accuracy', '-'):>6}")


    for name, res in results["datasets"].items():
        for defence, c in (res.get("cost_per_question") or {}).items():
            print(f"{name:24} {defence:16} calls/q {c['llm_calls']:5} tokens/q {c['tokens']:8} "
                  f"verify s/q {c['verify_seconds']:6} (n={c['questions']})")


def merge_runs(*runs: dict[str, Any]) -> dict[str, Any]:
    """One results file from runs split by dataset (same model): later runs replace a dataset's entry."""
    models = {r["setup"].get("llm") for r in runs if r["setup"].get("llm")}
    if len(models) > 1:
        raise SystemExit(f"cannot merge runs of different models {sorted(models)}: one results file per model")
    merged = json.loads(json.dumps(runs[0]))
    merged["command"] = [r["command"] for r in runs]
    merged["setup"]["runs"] = [r["setup"] for r in runs]
    for run in runs[1:]:
        merged["datasets"].update(run["datasets"])
        merged["setup"]["llm"] = merged["setup"].get("llm") or run["setup"].get("llm")
    merged["data"] = merge_descriptions(r.get("data") for r in runs)
    return merged


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=50, help="questions per dataset for the cheap signals")
    parser.add_argument("--llm-limit", type=int, default=3, help="questions per dataset for LLM-based defences (0: none)")
    parser.add_argument("--top-k", type=int, default=10, help="candidate pool size per question")
    parser.add_argument("--answer-tokens", type=int, default=48)
    parser.add_argument("--datasets", nargs="*", default=[*QA_SETS, *POISON_ONLY_SETS])
    parser.add_argument("--llm-sets", nargs="*", default=[*QA_SETS, *POISON_ONLY_SETS],
                        help="datasets that get the LLM-based defences")
    parser.add_argument("--baseline-limit", type=int, default=8,
                        help="questions (of --llm-limit) that also get the perplexity and per-chunk LLM baselines")
    parser.add_argument("--robust-limit", type=int, default=None,
                        help="questions (of --llm-limit) that also get the robust mode (default: all)")
    parser.add_argument("--two-call-limit", type=int, default=0,
                        help="questions (of --llm-limit) that also get the two-call mode (llm_mode=listwise)")
    parser.add_argument("--negatives", nargs="*", default=list(NEGATIVES), metavar="DATASET",
                        help="datasets whose corpus.jsonl gives the clean passages that the planted texts of "
                             "poison-only sets are retrieved among (none: the pool is the planted texts alone)")
    parser.add_argument("--negatives-per-set", type=int, default=2000, help="clean passages read per --negatives set")
    parser.add_argument("--model", default=None, help="GGUF file of the LLM (default: the packaged SmolLM2)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="keep LLM replies in this folder and replay them on reruns (default: no cache)")
    parser.add_argument("--out", default=None, help="results file (default: eval/results/poisoning.json for the "
                        "packaged model, poisoning_<model file stem>.json otherwise)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine a cheap-signal run and LLM runs (same script) into --out, then exit")
    add_data_arguments(parser)
    args = parser.parse_args()
    if args.out is None:
        args.out = str(RESULTS / ("poisoning.json" if args.model is None else f"poisoning_{Path(args.model).stem}.json"))
    if args.merge:
        merged = merge_runs(*(json.loads(Path(p).read_text(encoding="utf-8")) for p in args.merge))
        Path(args.out).write_text(json.dumps(merged, indent=2), encoding="utf-8")
        print_table(merged)
        return
    needs_negatives = bool(set(args.datasets) & set(POISON_ONLY_SETS)) and args.negatives
    data = open_data(args, {**{name: ("poison.jsonl",) for name in args.datasets},
                            **{name: ("corpus.jsonl",) for name in (args.negatives if needs_negatives else [])}})

    from ragpipe.ingest.embed import get_embedder

    embedder = get_embedder(EmbeddingSettings())
    llm = build_local_llm(args.model, args.cache) if args.llm_limit > 0 else None
    negatives = (CleanCorpus(load_negatives([data / n for n in args.negatives], args.negatives_per_set), embedder,
                             args.cache) if needs_negatives else None)
    results: dict[str, Any] = {
        "command": "python eval/bench_poisoning.py " + " ".join(sys.argv[1:]),
        "setup": {
            "limit": args.limit, "llm_limit": args.llm_limit, "top_k": args.top_k,
            "embedder": getattr(embedder, "name", "?"), "llm": f"{llm.backend}:{llm.model}" if llm else None,
            "pool": "top-k by MiniLM cosine of clean+poisoned (QA sets); of the 5 poisoned texts injected into the "
                    "--negatives corpora (poison-only sets; without --negatives: the 5 poisoned texts alone)",
            "negatives": {"datasets": args.negatives if needs_negatives else [], "per_set": args.negatives_per_set,
                          "passages": len(negatives.texts) if negatives else 0},
            "two_call_limit": args.two_call_limit,
            "verifier": "ragpipe = Verifier() defaults (cheap signals, a listwise LLM flag check over the chunks "
                        "the cheap signals kept, then a listwise short-answer call for answer_consistency only when "
                        "it can tip a chunk: two calls at most); ragpipe_two_call = Verifier(llm_mode='listwise'), "
                        "the same configuration spelled out (with --cache its calls replay ragpipe's); "
                        "answer_consistency = that signal alone; ragpipe_robust = Verifier(**ROBUST) (one "
                        "isolated answer per kept chunk instead of the listwise answers); baselines: perplexity alone, "
                        "per-chunk LLM check alone (llm_mode=per_chunk)",
            "llm_sets": args.llm_sets, "baseline_limit": args.baseline_limit, "robust_limit": args.robust_limit,
        },
        "datasets": {},
        "data": data.describe(),
    }
    for name in args.datasets:
        started = time.perf_counter()
        rows = load_rows(data / name, args.limit)
        tallies, pools = await detect_cheap(rows, embedder, args.top_k, negatives if name in POISON_ONLY_SETS else None)
        entry: dict[str, Any] = {"questions": len(rows), "detection": {k: t.report() for k, t in tallies.items()}}
        if llm is not None and args.llm_limit > 0 and name in args.llm_sets:
            n = min(args.llm_limit, len(rows))
            robust = n if args.robust_limit is None else min(n, args.robust_limit)
            llm_part = await detect_with_llm(rows[:n], pools[:n], llm, embedder, args.answer_tokens,
                                             baseline_limit=min(n, args.baseline_limit), robust_limit=robust,
                                             two_call_limit=min(n, args.two_call_limit))
            entry["llm_questions"] = n
            entry["detection"].update(llm_part.pop("detection"))
            entry.update(llm_part)
            entry["detection_llm_subset_note"] = (
                f"ragpipe, llm_listwise, answer_consistency rows over the first {n} questions; ragpipe_two_call over "
                f"the first {min(n, args.two_call_limit)}; ragpipe_robust over the first {robust}; perplexity, llm_per_chunk over the first {min(n, args.baseline_limit)}; the other rows "
                "over all questions")
        entry["seconds"] = round(time.perf_counter() - started, 1)
        results["datasets"][name] = entry
        print(f"{name}: {len(rows)} questions in {entry['seconds']}s", file=sys.stderr, flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")  # after each dataset
    print_table(results)


if __name__ == "__main__":
    asyncio.run(main())
