"""Render a node tree as ASCII (for the terminal) or Mermaid (for docs and notebooks).

Our own small renderer: the graphs are series-parallel by construction, so a recursive walk
is enough and no layout library (grandalf) is needed.
"""

from __future__ import annotations

from typing import Any

from ragpipe.graph.compose import Branch, Parallel, Sequence
from ragpipe.graph.node import Node


def _flow(node: Node) -> str:
    reads = ", ".join(sorted(node.input_fields())) or "-"
    writes = ", ".join(sorted(node.output_fields())) or "-"
    return f"{reads} → {writes}"


def _ascii_lines(node: Node, indent: str, width: int) -> list[str]:
    if isinstance(node, Sequence):
        return [line for child in node.nodes for line in _ascii_lines(child, indent, width)]
    if isinstance(node, Parallel):
        merge = getattr(node.merge, "__qualname__", "disjoint fields").split(".<locals>")[0]
        lines = [f"{indent}▼ parallel (merge: {merge})"]
        for i, branch in enumerate(node.branches):
            last = i == len(node.branches) - 1
            lines.append(f"{indent}{'└' if last else '├'}─┐")
            lines += _ascii_lines(branch, indent + ("  " if last else "│ ") + "  ", width)
        return lines
    if isinstance(node, Branch):
        lines = [f"{indent}◇ if {node.description or 'condition'}"]
        lines.append(f"{indent}├─ then:")
        lines += _ascii_lines(node.then, indent + "│    ", width)
        lines.append(f"{indent}└─ else:")
        if node.otherwise is None:
            lines.append(f"{indent}     (skip)")
        else:
            lines += _ascii_lines(node.otherwise, indent + "     ", width)
        return lines
    return [f"{indent}▼ {node.label:<{width}}  {_flow(node)}"]


def _leaf_width(node: Node) -> int:
    kids = node.children()
    return max((_leaf_width(k) for k in kids), default=len(node.label)) if kids else len(node.label)


def draw_ascii(root: Node) -> str:
    """One line per node, top to bottom, with what each node reads and writes."""
    lines = ["(question)"] + _ascii_lines(root, "", _leaf_width(root)) + ["(answer)"]
    return "\n".join(lines)


class _Mermaid:
    def __init__(self) -> None:
        self.lines = ["flowchart TD", '  start(["question"])']
        self.count = 0

    def new_id(self) -> str:
        self.count += 1
        return f"n{self.count}"

    def walk(self, node: Node, sources: list[str]) -> list[str]:
        """Add ``node`` after ``sources``; return the ids its successors must connect from."""
        if isinstance(node, Sequence):
            for child in node.nodes:
                sources = self.walk(child, sources)
            return sources
        if isinstance(node, Parallel):
            fork = self.new_id()
            self.lines.append(f"  {fork}{{{{fan-out}}}}")
            self._edges(sources, fork)
            ends = [end for branch in node.branches for end in self.walk(branch, [fork])]
            join = self.new_id()
            self.lines.append(f"  {join}{{{{merge}}}}")
            self._edges(ends, join)
            return [join]
        if isinstance(node, Branch):
            cond = self.new_id()
            self.lines.append(f'  {cond}{{"{node.description or "condition"}"}}')
            self._edges(sources, cond)
            then_ends = self.walk(node.then, [f"{cond}|yes|"])
            else_ends = self.walk(node.otherwise, [f"{cond}|no|"]) if node.otherwise else [f"{cond}|no|"]
            return then_ends + else_ends
        ident = self.new_id()
        self.lines.append(f'  {ident}["{node.label}"]')
        self._edges(sources, ident)
        return [ident]

    def _edges(self, sources: list[str], target: str) -> None:
        for source in sources:
            if source.endswith("|"):
                src, label = source.split("|", 1)
                self.lines.append(f"  {src} -->|{label.rstrip('|')}| {target}")
            else:
                self.lines.append(f"  {source} --> {target}")


def describe(node: Node) -> dict[str, Any]:
    """The node tree as plain data (``ragpipe graph --json``): the same structure the drawings show."""
    if isinstance(node, Sequence):
        return {"type": "sequence", "nodes": [describe(child) for child in node.nodes]}
    if isinstance(node, Parallel):
        merge = getattr(node.merge, "__qualname__", "disjoint fields").split(".<locals>")[0]
        return {"type": "parallel", "merge": merge, "branches": [describe(b) for b in node.branches]}
    if isinstance(node, Branch):
        return {"type": "branch", "condition": node.description or "condition", "then": describe(node.then),
                "else": None if node.otherwise is None else describe(node.otherwise)}
    return {"type": "node", "label": node.label, "reads": sorted(node.input_fields()),
            "writes": sorted(node.output_fields())}


def draw_mermaid(root: Node) -> str:
    """Mermaid ``flowchart`` text: paste into a Markdown file or mermaid.live."""
    m = _Mermaid()
    ends = m.walk(root, ["start"])
    m.lines.append('  finish(["answer"])')
    m._edges(ends, "finish")
    return "\n".join(m.lines)


def to_langchain_graph(root: Node) -> Any:
    """The node tree as a LangChain ``Graph``, so ``get_graph().draw_mermaid()`` works as usual."""
    from langchain_core.runnables.graph import Graph

    skin = root.as_runnable()
    graph = Graph()
    used: set[str] = set()

    def unique(label: str) -> str:
        ident, n = label, 1
        while ident in used:
            n += 1
            ident = f"{label}_{n}"
        used.add(ident)
        return ident

    def walk(node: Node, sources: list[Any]) -> list[Any]:
        if isinstance(node, Sequence):
            for child in node.nodes:
                sources = walk(child, sources)
            return sources
        if isinstance(node, Parallel):
            return [end for branch in node.branches for end in walk(branch, sources)]
        if isinstance(node, Branch):
            then_ends = walk(node.then, sources)
            else_ends = walk(node.otherwise, sources) if node.otherwise is not None else list(sources)
            return then_ends + else_ends
        added = graph.add_node(node.as_runnable(), id=unique(node.label))
        for source in sources:
            graph.add_edge(source, added)
        return [added]

    start = graph.add_node(skin.get_input_schema(), id="__start__")
    ends = walk(root, [start])
    end = graph.add_node(skin.get_output_schema(), id="__end__")
    for source in {n.id: n for n in ends}.values():
        graph.add_edge(source, end)
    return graph
