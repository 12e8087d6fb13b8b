"""Evaluation datasets (BEIR, QA, poisoning) loaded into one typed form, and written out as documents.

Every kind becomes an ``EvalDataset``: queries with whatever gold data the format has (graded
relevant documents, gold answers, the attacker's target answer, which documents are poisoned)
plus the documents to index. ``write_documents`` turns the documents into a folder of one text
file per document, named after its id, so evaluation goes through the real indexing path and a
retrieved chunk maps back to its document by file name.

Formats (see each data folder's README): BEIR ``corpus.jsonl`` / ``queries.jsonl`` /
``qrels.tsv``; QA ``qa.jsonl`` {id, question, answers, contexts[{doc_id,title,text,is_supporting}]};
poisoning ``poison.jsonl`` {id, question, correct_answers, target_answer, poisoned_texts, clean_texts}.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ragpipe.errors import ConfigError
from ragpipe.evaluate.datafolder import DATASETS_DOC
from ragpipe.schema import stable_hash

DatasetKind = Literal["beir", "qa", "poisoning"]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class EvalDocument(BaseModel):
    id: str
    text: str
    title: str | None = None
    poisoned: bool = False


class EvalQuery(BaseModel):
    """One question and its gold data; fields a format lacks stay empty."""

    id: str
    question: str
    answers: list[str] = Field(default_factory=list)
    relevant: dict[str, int] = Field(default_factory=dict)  # doc id -> graded relevance
    poisoned_doc_ids: list[str] = Field(default_factory=list)
    target_answer: str | None = None
    doc_ids: list[str] = Field(default_factory=list)  # the documents that belong to this query

    @property
    def reference(self) -> str:
        """The reference answer for judged metrics (the first gold answer)."""
        return self.answers[0] if self.answers else ""


class EvalDataset(BaseModel):
    name: str
    kind: DatasetKind
    path: str
    queries: list[EvalQuery]
    documents: dict[str, EvalDocument]

    def subset(self, limit: int | None, *, seed: int = 0, corpus: Literal["all", "queries"] = "all") -> EvalDataset:
        """The first ``limit`` queries of a seeded shuffle; ``corpus="queries"`` keeps only their documents."""
        queries = list(self.queries)
        if limit is not None and limit < len(queries):
            queries = sorted(random.Random(seed).sample(queries, limit), key=lambda q: self.queries.index(q))
        documents = self.documents
        if corpus == "queries":
            keep = {d for q in queries for d in (*q.doc_ids, *q.relevant, *q.poisoned_doc_ids)}
            documents = {d: doc for d, doc in self.documents.items() if d in keep}
        return self.model_copy(update={"queries": queries, "documents": documents})


def detect_kind(path: Path) -> DatasetKind:
    if (path / "poison.jsonl").is_file():
        return "poisoning"
    if (path / "qa.jsonl").is_file():
        return "qa"
    if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file():
        return "beir"
    raise ConfigError(f"{path} is not a dataset folder: expected poison.jsonl, qa.jsonl or corpus.jsonl + queries.jsonl")


def load_dataset(path: str | Path, kind: DatasetKind | None = None) -> EvalDataset:
    """Load the dataset folder at ``path`` (kind detected from its files unless given)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"dataset folder {folder} does not exist; see {DATASETS_DOC} for each dataset's source and layout")
    kind = kind or detect_kind(folder)
    loader = {"beir": _load_beir, "qa": _load_qa, "poisoning": _load_poisoning}[kind]
    queries, documents = loader(folder)
    return EvalDataset(name=folder.name, kind=kind, path=str(folder), queries=queries, documents=documents)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"dataset file {path} is missing")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ConfigError(f"{path}:{number}: not valid JSON: {err}") from None


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    if not path.is_file():
        return qrels
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(float(row["score"]))
    return qrels


