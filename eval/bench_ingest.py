"""Ingestion throughput: ``ragpipe index`` against raw ``SentenceTransformer.encode`` and LlamaIndex.

Builds a folder of one .txt per document from the evaluation corpora (``corpus.jsonl`` of each
dataset in ``CORPORA``, under the data folder: ``--data DIR``, else $RAGPIPE_DATA, else
../shared/data; layout in eval/datasets.md) in a work folder, then, in this one process:

1. chunker speed: ragpipe's offset chunker vs llama-index's ``SentenceSplitter`` (same tokenizer);
2. ``ragpipe index`` end to end (in process, model already loaded), interleaved with raw
   ``SentenceTransformer.encode`` over the *same chunk texts* (first half before, second half
   after, so load changes on this shared machine hit both sides alike);
3. re-index of the unchanged folder, in process and as a whole ``python -m ragpipe index`` process;
4. LlamaIndex ``VectorStoreIndex.from_documents`` over the same files into Chroma with the same
   model (``llama-index-embeddings-huggingface`` on the packaged MiniLM folder; LlamaIndex defaults);
5. an embedding batch-size sweep on a sample.

``--big-file 5,10,20`` is a separate memory mode: one synthetic text file of each size (MB) is
indexed in a fresh child process, which reports its peak RSS and chunks/s; ``--embedder hashing``
(model-free, isolates parsing, chunking and writing), ``minilm-tokenizer`` (chunked with MiniLM's
tokenizer, embedded with the hashing trick) or ``minilm`` (the real model; ~20 chunks/s, so use
small sizes). Results merge into ``big_file`` under ``--label`` (e.g. before / after a change).

Prints a table and writes eval/results/ingest.json (chunks/s of each side and their ratios, re-index
times, peak RSS, the sweep; ``data``: the data folder and the corpora's record counts; ``big_file``).
Usage: python eval/bench_ingest.py [--data DIR] [--limit DOCS] [--skip-llamaindex] [--work DIR]
       python eval/bench_ingest.py --big-file 5,10,20 --embedder hashing --label after
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from datapaths import DataFolder, add_data_arguments, open_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "eval" / "results" / "ingest.json"
CORPORA = (
    "scifact_goldpool",
    "fiqa_goldpool",
    "hotpotqa_hipporag_train100",
    "musique_hipporag_train100",
    "noveleval",
    "trec_dl2019_bm25",
    "trec_dl2020_bm25",
    "trec_dl2021_bm25",
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_folder(folder: Path, limit: int, data: DataFolder) -> int:
    """One .txt per document (title, blank line, text), ``limit`` documents round-robin over corpora."""
    if folder.exists():
        shutil.rmtree(folder)
    streams = []
    for name in CORPORA:
        path = data / name / "corpus.jsonl"
        if path.is_file():
            streams.append((name, [json.loads(line) for line in path.open()]))
    written, row = 0, 0
    while written < limit and any(row < len(docs) for _, docs in streams):
        for name, docs in streams:
            if row < len(docs) and written < limit:
                doc = docs[row]
                target = folder / name / f"{str(doc['_id']).replace('/', '_')}.txt"
                target.parent.mkdir(parents=True, exist_ok=True)
                title = (doc.get("title") or "").strip()
                target.write_text(f"{title}\n\n{doc['text']}" if title else doc["text"])
                written += 1
        row += 1
    return written


def chunk_texts(folder: Path, settings, embedder) -> tuple[list[str], float, float]:  # noqa: ANN001
    """ragpipe's chunks of every file (what ``ragpipe index`` will embed), and chunker speeds."""
    from ragpipe.ingest.chunker import Chunker, ChunkPlan
    from ragpipe.ingest.loaders import loader_for
    from ragpipe.schema import Document

    plan = ChunkPlan.for_embedder(settings.chunking.chunk_tokens, settings.chunking.overlap_tokens, embedder.max_tokens)
    chunker = Chunker(embedder, plan)
    files = sorted(p for p in folder.rglob("*.txt"))
    loaded = [(p, loader_for(p)(p)) for p in files]
    start = time.perf_counter()
    texts = []
    for path, doc in loaded:
        rel = path.relative_to(folder).as_posix()
        texts.extend(c.text for c in chunker.chunk(doc, Document.make_id(rel), rel).chunks)
    ours = len(texts) / (time.perf_counter() - start)

    from llama_index.core.node_parser import SentenceSplitter

    sample = [doc.text for _, doc in loaded[:300]]
    tok = embedder.tokenizer
    splitter = SentenceSplitter(
        chunk_size=plan.chunk_tokens,
        chunk_overlap=plan.overlap_tokens,
        tokenizer=lambda s: tok.encode(s, add_special_tokens=False, verbose=False),
    )
    start = time.perf_counter()
    n = sum(len(splitter.split_text(text)) for text in sample)
    theirs = n / (time.perf_counter() - start)
    return texts, ours, theirs


