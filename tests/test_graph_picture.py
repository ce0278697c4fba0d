"""The pipeline's DAG as a picture: the layered layout, `omlc --emit dot|mermaid`, and
`osiris graph` (SVG, HTML) checked in a real browser against the layout's coordinates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osiris.compiler.cli import omlc_main, osiris_main
from osiris.runtime.records.layout import NODE_H, NODE_W, Edge, Graph, Node, crossings, layout
from osiris.runtime.records.svg import ROLE_COLOURS

SMALL = """\
oml_version: "0.1.0"
name: small
steps:
  - id: orders
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/orders.csv}
  - id: totals
    component: duckdb.processor
    mode: transform
    needs: [orders]
    config: {query: "SELECT count(*) AS n FROM orders"}
  - id: save
    component: filesystem.csv_writer
    mode: write
    needs: [totals]
    config: {path: out/totals.csv}
  - id: raw
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/raw.csv}
  - id: raw-copy
    component: filesystem.parquet_writer
    mode: write
    needs: [raw]
    config: {path: out/raw.parquet}
"""

SMALL_DOT = r"""digraph "small" {
  rankdir=LR;
  node [shape=box, style="rounded,filled", fontname="Helvetica"];
  "orders" [label="orders\nfilesystem.csv_extractor", fillcolor="#dbe8fb"];
  "totals" [label="totals\nduckdb.processor", fillcolor="#ece3f8"];
  "save" [label="save\nfilesystem.csv_writer", fillcolor="#d9f0ed"];
  "raw" [label="raw\nfilesystem.csv_extractor", fillcolor="#dbe8fb"];
  "raw-copy" [label="raw-copy\nfilesystem.parquet_writer", fillcolor="#d9f0ed"];
  "orders" -> "totals";
  "totals" -> "save";
  "raw" -> "raw-copy" [style=dashed, label="stream"];
}
"""

SMALL_MERMAID = """flowchart LR
  n0["orders<br/><small>filesystem.csv_extractor</small>"]:::extractor
  n1["totals<br/><small>duckdb.processor</small>"]:::processor
  n2["save<br/><small>filesystem.csv_writer</small>"]:::writer
  n3["raw<br/><small>filesystem.csv_extractor</small>"]:::extractor
  n4["raw-copy<br/><small>filesystem.parquet_writer</small>"]:::writer
  n0 --> n1
  n1 --> n2
  n3 -. stream .-> n4
  classDef extractor fill:#dbe8fb,stroke:#555
  classDef processor fill:#ece3f8,stroke:#555
  classDef writer fill:#d9f0ed,stroke:#555
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    (tmp_path / "osiris.yaml").write_text("{}\n", encoding="utf-8")
    path = tmp_path / "small.oml"
    path.write_text(SMALL, encoding="utf-8")
    return path


def test_emit_dot_and_mermaid(pipeline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert omlc_main([str(pipeline), "--emit", "dot"]) == 0
    assert capsys.readouterr().out == SMALL_DOT
    assert omlc_main([str(pipeline), "--emit", "mermaid"]) == 0
    assert capsys.readouterr().out == SMALL_MERMAID
    assert osiris_main(["graph", str(pipeline)]) == 0  # DOT on stdout by default
    assert capsys.readouterr().out == SMALL_DOT


def test_dot_quotes_what_it_must(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "osiris.yaml").write_text("{}\n", encoding="utf-8")
    path = tmp_path / "q.oml"
    path.write_text(SMALL.replace("name: small", "name: 'say \"hi\" \\ bye'"), encoding="utf-8")
    assert omlc_main([str(path), "--emit", "dot"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == r'digraph "say \"hi\" \\ bye" {'


def test_graph_of_an_invalid_pipeline_prints_its_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.oml"
    bad.write_text(SMALL.replace("needs: [totals]", "needs: [nowhere]"), encoding="utf-8")
    assert osiris_main(["graph", str(bad), "-o", str(tmp_path / "g.svg")]) == 2
    captured = capsys.readouterr()
    assert "nowhere" in captured.err and not (tmp_path / "g.svg").exists()
    assert osiris_main(["graph", str(bad), "-o", str(tmp_path / "g.png")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_layers_follow_the_longest_path_and_long_edges_bend() -> None:
    graph = Graph(
        tuple(Node(n, n) for n in ("a", "b", "c", "d")),
        (Edge("a", "b"), Edge("b", "c"), Edge("a", "c"), Edge("c", "d"), Edge("a", "d")),
    )
    placed = layout(graph)
    assert [placed.boxes[n].layer for n in "abcd"] == [0, 1, 2, 3]
    routes = {(e.source, e.target): points for e, points in placed.routes}
    assert len(routes[("a", "b")]) == 2  # adjacent layers: straight from one box to the next
    assert len(routes[("a", "d")]) == 2 + 2 * 2  # through two dummy slots
    assert routes[("a", "d")][0] == (placed.boxes["a"].x + NODE_W, placed.boxes["a"].y + NODE_H / 2)


def test_barycenter_ordering_removes_crossings() -> None:
    # written so that the input order crosses: x1->y2, x2->y1
    graph = Graph(
        (Node("x1", "x1"), Node("x2", "x2"), Node("y1", "y1"), Node("y2", "y2")),
        (Edge("x1", "y2"), Edge("x2", "y1")),
    )
    assert crossings([["x1", "x2"], ["y1", "y2"]], {"x1": ["y2"], "x2": ["y1"]}) == 1
    placed = layout(graph)
    rows = sorted(placed.boxes.items(), key=lambda kv: (kv[1].layer, kv[1].order))
    order = [[n for n, b in rows if b.layer == layer] for layer in (0, 1)]
    assert crossings(order, {"x1": ["y2"], "x2": ["y1"]}) == 0


def test_graph_svg_in_chromium_puts_the_nodes_where_the_layout_says(
    pipeline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from browser import close, hex_rgb, load

    svg = tmp_path / "small.svg"
    assert osiris_main(["graph", str(pipeline), "-o", str(svg), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "svg"
    text = svg.read_text(encoding="utf-8")
    width = int(text.split('width="', 1)[1].split('"', 1)[0])
    height = int(text.split('height="', 1)[1].split('"', 1)[0])
    page = load(svg, tmp_path / "browser", size=(width, height))
    assert page.console == [] and page.requests == []
    shot = page.screenshot
    assert shot is not None
    nodes = text.split('<g class="node" ')[1:]
    assert len(nodes) == 5
    for node in nodes:
        attrs = dict(part.split("=", 1) for part in node.split(">", 1)[0].replace('"', "").split())
        x, y = int(attrs["data-x"]), int(attrs["data-y"])
        colour = hex_rgb(ROLE_COLOURS[attrs["data-role"]])
        # inside the box's top-right corner, clear of its text: the role's colour
        assert close(shot.pixel(x + NODE_W - 7, y + 3), colour), attrs["data-step"]
        # just left of the box: the white page
        assert close(shot.pixel(x - 4, y + 3), (255, 255, 255)), attrs["data-step"]
    html = tmp_path / "small.html"
    assert osiris_main(["graph", str(pipeline), "-o", str(html)]) == 0
    page = load(html, tmp_path / "browser-html", shot=False)
    assert page.console == [] and page.requests == []
    for step_id in ("orders", "totals", "save", "raw", "raw-copy"):
        assert f'data-step="{step_id}"' in page.dom
    assert page.dom.count('class="edge edge-stream"') == 1
