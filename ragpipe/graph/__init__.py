"""Composable pipeline graphs: nodes over one typed ``RunState``, built on langchain-core Runnables.

Importing this package imports langchain-core; ``import ragpipe`` alone does not.
"""

from ragpipe.graph.compose import Branch, Parallel, Sequence, fuse_rrf
from ragpipe.graph.node import GraphBuildError, Node, context_from, with_context
from ragpipe.graph.nodes import AcceptNode, CutoffNode, GenerateNode, RetrieveNode, SelectNode, VerifyNode
from ragpipe.graph.presets import PRESETS, build_graph, preset_names
from ragpipe.graph.state import RunState

__all__ = [
    "AcceptNode",
    "Branch",
    "CutoffNode",
    "GenerateNode",
    "GraphBuildError",
    "Node",
    "PRESETS",
    "Parallel",
    "RetrieveNode",
    "RunState",
    "SelectNode",
    "Sequence",
    "VerifyNode",
    "build_graph",
    "context_from",
    "fuse_rrf",
    "preset_names",
    "with_context",
]
