"""Ready-made graphs. Every preset verifies its evidence unless ``verify=False``.

- ``fast``:      retrieve → cutoff (score elbow, no LLM) → verify → generate
- ``listwise``:  retrieve → listwise selector → verify → generate
- ``groupwise``: retrieve → groupwise selector → verify → generate
- ``meteora``:   retrieve → METEORA rationale selector → verify → generate (the default)

Any other registered selector name gives the same shape with that selector.
"""

from __future__ import annotations

from typing import Any

from ragpipe.graph.compose import Sequence
from ragpipe.graph.nodes import AcceptNode, CutoffNode, GenerateNode, RetrieveNode, SelectNode, VerifyNode

PRESETS = ("fast", "listwise", "groupwise", "meteora")
DEFAULT_PRESET = "meteora"


def preset_names() -> list[str]:
    """The presets plus every registered selector (each usable as ``method``)."""
    names = list(PRESETS)
    try:
        from ragpipe.select import available_selectors

        names += [n for n in available_selectors() if n not in names]
    except ImportError:  # selectors not installed in this build
        pass
    return names


def build_graph(
    method: str = DEFAULT_PRESET,
    *,
    verify: bool = True,
    retriever: Any = None,
    top_k: int | None = None,
    selector_config: dict[str, Any] | None = None,
    selector: Any = None,
    cutoff: str = "zscore_gap",
    verifier: Any = None,
    generator: Any = None,
) -> Sequence:
    """The graph for ``method``; components not given are built from defaults when first needed.

    ``selector_config`` holds the method's options (for ``fast``, the cutoff's: ``method``,
    ``recall_guard``, ``budget``, …), as in a ``[select.<method>]`` settings table.
    """
    retrieve = RetrieveNode(retriever=retriever, top_k=top_k)
    if method == "fast":
        options = dict(selector_config or {})
        select: Any = CutoffNode(method=options.pop("method", cutoff),
                                 recall_guard=options.pop("recall_guard", True), options=options)
    else:
        select = SelectNode(method=method, config=selector_config or {}, selector=selector)
    check = VerifyNode(verifier=verifier) if verify else AcceptNode()
    generate = GenerateNode(generator=generator)
    return Sequence.of(retrieve, select, check, generate)
