"""Retrieval benchmark: dense vs BM25 vs fusion variants on four dev corpora.

Measures nDCG@10, recall@20 and recall@100 of dense, BM25, the library's default hybrid and each
fusion variant, plus per-mode query latency (p50/p95 ms). For each dataset the corpus is chunked (≤ ``--chunk-tokens`` MiniLM tokens per chunk, so every
chunk keeps its corpus doc id), embedded once with the packaged all-MiniLM-L6-v2 and cached under
``eval/work/retrieval/`` (git-ignored) so re-runs only pay for retrieval. Chunks go into an
in-memory store that implements the ``ChunkStore`` interface; BM25 is the real ``BM25Index``.
A document is scored by its best chunk. Metrics (nDCG@10, recall@20, recall@100) come from ranx.

    python eval/bench_retrieval.py [--data DIR] [--limit N] [--datasets scifact_goldpool,...]

Data: BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels.tsv``), by default
``scifact_goldpool``, ``fiqa_goldpool``, ``hotpotqa_hipporag_train100``, ``musique_hipporag_train100``.
Prints a table and writes ``eval/results/retrieval.json`` (``--out``): per dataset the query and
chunk counts, the metrics of every variant, the hybrid's margin over the best single retriever and
the latency; ``data`` records the data folder and the record counts it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datapaths import DataFolder, add_data_arguments, open_data  # noqa: E402
from ragpipe.retrieve import MODES, FusionConfig, Retriever, fuse  # noqa: E402
from ragpipe.retrieve.bm25 import Tokenizer  # noqa: E402
from ragpipe.retrieve.retriever import MIN_CANDIDATES  # noqa: E402
from ragpipe.schema import Chunk, stable_hash  # noqa: E402

WORK = ROOT / "eval" / "work" / "retrieval"
RESULTS = ROOT / "eval" / "results" / "retrieval.json"
DATASETS = (
    "scifact_goldpool",
    "fiqa_goldpool",
    "hotpotqa_hipporag_train100",
    "musique_hipporag_train100",
)
BEIR_FILES = ("queries.jsonl", "qrels.tsv", "corpus.jsonl")
CACHE_VERSION = "v1"


# --------------------------------------------------------------------------- data


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def load_model():
    from sentence_transformers import SentenceTransformer

    from ragpipe.models import packaged_minilm

    model = SentenceTransformer(str(packaged_minilm()), device="cpu")
    model.max_seq_length = 256
    return model


def chunk_corpus(corpus: list[dict], tokenizer, chunk_tokens: int, overlap: int) -> list[Chunk]:
    """Token windows over "title\\n\\ntext"; each chunk remembers its corpus doc id."""
    chunks: list[Chunk] = []
    step = max(1, chunk_tokens - overlap)
    for doc in corpus:
        text = f"{doc.get('title') or ''}\n\n{doc['text']}".strip()
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        starts = list(range(0, max(1, len(offsets) - overlap), step)) or [0]
        doc_id = stable_hash("doc", doc["_id"])
        for position, start in enumerate(starts):
            window = offsets[start : start + chunk_tokens]
            begin, end = (window[0][0], window[-1][1]) if window else (0, len(text))
            if position == 0:
                begin = 0
            piece = text[begin:end]
            chunks.append(
                Chunk(
                    id=Chunk.make_id(doc_id, position, piece),
                    doc_id=doc_id,
                    position=position,
                    text=piece,
                    source=f"{doc['_id']}.txt",
                    start_char=begin,
                    end_char=end,
                    title=doc.get("title") or None,
                    metadata={"corpus_id": doc["_id"], "file_type": "txt"},
                )
            )
    return chunks


def prepare(folder: Path, chunk_tokens: int, overlap: int, model=None):
    """Chunks, chunk embeddings, queries, query embeddings and qrels of a dataset folder, cached on disk."""
    dataset = folder.name
    cache = WORK / f"{dataset}-{CACHE_VERSION}-{chunk_tokens}-{overlap}"
    queries = read_jsonl(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels.tsv")
    if (cache / "done").is_file():
        chunks = [Chunk.model_validate(row) for row in read_jsonl(cache / "chunks.jsonl")]
        return chunks, np.load(cache / "chunks.npy"), queries, np.load(cache / "queries.npy"), qrels, model
    model = model or load_model()
    corpus = read_jsonl(folder / "corpus.jsonl")
    chunks = chunk_corpus(corpus, model.tokenizer, chunk_tokens, overlap)
    t0 = time.perf_counter()
    vectors = model.encode(
        [c.text for c in chunks], batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    ).astype(np.float32)
    qvectors = model.encode(
        [q["text"] for q in queries], batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    ).astype(np.float32)
    print(f"  embedded {len(chunks)} chunks + {len(queries)} queries in {time.perf_counter() - t0:.0f}s")
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "chunks.jsonl").open("w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(c.model_dump_json() + "\n")
    np.save(cache / "chunks.npy", vectors)
    np.save(cache / "queries.npy", qvectors)
    (cache / "done").write_text("ok")
    return chunks, vectors, queries, qvectors, qrels, model


# --------------------------------------------------------------------------- store


class LookupEmbedder:
    """Query vectors computed once in ``prepare`` (the metric runs need no model)."""

    def __init__(self, queries: list[dict], vectors: np.ndarray, name: str, dim: int) -> None:
        self._by_text = {q["text"]: v for q, v in zip(queries, vectors)}
        self.name, self.dim, self.max_tokens = name, dim, 256

    def embed_query(self, text: str) -> np.ndarray:
        return self._by_text[text]


def build_store(dataset: str, chunks: list[Chunk], vectors: np.ndarray, kind: str, cache_key: str):
    """The real Chroma ``ChunkStore`` (default) or the in-memory one, filled with cached vectors."""
    from ragpipe.retrieve.memory import MemoryStore

    index_dir = WORK / f"{dataset}-{cache_key}-index-{kind}"
    if kind == "memory":
        store = MemoryStore(index_dir)
        store.add(chunks, vectors)
        return store
    from ragpipe.config import StoreSettings
    from ragpipe.ingest.embed import CANONICAL_MINILM
    from ragpipe.ingest.store import ChunkStore

    store = ChunkStore.open(
        index_dir, StoreSettings(), embedding_model=CANONICAL_MINILM, dim=int(vectors.shape[1]), create=True
    )
    if store.count() != len(chunks):
        store.upsert(chunks, vectors, embedding_model=CANONICAL_MINILM)
    return store


# --------------------------------------------------------------------------- runs and metrics


def variants() -> dict[str, FusionConfig]:
    """Every fusion compared; ``hybrid`` (the library default) is run through ``Retriever``."""
    out: dict[str, FusionConfig] = {"rrf_k60": FusionConfig(method="rrf", weights={}, rrf_k=60)}
    for wd in (0.6, 0.7, 0.8):
        out[f"wrrf_d{wd:g}"] = FusionConfig(method="rrf", weights={"dense": wd, "bm25": round(1 - wd, 2)}, rrf_k=60)
    for norm in ("minmax", "zscore"):
        for wd in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85):
            out[f"{norm}_d{wd:g}"] = FusionConfig(
                method="score", normalisation=norm, weights={"dense": wd, "bm25": round(1 - wd, 2)}
            )
    return out


def doc_run(results: Sequence[tuple[str, float]], corpus_of: dict[str, str]) -> dict[str, float]:
    """Chunk ranking -> corpus-doc ranking (a doc counts at its best chunk); scores keep the order."""
    docs: list[str] = []
    seen: set[str] = set()
    for chunk_id, _score in results:
        doc = corpus_of[chunk_id]
        if doc not in seen:
            seen.add(doc)
            docs.append(doc)
    return {doc: float(len(docs) - i) for i, doc in enumerate(docs)}


def evaluate_runs(qrels: dict, runs: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    from ranx import Qrels, Run, evaluate

    metrics = ["ndcg@10", "recall@20", "recall@100"]
    qrels_obj = Qrels({q: d for q, d in qrels.items()})
    out = {}
    for name, run in runs.items():
        run = {q: (r if r else {"__none__": 0.0}) for q, r in run.items()}
        scores = evaluate(qrels_obj, Run(run, name=name), metrics, make_comparable=True)
        out[name] = {m: round(float(v), 4) for m, v in scores.items()}
    return out


async def collect_runs(retriever, default_retriever, queries: list[dict], corpus_of: dict[str, str], depth: int):
    runs: dict[str, dict[str, dict[str, float]]] = {}
    fusions = variants()
    for q in queries:
        qid, text = q["_id"], q["text"]
        dense = await retriever.aretrieve(text, k=depth, mode="dense")
        bm25 = await retriever.aretrieve(text, k=depth, mode="bm25")
        hybrid = await retriever.aretrieve(text, k=depth, mode="hybrid")
        # the library default end to end: 100 candidates per retriever, 100 chunks returned
        hybrid_c100 = await default_retriever.aretrieve(text, k=MIN_CANDIDATES, mode="hybrid")
        rankings = {"dense": [(r.id, r.score) for r in dense], "bm25": [(r.id, r.score) for r in bm25]}
        rankings = {name: ranking for name, ranking in rankings.items() if ranking}
        per_query = {
            "dense": rankings.get("dense", []),
            "bm25": rankings.get("bm25", []),
            "hybrid": [(r.id, r.score) for r in hybrid],
            "hybrid_c100": [(r.id, r.score) for r in hybrid_c100],
        }
        for name, config in fusions.items():
            per_query[name] = fuse(rankings, config) if rankings else []
        for name, ranking in per_query.items():
            runs.setdefault(name, {})[qid] = doc_run(ranking, corpus_of)
    return runs


def _percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))], 2),
        "n": len(times),
    }


def latency(store, queries: list[dict], n: int, k: int = 10) -> dict[str, dict[str, float]]:
    """Per-mode query latency (ms) with the embedding model loaded and BM25 warm.

    ``query_embedding`` times the embedding alone, so the retrieval cost on top of it is visible;
    ``load_average`` is the machine's 1-minute load when timing ended (the machine is shared).
    """
    from ragpipe.config import EmbeddingSettings
    from ragpipe.ingest.embed import get_query_embedder

    embedder = get_query_embedder(EmbeddingSettings())  # what an opened index queries with
    retriever = Retriever(store, embedder)
    sample = [q["text"] for q in queries[:n]]
    async def timed(mode: str) -> list[float]:  # one event loop, as a pipeline runs retrieval
        await retriever.aretrieve(sample[0], k=k, mode=mode)  # warm-up: model, BM25, Chroma's segment
        times = []
        for text in sample:
            t0 = time.perf_counter()
            await retriever.aretrieve(text, k=k, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
        return times

    out: dict[str, Any] = {mode: _percentiles(asyncio.run(timed(mode))) for mode in MODES}
    times = []
    with ThreadPoolExecutor(max_workers=1) as pool:  # as retrieval does: torch's main-thread pool
        for text in sample:  # can stall badly on an oversubscribed machine
            t0 = time.perf_counter()
            pool.submit(embedder.embed_query, text).result()
            times.append((time.perf_counter() - t0) * 1000)
    out["query_embedding"] = _percentiles(times)
    out["query_embedder"] = type(embedder).__name__
    out["load_average"] = round(os.getloadavg()[0], 2)
    out["cpu_count"] = os.cpu_count()
    return out


def run_dataset(folder: Path, args: argparse.Namespace, model):
    dataset = folder.name
    chunks, vectors, queries, qvectors, qrels, model = prepare(folder, args.chunk_tokens, args.overlap, model)
    cache_key = f"{CACHE_VERSION}-{args.chunk_tokens}-{args.overlap}"
    store = build_store(dataset, chunks, vectors, args.store, cache_key)
    queries = [q for q in queries if q["_id"] in qrels]
    picked = queries[: args.limit] if args.limit else queries
    embedder = LookupEmbedder(read_jsonl(folder / "queries.jsonl"), qvectors, "lookup", int(vectors.shape[1]))
    corpus_of = {c.id: c.metadata["corpus_id"] for c in chunks}
    retriever = Retriever(store, embedder, candidates=args.depth)
    default_retriever = Retriever(store, embedder)
    t0 = time.perf_counter()
    runs = asyncio.run(collect_runs(retriever, default_retriever, picked, corpus_of, args.depth))
    seconds = time.perf_counter() - t0
    metrics = evaluate_runs({q["_id"]: qrels[q["_id"]] for q in picked}, runs)
    best_single = max(metrics["dense"]["ndcg@10"], metrics["bm25"]["ndcg@10"])
    lat = latency(store, picked, args.latency_queries) if args.latency_queries else {}
    return {
        "queries": len(picked),
        "corpus_docs": len(set(corpus_of.values())),
        "chunks": len(chunks),
        "depth": args.depth,
        "metrics": metrics,
        "hybrid_minus_best_single_ndcg@10": round(metrics["hybrid"]["ndcg@10"] - best_single, 4),
        "latency": lat,
        "run_seconds": round(seconds, 1),
    }, model


def print_table(results: dict) -> None:
    names = list(next(iter(results.values()))["metrics"])
    header = f"{'variant':<14}" + "".join(f"{ds[:14]:>16}" for ds in results)
    print("\nnDCG@10 (recall@100)")
    print(header)
    for name in names:
        row = f"{name:<14}"
        for ds in results.values():
            m = ds["metrics"][name]
            row += f"{m['ndcg@10']:>9.3f} ({m['recall@100']:.2f})"
        print(row)
    print("\nhybrid - best single (nDCG@10): " + ", ".join(
        f"{ds}: {res['hybrid_minus_best_single_ndcg@10']:+.3f}" for ds, res in results.items()))
    print("\nlatency p50/p95 ms")
    for ds, res in results.items():
        lat = res["latency"]
        if lat:
            print(f"  {ds}: " + ", ".join(f"{m} {lat[m]['p50_ms']}/{lat[m]['p95_ms']}" for m in (*MODES, "query_embedding"))
                  + f" (load {lat['load_average']} on {lat['cpu_count']} cpus)")


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated dataset folder names")
    parser.add_argument("--limit", type=int, default=None, help="at most N queries per dataset")
    parser.add_argument("--chunk-tokens", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=30)
    parser.add_argument("--depth", type=int, default=300, help="chunks retrieved per query and per retriever")
    parser.add_argument("--store", choices=("chroma", "memory"), default="chroma")
    parser.add_argument("--latency-queries", type=int, default=50, help="queries timed per mode (0: skip)")
    parser.add_argument("--prepare-only", action="store_true", help="build the embedding caches and stop")
    parser.add_argument(
        "--latency-only", action="store_true", help="re-time the queries and update the latency of an existing --out"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    add_data_arguments(parser)
    return parser.parse_args(argv)


def update_latency(args: argparse.Namespace, data: DataFolder) -> int:
    """Latency again (e.g. on a quieter machine), metrics untouched."""
    report = json.loads(args.out.read_text())
    cache_key = f"{CACHE_VERSION}-{args.chunk_tokens}-{args.overlap}"
    for dataset in args.datasets.split(","):
        chunks, vectors, queries, _qv, qrels, _model = prepare(data / dataset, args.chunk_tokens, args.overlap)
        store = build_store(dataset, chunks, vectors, args.store, cache_key)
        picked = [q for q in queries if q["_id"] in qrels][: args.latency_queries]
        report["datasets"][dataset]["latency"] = lat = latency(store, picked, args.latency_queries)
        print(f"  {dataset}: " + ", ".join(f"{m} {lat[m]['p50_ms']}/{lat[m]['p95_ms']}" for m in (*MODES, "query_embedding")))
    report["latency_command"] = "python eval/bench_retrieval.py " + " ".join(sys.argv[1:])
    report["latency_data"] = data.describe()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = open_data(args, {name: BEIR_FILES for name in args.datasets.split(",")})
    model = None
    results = {}
    if args.latency_only:
        return update_latency(args, data)
    for dataset in args.datasets.split(","):
        print(f"[{dataset}]", flush=True)
        if args.prepare_only:
            *_, model = prepare(data / dataset, args.chunk_tokens, args.overlap, model)
            continue
        results[dataset], model = run_dataset(data / dataset, args, model)
    if args.prepare_only:
        return 0
    print_table(results)
    report = {
        "benchmark": "retrieval",
        "command": "python eval/bench_retrieval.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2 (packaged)",
        "bm25": "bm25s (lucene, k1=1.5, b=0.75), English stopwords, stemmer: " + str(Tokenizer().config.stemmer),
        "default_fusion": FusionConfig().__dict__ | {"weights": dict(FusionConfig().weights)},
        "notes": [
            f"chunks of <= {args.chunk_tokens} MiniLM tokens ({args.overlap} overlap) over 'title + text' of each "
            "corpus doc; a doc is ranked at its best chunk; ranx metrics over corpus doc ids",
            f"dense, bm25, hybrid and the fusion variants: {args.depth} chunks per retriever per query "
            "(so recall@100 is over >= 100 docs); variants fuse the same dense/bm25 lists",
            "hybrid = the library default (FusionConfig()) run through Retriever at that depth; "
            "hybrid_c100 = Retriever with its default 100 candidates per retriever, 100 chunks returned "
            "(its recall@100 counts only docs within those 100 chunks)",
            "dense uses the Chroma ChunkStore (HNSW, cosine) unless --store memory; query vectors pre-computed "
            "for the metric runs; latency runs embed each query with the loaded model",
            "goal: hybrid nDCG@10 >= max(dense, bm25) on every dataset; see hybrid_minus_best_single_ndcg@10",
        ],
        "datasets": results,
        "data": data.describe(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
