"""The pipeline's DAG from the IR: as Graphviz DOT, as Mermaid, or as the graph model the SVG
picture is drawn from (osiris.runtime.records). Pure functions over the IR."""

from __future__ import annotations

from osiris.compiler.ir import PipelineIR
from osiris.runtime.records.layout import Edge, Graph, Node

ROLE_FILLS = {"extractor": "#dbe8fb", "processor": "#ece3f8", "writer": "#d9f0ed"}


def streamed_edges(ir: PipelineIR) -> set[tuple[str, str]]:
    """Edges the runtime may stream (docs/runtime.md, the planner's rule without the run-time
    facts): an extractor read only by a writer that reads nothing else."""
    readers: dict[str, list[str]] = {}
    for up, down in ir.edges:
        readers.setdefault(up, []).append(down)
    found = set()
    for up, down in ir.edges:
        source, sink = ir.nodes[up], ir.nodes[down]
        if (
            source.role == "extractor"
            and sink.role == "writer"
            and readers[up] == [down]
            and set(sink.needs) == {up}
        ):
            found.add((up, down))
    return found


def _edges(ir: PipelineIR) -> list[tuple[str, str, str]]:
    """(upstream, downstream, kind) in the pipeline's order."""
    streams = streamed_edges(ir)
    position = {step_id: i for i, step_id in enumerate(ir.order)}
    ordered = sorted(ir.edges, key=lambda e: (position[e[1]], position[e[0]]))
    return [(u, v, "stream" if (u, v) in streams else "data") for u, v in ordered]


def pipeline_graph(ir: PipelineIR) -> Graph:
    nodes = tuple(Node(s.id, s.id, s.component, s.role) for s in ir.steps())
    return Graph(nodes, tuple(Edge(u, v, kind) for u, v, kind in _edges(ir)))


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(ir: PipelineIR) -> str:
    """Graphviz DOT: one box per step (id and component, filled by role), an arrow per edge,
    dashed where the data may stream."""
    lines = [
        f"digraph {_dot_string(ir.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for step in ir.steps():
        label = _dot_string(f"{step.id}\n{step.component}").replace("\n", "\\n")
        fill = ROLE_FILLS.get(step.role, "#eeeeee")
        lines.append(f'  {_dot_string(step.id)} [label={label}, fillcolor="{fill}"];')
    for up, down, kind in _edges(ir):
        extra = ' [style=dashed, label="stream"]' if kind == "stream" else ""
        lines.append(f"  {_dot_string(up)} -> {_dot_string(down)}{extra};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid entity codes for what would end or change a quoted label."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def to_mermaid(ir: PipelineIR) -> str:
    """A Mermaid flowchart: steps as n0, n1, … (ids may hold any character), labelled with
    their id and component, classed by role; `-. stream .->` where the data may stream."""
    names = {step_id: f"n{i}" for i, step_id in enumerate(ir.order)}
    lines = ["flowchart LR"]
    for step in ir.steps():
        label = f"{_mermaid_text(step.id)}<br/><small>{_mermaid_text(step.component)}</small>"
        lines.append(f'  {names[step.id]}["{label}"]:::{step.role or "step"}')
    for up, down, kind in _edges(ir):
        arrow = "-. stream .->" if kind == "stream" else "-->"
        lines.append(f"  {names[up]} {arrow} {names[down]}")
    for role, fill in ROLE_FILLS.items():
        lines.append(f"  classDef {role} fill:{fill},stroke:#555")
    return "\n".join(lines) + "\n"