def _load_beir(folder: Path) -> tuple[list[EvalQuery], dict[str, EvalDocument]]:
    documents = {str(r["_id"]): EvalDocument(id=str(r["_id"]), text=r.get("text", ""), title=r.get("title") or None)
                 for r in _jsonl(folder / "corpus.jsonl")}
    qrels = read_qrels(folder / "qrels.tsv")
    answers = {str(r["id"]): list(r.get("answers", [])) for r in _jsonl(folder / "qa.jsonl")} \
        if (folder / "qa.jsonl").is_file() else {}
    queries = [EvalQuery(id=str(r["_id"]), question=r["text"], relevant=qrels.get(str(r["_id"]), {}),
                         answers=answers.get(str(r["_id"]), []))
               for r in _jsonl(folder / "queries.jsonl")]
    return queries, documents


def _load_qa(folder: Path) -> tuple[list[EvalQuery], dict[str, EvalDocument]]:
    queries, documents = [], {}
    for r in _jsonl(folder / "qa.jsonl"):
        doc_ids = []
        for i, ctx in enumerate(r.get("contexts", [])):
            doc_id = str(ctx.get("doc_id") or f"{r['id']}-{i}")
            documents.setdefault(doc_id, EvalDocument(id=doc_id, text=ctx.get("text", ""), title=ctx.get("title")))
            doc_ids.append(doc_id)
        supporting = r.get("supporting_doc_ids") or [
            str(c.get("doc_id")) for c in r.get("contexts", []) if c.get("is_supporting")]
        queries.append(EvalQuery(id=str(r["id"]), question=r["question"], answers=list(r.get("answers", [])),
                                 relevant={str(d): 1 for d in supporting}, doc_ids=doc_ids))
    return queries, documents


def _load_poisoning(folder: Path) -> tuple[list[EvalQuery], dict[str, EvalDocument]]:
    queries, documents = [], {}
    for r in _jsonl(folder / "poison.jsonl"):
        qid = str(r["id"])
        base = stable_hash(qid, length=10)
        clean_ids, poison_ids = [], []
        titles = [c.get("title") for c in r.get("clean_contexts", [])]
        for i, text in enumerate(r.get("clean_texts", [])):
            doc_id = f"clean-{base}-{i:02d}"
            documents[doc_id] = EvalDocument(id=doc_id, text=text, title=titles[i] if i < len(titles) else None)
            clean_ids.append(doc_id)
        for i, text in enumerate(r.get("poisoned_texts", [])):
            doc_id = f"poison-{base}-{i:02d}"
            documents[doc_id] = EvalDocument(id=doc_id, text=text, poisoned=True)
            poison_ids.append(doc_id)
        answers = list(r.get("correct_answers") or ([r["correct_answer"]] if r.get("correct_answer") else []))
        queries.append(EvalQuery(id=qid, question=r["question"], answers=answers, target_answer=r.get("target_answer"),
                                 poisoned_doc_ids=poison_ids, doc_ids=clean_ids + poison_ids))
    return queries, documents


def file_name(doc_id: str) -> str:
    """A file name that maps back to ``doc_id`` (unsafe characters replaced, hash appended if so)."""
    safe = _UNSAFE.sub("_", doc_id)
    return f"{safe}.txt" if safe == doc_id else f"{safe}-{stable_hash(doc_id, length=8)}.txt"


def write_documents(dataset: EvalDataset, folder: str | Path) -> dict[str, str]:
    """Write one ``.txt`` per document (unchanged files left alone); returns file stem -> doc id.

    Files of documents no longer in the dataset are removed so the index matches the dataset.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    stems: dict[str, str] = {}
    for doc in dataset.documents.values():
        name = file_name(doc.id)
        body = f"{doc.title}\n\n{doc.text}" if doc.title else doc.text
        path = target / name
        if not path.is_file() or path.read_text(encoding="utf-8") != body:
            path.write_text(body, encoding="utf-8")
        stems[Path(name).stem] = doc.id
    for stale in target.glob("*.txt"):
        if stale.stem not in stems:
            stale.unlink()
    return stems
