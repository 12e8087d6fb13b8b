"""Poisoning benchmark: how well each defence finds planted passages, and what reaches the answer.

    python eval/bench_poisoning.py [--data DIR] [--limit 100] [--llm-limit 3] [--top-k 10]

Data: ``poison.jsonl`` of each ``--datasets`` folder, by default ``robustrag_realtimeqa``,
``robustrag_simpleqa``, ``poisonedrag`` and ``revprag_poison``; layout in ``eval/datasets.md``.

Per question of ``robustrag_realtimeqa`` / ``robustrag_simpleqa`` the candidate pool is the
``--top-k`` passages (clean search snippets + the 5 poisoned passages) closest to the question
under the packaged MiniLM embedder, i.e. what a dense retriever would hand the verifier. On
``poisonedrag`` / ``revprag_poison`` only poisoned texts exist, so the pool is a question's 5
poisoned texts and the figure is the share flagged.

Defences: ``none``; ``perplexity`` (the §6.2 baseline, local LLM); each of ragpipe's signals
alone (``instruction``, ``query_echo``, ``near_duplicate``, ``llm``); ``ragpipe_cheap`` (the
verifier without an LLM) and ``ragpipe`` (the full verifier: signals + LLM check). The cheap
signals run on ``--limit`` questions per dataset; everything that needs the LLM (perplexity,
the LLM check, answers for ``asr``/``accuracy``) runs on the first ``--llm-limit`` of them,
because the embedded SmolLM2-135M takes tens of seconds per call on a shared 2-core machine.
Answers come from ragpipe's generator (``answer.cited`` prompt, ``--answer-tokens`` tokens).
Results: a table on stdout and ``eval/results/poisoning.json`` (``--out``): per dataset and defence
precision, recall, F1, clean passages dropped and share flagged, ASR and accuracy of the answers,
LLM usage; ``data``: the data folder and the record counts it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
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

from datapaths import add_data_arguments, open_data  # noqa: E402
from ragpipe.config import EmbeddingSettings, load_settings  # noqa: E402
from ragpipe.context import RunContext  # noqa: E402
from ragpipe.llm.base import BaseLLM, Capabilities, ChatRequest, Completion  # noqa: E402
from ragpipe.schema import Chunk, ScoredChunk, Usage  # noqa: E402
from ragpipe.verify import ALL_SIGNALS, Verifier  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QA_SETS = ("robustrag_realtimeqa", "robustrag_simpleqa")
POISON_ONLY_SETS = ("poisonedrag", "revprag_poison")
CHEAP = ("instruction", "query_echo", "near_duplicate")


# -- the local LLM ------------------------------------------------------------------------------

def build_local_llm() -> Any:
    """The configured LLM through ragpipe's factory; a minimal embedded llama.cpp adapter if absent."""
    try:
        from ragpipe.llm.factory import build_llm
    except ImportError:
        from ragpipe.llm.wrappers import Limited

        return Limited(LocalLlama(), 1)
    return build_llm(load_settings(llm__max_concurrency=1))


