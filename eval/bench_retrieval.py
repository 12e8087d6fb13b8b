"""Retrieval benchmark: dense vs BM25 vs fusion variants on four dev corpora.

For each dataset the corpus is chunked (≤ ``--chunk-tokens`` MiniLM tokens per chunk, so every
chunk keeps its corpus doc id), embedded once with the packaged all-MiniLM-L6-v2 and cached under
``eval/work/retrieval/`` (git-ignored) so re-runs only pay for retrieval. Chunks go into an
in-memory store that implements the ``ChunkStore`` interface; BM25 is the real ``BM25Index``.
A document is scored by its best chunk. Metrics (nDCG@10, recall@20, recall@100) come from ranx.

    python eval/bench_retrieval.py [--limit N] [--datasets scifact_goldpool,...]

Prints a table and writes ``eval/results/retrieval.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ragpipe.schema import Chunk, ScoredChunk, stable_hash  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "eval" / "work" / "retrieval"
RESULTS = ROOT / "eval" / "results" / "retrieval.json"
DATASETS = (
    "scifact_goldpool",
    "fiqa_goldpool",
    "hotpotqa_hipporag_train100",
    "musique_hipporag_train100",
)
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


def prepare(dataset: str, chunk_tokens: int, overlap: int, model=None):
    """Chunks, chunk embeddings, queries, query embeddings and qrels, cached on disk."""
    folder = DATA / dataset
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


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--limit", type=int, default=None, help="at most N queries per dataset")
    parser.add_argument("--chunk-tokens", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=30)
    parser.add_argument("--prepare-only", action="store_true", help="build the embedding caches and stop")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model = None
    for dataset in args.datasets.split(","):
        print(f"[{dataset}] preparing")
        *_, model = prepare(dataset, args.chunk_tokens, args.overlap, model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