def raw_encode(model, texts: list[str], batch_size: int) -> float:  # noqa: ANN001
    start = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return time.perf_counter() - start


def llamaindex_run(folder: Path, work: Path) -> dict[str, float]:
    """LlamaIndex defaults: SimpleDirectoryReader -> SentenceSplitter -> HuggingFaceEmbedding -> Chroma."""
    import chromadb
    from llama_index.core import Settings as LISettings
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from ragpipe.models import packaged_minilm

    LISettings.llm = None
    embed_model = HuggingFaceEmbedding(model_name=str(packaged_minilm()), device="cpu")
    client = chromadb.PersistentClient(str(work / "llamaindex_chroma"), settings=chromadb.Settings(anonymized_telemetry=False))
    collection = client.get_or_create_collection(
        "llamaindex", metadata={"hnsw:space": "cosine"}, embedding_function=None
    )
    start = time.perf_counter()
    documents = SimpleDirectoryReader(str(folder), recursive=True, filename_as_id=True).load_data()
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)
    seconds = time.perf_counter() - start
    nodes = collection.count()
    return {"seconds": seconds, "nodes": nodes, "nodes_per_s": nodes / seconds, "embed_batch_size": embed_model.embed_batch_size}


def batch_sweep(model, texts: list[str], sizes=(16, 32, 64, 128)) -> dict[str, float]:  # noqa: ANN001
    model.encode(texts[:32], batch_size=32, show_progress_bar=False)  # warm-up
    return {str(size): round(len(texts) / raw_encode(model, texts, size), 2) for size in sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=4150, help="documents to write (4,150 give ~5,080 chunks)")
    parser.add_argument("--work", type=Path, default=REPO / "eval" / "work" / "ingest")
    parser.add_argument("--skip-llamaindex", action="store_true")
    parser.add_argument("--sweep-sample", type=int, default=256, help="texts in the batch-size sweep (0: skip)")
    parser.add_argument(
        "--compare-only",
        action="store_true",
        help="only ragpipe vs LlamaIndex, back to back on a --limit folder; merged into the existing results",
    )
    parser.add_argument("--sweep-only", action="store_true",
                        help="only the batch-size sweep on --sweep-sample chunk texts; merged into the existing results")
    add_data_arguments(parser)
    parser.add_argument("--big-file", default="", help="memory mode: comma-separated file sizes in MB")
    parser.add_argument("--embedder", choices=("hashing", "minilm-tokenizer", "minilm"), default="hashing", help="embedder of --big-file")
    parser.add_argument("--label", default="after", help="where --big-file results go (e.g. before, after)")
    parser.add_argument("--split-mb", type=float, default=0,
                        help="with --big-file: the same amount of text as files of this many MB (a control)")
    parser.add_argument("--big-file-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.big_file_child:
        big_file_child(args.big_file_child, args.embedder)
        return
    if args.big_file:
        big_file(args)
        return
    args.data_folder = open_data(args, {name: ("corpus.jsonl",) for name in CORPORA})
    if args.compare_only:
        compare_only(args)
        return
    if args.sweep_only:
        sweep_only(args)
        return

    from ragpipe.config import load_settings
    from ragpipe.ingest import index_folder
    from ragpipe.ingest.embed import get_embedder
    from ragpipe.ingest.store import ChunkStore

    folder, n_docs = fresh_folder(args)
    settings = load_settings()

    start = time.perf_counter()
    embedder = get_embedder(settings.embedding)
    model_load_s = time.perf_counter() - start
    batch_size = embedder.batch_size  # the one ragpipe index uses, so raw encode gets the same
    model = embedder.model
    texts, ours_chunker, splitter_chunker = chunk_texts(folder, settings, embedder)
    print(f"{n_docs} documents, {len(texts)} chunks; chunker {ours_chunker:.0f}/s vs SentenceSplitter {splitter_chunker:.0f}/s")
    model.encode(texts[:64], batch_size=batch_size, show_progress_bar=False)  # warm-up, both sides benefit

    half = len(texts) // 2
    raw_first = raw_encode(model, texts[:half], batch_size)
    report = index_folder(folder, settings)
    raw_second = raw_encode(model, texts[half:], batch_size)
    raw_s = raw_first + raw_second
    rss_ragpipe = peak_rss_mb()

    store = ChunkStore.open(report.index_dir, settings.store, embedding_model=embedder.name)
    indexed = sorted(c.text for c in store.iter_chunks())
    same_texts = indexed == sorted(texts)

    start = time.perf_counter()
    again = index_folder(folder, settings)
    reindex_inproc_s = time.perf_counter() - start
    assert again.embedded == 0 and not again.changed, "re-index of an unchanged folder embedded something"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ragpipe", "index", str(folder), "--json"], check=True, capture_output=True, cwd=REPO)
    reindex_process_s = time.perf_counter() - start

    tokens = [embedder.count_tokens(t) for t in texts]
    results: dict[str, object] = {
        "documents": n_docs,
        "chunks": report.chunks_added,
        "same_chunk_texts_as_raw": same_texts,
        "mean_tokens_per_chunk": round(sum(tokens) / len(tokens), 1),
        "ragpipe_chunks_per_s": round(report.chunks_added / report.seconds, 2),
        "ragpipe_embed_only_per_s": round(report.embeddings_per_s, 2),
        "encode_chunks_per_s": round(len(texts) / raw_s, 2),
        "first_index_s": round(report.seconds, 2),
        "raw_encode_s": round(raw_s, 2),
        "reindex_unchanged_s": round(reindex_process_s, 2),
        "reindex_unchanged_in_process_s": round(reindex_inproc_s, 3),
        "model_load_s": round(model_load_s, 2),
        "peak_rss_mb": round(rss_ragpipe, 1),
        "chunker_chunks_per_s": round(ours_chunker, 1),
        "llamaindex_sentence_splitter_chunks_per_s": round(splitter_chunker, 1),
    }
    results["ratio_ragpipe_vs_encode"] = round(results["ragpipe_chunks_per_s"] / results["encode_chunks_per_s"], 3)
    results["reindex_fraction_of_first"] = round(reindex_process_s / report.seconds, 4)

    results["settings"] = {
        "model": embedder.name,
        "batch_size": batch_size,
        "chunk_tokens": settings.chunking.chunk_tokens,
        "overlap_tokens": settings.chunking.overlap_tokens,
        "device": embedder.device,
    }
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    results["command"] = "python eval/bench_ingest.py " + " ".join(sys.argv[1:])
    results["data"] = args.data_folder.describe()
    print(f"ragpipe {results['ragpipe_chunks_per_s']}/s vs encode {results['encode_chunks_per_s']}/s", flush=True)
    save(results)  # each phase is saved as soon as it is done: a long run can be stopped early

    if not args.skip_llamaindex:
        li = llamaindex_run(folder, folder.parent)
        results["llamaindex_chunks_per_s"] = round(li["nodes_per_s"], 2)
        results["llamaindex_nodes"] = li["nodes"]
        results["llamaindex_s"] = round(li["seconds"], 2)
        results["llamaindex_embed_batch_size"] = li["embed_batch_size"]
        results["ratio_ragpipe_vs_llamaindex"] = round(results["ragpipe_chunks_per_s"] / results["llamaindex_chunks_per_s"], 3)
        results["peak_rss_mb_after_llamaindex"] = round(peak_rss_mb(), 1)
        save(results)

    if args.sweep_sample:
        results["encode_batch_sweep_texts_per_s"] = batch_sweep(model, texts[: args.sweep_sample])
        save(results)

    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    print(f"wrote {RESULTS}")


def compare_only(args: argparse.Namespace) -> None:
    """ragpipe then LlamaIndex on the same (smaller) folder, for when the full run has no time left."""
    from ragpipe.config import load_settings
    from ragpipe.ingest import index_folder
    from ragpipe.ingest.embed import get_embedder

    folder, n_docs = fresh_folder(args)
    settings = load_settings()
    get_embedder(settings.embedding).model.encode(["warm-up"] * 16, show_progress_bar=False)
    report = index_folder(folder, settings)
    li = llamaindex_run(folder, folder.parent)
    ours = report.chunks_added / report.seconds
    block = {
        "documents": n_docs,
        "ragpipe_chunks": report.chunks_added,
        "ragpipe_chunks_per_s": round(ours, 2),
        "llamaindex_nodes": li["nodes"],
        "llamaindex_chunks_per_s": round(li["nodes_per_s"], 2),
        "ratio_ragpipe_vs_llamaindex": round(ours / li["nodes_per_s"], 3),
        "llamaindex_embed_batch_size": li["embed_batch_size"],
        "command": "python eval/bench_ingest.py " + " ".join(sys.argv[1:]),
        "data": args.data_folder.describe(),
    }
    results = saved_results()
    results["llamaindex_comparison_subset"] = block
    results.setdefault("llamaindex_chunks_per_s", block["llamaindex_chunks_per_s"])
    results.setdefault("ratio_ragpipe_vs_llamaindex", block["ratio_ragpipe_vs_llamaindex"])
    save(results)
    for key, value in block.items():
        print(f"{key:<28}  {value}")


def sweep_only(args: argparse.Namespace) -> None:
    """The embedding batch-size sweep alone, on chunk texts of a --limit folder."""
    from ragpipe.config import load_settings
    from ragpipe.ingest.embed import get_embedder

    folder, _ = fresh_folder(args)
    settings = load_settings()
    embedder = get_embedder(settings.embedding)
    texts, _, _ = chunk_texts(folder, settings, embedder)
    sweep = batch_sweep(embedder.model, texts[: args.sweep_sample or 256])
    results = saved_results()
    results["encode_batch_sweep_texts_per_s"] = sweep
    results["sweep_command"] = "python eval/bench_ingest.py " + " ".join(sys.argv[1:])
    results["sweep_data"] = args.data_folder.describe()
    save(results)
    print(f"batch size -> texts/s: {sweep} (default {embedder.batch_size})")


def write_big_file(path: Path, megabytes: float) -> None:
    """Synthetic prose of ``megabytes`` MB: varied words and sentence lengths, paragraphs, some non-ASCII."""
    words = ("river stone cache widget lantern harbour quartz meadow signal orbit copper willow ledger "
             "canyon ember falcon garnet hollow island jasper kernel lagoon maple nectar café über").split()
    target = int(megabytes * 1_000_000) - 4096  # stay under a size limit of exactly that many MB
    with path.open("w", encoding="utf-8") as out:
        written, i = 0, 0
        while written < target - 2048:
            paragraph = []
            for _ in range(4 + i % 5):
                length = 6 + (i * 7) % 23
                paragraph.append(" ".join(words[(i * 31 + k * 17) % len(words)] for k in range(length)).capitalize()
                                 + f" number {i}.")
                i += 1
            block = " ".join(paragraph) + "\n\n"
            out.write(block)
            written += len(block.encode())


class MiniLMTokenizerOnly:
    """Chunks with MiniLM's own tokenizer (as ``ragpipe index`` does) but embeds with the hashing trick.

    Parsing, chunking and writing a 20 MB file are then measured with the real tokenizer, without
    the ~15 min the real model needs to embed it on this machine.
    """

    def __init__(self) -> None:
        from transformers import AutoTokenizer

        from ragpipe.ingest.testing import HashingEmbedder
        from ragpipe.models import packaged_minilm

        self.tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm()), local_files_only=True)
        self._vectors = HashingEmbedder(dim=384, max_tokens=256)
        self.name, self.dim, self.max_tokens = "bench/minilm-tokenizer+hashing", 384, 256

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def embed(self, texts, *, batch_size=None):  # noqa: ANN001, ANN201
        return self._vectors.embed(texts)

    def embed_query(self, text: str):  # noqa: ANN201
        return self._vectors.embed_query(text)


