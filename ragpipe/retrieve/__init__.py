"""Retrieval: dense (vector store) and BM25 candidates, fused, with metadata filters."""

from ragpipe.retrieve.bm25 import BM25Index
from ragpipe.retrieve.filters import And, Cond, Or, parse_filter
from ragpipe.retrieve.fusion import FusionConfig, fuse
from ragpipe.retrieve.retriever import MODES, Retriever

__all__ = ["MODES", "And", "BM25Index", "Cond", "FusionConfig", "Or", "Retriever", "fuse", "parse_filter"]