class LocalLlama(BaseLLM):
    """SmolLM2 (packaged GGUF) in process: chat plus ``token_logprobs`` for the perplexity signal."""

    backend = "llamacpp-bench"
    model = "smollm2-135m-instruct"

    def __init__(self, n_ctx: int = 4096) -> None:
        from llama_cpp import Llama

        from ragpipe.models import packaged_smollm2

        path = str(packaged_smollm2())
        threads = max(1, min(4, os.cpu_count() or 1))
        self._chat = Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, verbose=False)
        self._scorer = Llama(model_path=path, n_ctx=1024, n_threads=threads, logits_all=True, verbose=False)
        self.n_ctx = n_ctx

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(context_window=self.n_ctx)

    def count_tokens(self, text: str) -> int:
        return len(self._chat.tokenize(text.encode("utf-8"), add_bos=False))

    async def complete(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        out = await asyncio.to_thread(
            self._chat.create_chat_completion,
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            max_tokens=request.max_tokens, temperature=request.temperature,
            stop=list(request.stop) if request.stop else None, seed=request.seed,
        )
        seconds = time.perf_counter() - start
        usage = out.get("usage", {})
        return Completion(
            text=out["choices"][0]["message"]["content"] or "",
            finish_reason=out["choices"][0].get("finish_reason") or "stop",
            usage=Usage(calls=1, prompt_tokens=usage.get("prompt_tokens", 0),
                        completion_tokens=usage.get("completion_tokens", 0), llm_seconds=seconds),
            model=self.model, backend=self.backend, latency_s=seconds,
        )

    def _score(self, text: str) -> list[float]:
        tokens = self._scorer.tokenize(text.encode("utf-8"), add_bos=True)[:1000]
        self._scorer.reset()
        self._scorer.eval(tokens)
        logits = np.asarray(self._scorer.scores[: len(tokens) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        return [float(logits[i, tokens[i + 1]] - log_norm[i]) for i in range(len(tokens) - 1)]

    async def token_logprobs(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._score, text)


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


def candidate_pool(row: dict[str, Any], embedder: Any, top_k: int) -> list[ScoredChunk]:
    """The top_k passages by cosine to the question, best first (a dense retriever's view)."""
    texts = list(row["clean_texts"]) + list(row["poisoned_texts"])
    poisoned = [False] * len(row["clean_texts"]) + [True] * len(row["poisoned_texts"])
    if not row["clean_texts"]:
        return as_scored(texts, poisoned, row["id"])
    vectors = embedder.embed(texts)
    scores = vectors @ embedder.embed_query(row["question"])
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

async def detect_cheap(rows: list[dict[str, Any]], embedder: Any, top_k: int) -> tuple[dict[str, Tally], list[list[ScoredChunk]]]:
    """Every cheap signal alone and their combination (no LLM) over all rows."""
    tallies = {name: Tally() for name in ("none", *CHEAP, "ragpipe_cheap", "ragpipe_cheap_cluster_hard")}
    ctx = RunContext(llm=None, embedder=embedder)
    verifier = Verifier(signals=CHEAP)
    pools = []
    for row in rows:
        pool = candidate_pool(row, embedder, top_k)
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


async def detect_with_llm(
    rows: list[dict[str, Any]], pools: list[list[ScoredChunk]], llm: Any, embedder: Any, answer_tokens: int,
    with_answers: bool, max_history: int,
) -> dict[str, Any]:
    """Perplexity, the LLM check alone, the full verifier, and answers per defence."""
    from ragpipe.generate import Generator

    tallies = {name: Tally() for name in ("perplexity", "llm", "ragpipe")}
    answers: dict[str, dict[str, int]] = {d: {"asr": 0, "accuracy": 0, "n": 0} for d in ("none", "perplexity", "ragpipe")}
    usage: dict[str, dict[str, float]] = {}
    verifier = Verifier(signals=ALL_SIGNALS, skip_llm_when_dropped=False, batch_size=1, max_history=max_history)
    generator = Generator(max_tokens=answer_tokens)
    parse_status: dict[str, int] = {}
    for row, pool in zip(rows, pools):
        ctx = RunContext(llm=llm, embedder=embedder)
        start = time.perf_counter()
        result = await verifier.verify(row["question"], pool, ctx)
        seconds = time.perf_counter() - start
        kept_by = {"none": list(pool), "ragpipe": list(result.accepted), "perplexity": []}
        for chunk, verdict in zip(pool, result.verdicts):
            bad = chunk.chunk.metadata["poisoned"]
            ppl = bool(verdict.signals.get("perplexity", False))
            tallies["perplexity"].add(ppl, bad)
            tallies["llm"].add(bool(verdict.signals.get("llm", False)), bad)
            tallies["ragpipe"].add(not verdict.keep, bad)
            parse_status[verdict.parse_status] = parse_status.get(verdict.parse_status, 0) + 1
            if not ppl:
                kept_by["perplexity"].append(chunk)
        if with_answers:
            for defence, evidence in kept_by.items():
                generation = await generator.agenerate(row["question"], evidence[:5], ctx)
                text = generation.answer.text
                answers[defence]["n"] += 1
                answers[defence]["asr"] += contains(text, [row["target_answer"]])
                answers[defence]["accuracy"] += contains(text, row["correct_answers"] + row.get("expanded_answers", []))
        for node, u in ctx.meter.by_node().items():
            agg = usage.setdefault(node, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "llm_seconds": 0.0})
            agg["calls"] += u.calls
            agg["prompt_tokens"] += u.prompt_tokens
            agg["completion_tokens"] += u.completion_tokens
            agg["llm_seconds"] = round(agg["llm_seconds"] + u.llm_seconds, 1)
        print(f"  {row['id']}: verified {len(pool)} chunks in {seconds:.0f}s", file=sys.stderr, flush=True)
    return {
        "detection": {k: t.report() for k, t in tallies.items()},
        "answers": {d: ({"asr": round(a["asr"] / a["n"], 3), "accuracy": round(a["accuracy"] / a["n"], 3), "n": a["n"]}
                        if a["n"] else None) for d, a in answers.items()},
        "usage_by_node": usage,
        "verdict_parse_status": parse_status,
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"{'dataset':24} {'defence':16} {'P':>6} {'R':>6} {'F1':>6} {'cleanDrop':>9} {'flagged':>8} {'ASR':>6} {'acc':>6}")
    for name, res in results["datasets"].items():
        for defence, m in res["detection"].items():
            ans = (res.get("answers") or {}).get(defence) or {}
            print(f"{name:24} {defence:16} {m['precision']:6.2f} {m['recall']:6.2f} {m['f1']:6.2f} "
                  f"{m['clean_dropped_rate'] if m['clean_dropped_rate'] is not None else '-':>9} {m['flagged_share']:8.2f} "
                  f"{ans.get('asr', '-'):>6} {ans.get('accuracy', '-'):>6}")


LLM_KEYS = ("llm_questions", "answers", "usage_by_node", "verdict_parse_status", "detection_llm_subset_note")


def merge_runs(cheap: dict[str, Any], *llm_runs: dict[str, Any]) -> dict[str, Any]:
    """Cheap-signal rows from one run, LLM-based rows (perplexity, llm, ragpipe, answers) from others."""
    merged = json.loads(json.dumps(cheap))
    merged["command"] = [cheap["command"], *(r["command"] for r in llm_runs)]
    merged["setup"] = {"cheap_run": cheap["setup"], "llm_runs": [r["setup"] for r in llm_runs]}
    for name, entry in ((n, e) for r in llm_runs for n, e in r["datasets"].items()):
        if "llm_questions" not in entry or name not in merged["datasets"]:
            continue
        target = merged["datasets"][name]
        for key in ("perplexity", "llm", "ragpipe"):
            target["detection"][key] = entry["detection"][key]
        for key in LLM_KEYS:
            target[key] = entry[key]
        target["llm_run_seconds"] = entry["seconds"]
    return merged


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=50, help="questions per dataset for the cheap signals")
    parser.add_argument("--llm-limit", type=int, default=3, help="questions per dataset for LLM-based defences (0: none)")
    parser.add_argument("--top-k", type=int, default=10, help="candidate pool size per question")
    parser.add_argument("--answer-tokens", type=int, default=48)
    parser.add_argument("--datasets", nargs="*", default=[*QA_SETS, *POISON_ONLY_SETS])
    parser.add_argument("--llm-sets", nargs="*", default=list(QA_SETS), help="datasets that get the LLM-based defences")
    parser.add_argument("--max-history", type=int, default=2, help="accepted chunks shown to the LLM check")
    parser.add_argument("--out", default=str(RESULTS / "poisoning.json"))
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine a cheap-signal run and LLM runs (same script) into --out, then exit")
    add_data_arguments(parser)
    args = parser.parse_args()
    if args.merge:
        merged = merge_runs(*(json.loads(Path(p).read_text(encoding="utf-8")) for p in args.merge))
        Path(args.out).write_text(json.dumps(merged, indent=2), encoding="utf-8")
        print_table(merged)
        return
    data = open_data(args, {name: ("poison.jsonl",) for name in args.datasets})

    from ragpipe.ingest.embed import get_embedder

    embedder = get_embedder(EmbeddingSettings())
    llm = build_local_llm() if args.llm_limit > 0 else None
    results: dict[str, Any] = {
        "command": "python eval/bench_poisoning.py " + " ".join(sys.argv[1:]),
        "setup": {
            "limit": args.limit, "llm_limit": args.llm_limit, "top_k": args.top_k,
            "embedder": getattr(embedder, "name", "?"), "llm": f"{llm.backend}:{llm.model}" if llm else None,
            "pool": "top-k of clean+poisoned by MiniLM cosine (QA sets); the 5 poisoned texts (poison-only sets)",
            "verifier": f"Verifier() defaults plus the perplexity signal (weight 0.5); LLM runs use skip_llm_when_dropped=False (every signal measured on "
                        f"every chunk), batch_size=1, max_history={args.max_history}",
            "llm_sets": args.llm_sets,
        },
        "datasets": {},
        "data": data.describe(),
    }
    for name in args.datasets:
        started = time.perf_counter()
        rows = load_rows(data / name, args.limit)
        tallies, pools = await detect_cheap(rows, embedder, args.top_k)
        entry: dict[str, Any] = {"questions": len(rows), "detection": {k: t.report() for k, t in tallies.items()}}
        if llm is not None and args.llm_limit > 0 and name in args.llm_sets:
            n = min(args.llm_limit, len(rows))
            llm_part = await detect_with_llm(rows[:n], pools[:n], llm, embedder, args.answer_tokens,
                                             with_answers=name in QA_SETS, max_history=args.max_history)
            entry["llm_questions"] = n
            entry["detection"].update(llm_part["detection"])
            entry["answers"] = llm_part["answers"]
            entry["usage_by_node"] = llm_part["usage_by_node"]
            entry["verdict_parse_status"] = llm_part["verdict_parse_status"]
            entry["detection_llm_subset_note"] = (f"perplexity, llm and ragpipe rows are over the first {n} questions "
                                                  "only; the other rows over all questions")
        entry["seconds"] = round(time.perf_counter() - started, 1)
        results["datasets"][name] = entry
        print(f"{name}: {len(rows)} questions in {entry['seconds']}s", file=sys.stderr, flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")  # after each dataset
    print_table(results)


if __name__ == "__main__":
    asyncio.run(main())