def big_file_child(path: Path, embedder_kind: str) -> None:
    """Index the folder holding ``path`` (one big file) and print one JSON line: chunks, seconds, peak RSS."""
    from ragpipe.config import load_settings
    from ragpipe.ingest import index_folder
    from ragpipe.ingest.embed import get_embedder
    from ragpipe.ingest.testing import HashingEmbedder

    settings = load_settings()
    if embedder_kind == "minilm":
        embedder = get_embedder(settings.embedding)
    elif embedder_kind == "minilm-tokenizer":
        embedder = MiniLMTokenizerOnly()
    else:
        embedder = HashingEmbedder(dim=384, max_tokens=256)
    rss_before = peak_rss_mb()
    at_last_write = [rss_before]

    def on_progress(event) -> None:  # noqa: ANN001 - the peak once every chunk is written, before the BM25 sync
        if event.phase == "write":
            at_last_write[0] = peak_rss_mb()

    start = time.perf_counter()
    report = index_folder(path.parent, settings, embedder=embedder, progress=on_progress)
    seconds = time.perf_counter() - start
    print(json.dumps({"chunks": report.chunks_added, "seconds": round(seconds, 2),
                      "chunks_per_s": round(report.chunks_added / seconds, 2),
                      "peak_rss_mb": round(peak_rss_mb(), 1), "rss_before_index_mb": round(rss_before, 1),
                      "peak_rss_before_bm25_sync_mb": round(at_last_write[0], 1),
                      "skipped": [s.reason for s in report.skipped]}))


