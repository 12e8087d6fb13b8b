"""Composable pipeline graphs: plain async nodes over one typed ``RunState``.

Importing this package does not import LangChain; ``node.as_runnable()`` (or any Runnable-style
use such as ``node | runnable``, callbacks or ``get_graph()``) loads it on demand.
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
