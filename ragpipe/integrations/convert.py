"""Conversions between ragpipe's ``ScoredChunk`` and the document types of LangChain / LlamaIndex.

Chunks going out carry their provenance (id, source, position, character span, scores) in the
metadata, so coming back in they are the same chunk; foreign documents without that metadata
get a content-derived id and their list order as the score.
"""

from __future__ import annotations

from typing import Any

from ragpipe.graph.state import RunState
from ragpipe.schema import Chunk, ScoredChunk, stable_hash

PROVENANCE_KEYS = ("chunk_id", "doc_id", "source", "position", "start_char", "end_char")


def chunk_metadata(item: ScoredChunk, **extra: Any) -> dict[str, Any]:
    """The metadata ragpipe attaches to an outgoing document."""
    return {**item.chunk.metadata, **item.flat(*PROVENANCE_KEYS, "score", "stage_scores"), **extra}


def scored_chunk(text: str, metadata: dict[str, Any] | None, index: int, *, ident: str | None = None,
                 score: float | None = None) -> ScoredChunk:
    """A ``ScoredChunk`` for a document that came from a framework (ours or foreign)."""
    meta = dict(metadata or {})
    source = str(meta.get("source") or meta.get("file_path") or meta.get("file_name") or "")
    chunk_id = str(meta.get("chunk_id") or ident or stable_hash("external", source, text))
    doc_id = str(meta.get("doc_id") or source or chunk_id)
    position = meta.get("position")
    rest = {k: v for k, v in meta.items() if k not in PROVENANCE_KEYS and k not in ("score", "stage_scores")}
    chunk = Chunk(
        id=chunk_id,
        doc_id=doc_id,
        position=int(position) if isinstance(position, int) else index,
        text=text,
        source=source,
        start_char=meta.get("start_char"),
        end_char=meta.get("end_char"),
        metadata=rest,
    )
    value = score if score is not None else meta.get("score")
    value = float(value) if isinstance(value, (int, float)) else 1.0 / (index + 1)
    return ScoredChunk(chunk=chunk, score=value, rank=index + 1, stage_scores=dict(meta.get("stage_scores") or {}))



def kept_with_verdicts(state: RunState) -> list[tuple[str, dict[str, str]]]:
    """Each kept chunk's id with its verdict as flat string metadata, which both frameworks can store."""
    verdicts = {v.chunk_id: v for v in state.verdicts}
    kept = []
    for item in state.evidence:
        verdict = verdicts.get(item.id)
        meta = {"verdict": verdict.reason if verdict else "", "verdict_flags": ",".join(verdict.flags) if verdict else ""}
        kept.append((item.id, meta))
    return kept