def big_file(args: argparse.Namespace) -> None:
    """Peak RSS and chunks/s of indexing one big file per size, each in a fresh process."""
    rows = []
    for size in [float(s.strip().upper().removesuffix("MB")) for s in args.big_file.split(",") if s.strip()]:
        work = args.work.resolve() / f"big-{size:g}mb"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        if args.split_mb:  # the same text as files of --split-mb MB: what the store alone costs
            for n in range(max(1, round(size / args.split_mb))):
                write_big_file(work / f"part{n:04d}.txt", args.split_mb)
        else:
            write_big_file(work / "big.txt", size)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--big-file-child", str(min(work.glob("*.txt"))),
             "--embedder", args.embedder],
            check=True, capture_output=True, text=True, cwd=REPO, env=env,
        )
        row = {"file_mb": size, "files": len(list(work.glob("*.txt"))), **json.loads(done.stdout.strip().splitlines()[-1])}
        rows.append(row)
        shutil.rmtree(work)
        print(f"{args.label:<8} {args.embedder:<8} {size:>6g} MB in {row['files']:>3} file(s)  {row['chunks']:>7} chunks  "
              f"{row['chunks_per_s']:>8.1f} chunks/s  peak RSS {row['peak_rss_mb']:>7.1f} MB", flush=True)
    results = saved_results()
    block = results.setdefault("big_file", {})
    key = f"{args.embedder}_split_{args.split_mb:g}mb" if args.split_mb else args.embedder
    block.setdefault(args.label, {})[key] = {
        "runs": rows,
        "command": "python eval/bench_ingest.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    save(results)


def fresh_folder(args: argparse.Namespace) -> tuple[Path, int]:
    """An emptied work folder with ``--limit`` documents written into ``<work>/docs``."""
    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    folder = work / "docs"
    return folder, build_folder(folder, args.limit, args.data_folder)


def saved_results() -> dict[str, object]:
    """The results file as it stands, for a partial run to merge into."""
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def save(results: dict[str, object]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
