"""A small layered (Sugiyama-style) DAG layout: longest-path layers, dummy nodes on long edges,
barycenter ordering sweeps, then coordinates left to right. Pure; no Graphviz needed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

NODE_W = 190
NODE_H = 46
GAP_X = 70
GAP_Y = 22
MARGIN = 16
SWEEPS = 8


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    sub: str = ""  # the component or driver
    role: str = ""  # extractor | processor | writer
    status: str | None = None  # a run's step status; None in a pipeline picture


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    kind: str = "data"  # data | stream | view


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True, slots=True)
class Box:
    x: float
    y: float
    layer: int
    order: int


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: dict[str, Box]  # node id -> its box (top-left corner)
    routes: tuple[tuple[Edge, tuple[tuple[float, float], ...]], ...]  # edge -> points
    width: float
    height: float


def layers(graph: Graph) -> dict[str, int]:
    """Longest path from the sources: a node sits one layer right of its deepest upstream."""
    ids = [n.id for n in graph.nodes]
    preds: dict[str, list[str]] = {i: [] for i in ids}
    for edge in graph.edges:
        if edge.source in preds and edge.target in preds:
            preds[edge.target].append(edge.source)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(node: str) -> int:
        if node in layer:
            return layer[node]
        if node in visiting:  # a cycle (never in a checked pipeline): cut it here
            return 0
        visiting.add(node)
        layer[node] = max((depth(p) + 1 for p in preds[node]), default=0)
        visiting.discard(node)
        return layer[node]

    for node in ids:
        depth(node)
    return layer


def _barycenter(
    order: list[str], neighbours: dict[str, list[str]], position: dict[str, int]
) -> list[str]:
    def key(item: tuple[int, str]) -> tuple[float, int]:
        index, node = item
        near = [position[n] for n in neighbours[node] if n in position]
        return (sum(near) / len(near) if near else float(index), index)

    return [node for _, node in sorted(enumerate(order), key=key)]


def crossings(rows: Sequence[Sequence[str]], down: dict[str, list[str]]) -> int:
    """Edge crossings between adjacent layers (to keep the best ordering seen)."""
    total = 0
    for upper, lower in pairwise(rows):
        at = {n: i for i, n in enumerate(lower)}
        pairs = [(i, at[t]) for i, n in enumerate(upper) for t in down.get(n, []) if t in at]
        for a in range(len(pairs)):
            for b in range(a + 1, len(pairs)):
                if (pairs[a][0] - pairs[b][0]) * (pairs[a][1] - pairs[b][1]) < 0:
                    total += 1
    return total


def layout(graph: Graph) -> Layout:
    layer = layers(graph)
    known = set(layer)
    edges = [e for e in graph.edges if e.source in known and e.target in known]
    down: dict[str, list[str]] = {n: [] for n in layer}
    up: dict[str, list[str]] = {n: [] for n in layer}
    chains: dict[int, list[str]] = {}  # edge index -> its nodes, dummies included
    for index, edge in enumerate(edges):
        chain = [edge.source]
        for step in range(layer[edge.source] + 1, layer[edge.target]):
            dummy = f"\0{index}:{step}"
            layer[dummy] = step
            down[dummy], up[dummy] = [], []
            chain.append(dummy)
        chain.append(edge.target)
        for a, b in pairwise(chain):
            down[a].append(b)
            up[b].append(a)
        chains[index] = chain
    depth = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for node in [n.id for n in graph.nodes] + [d for d in layer if d.startswith("\0")]:
        if node in layer and node not in rows[layer[node]]:
            rows[layer[node]].append(node)
    best = [list(r) for r in rows]
    best_count = crossings(best, down)
    for sweep in range(SWEEPS):
        forward = sweep % 2 == 0
        indices = range(1, depth) if forward else range(depth - 2, -1, -1)
        for i in indices:
            neighbour_row = rows[i - 1] if forward else rows[i + 1]
            position = {n: p for p, n in enumerate(neighbour_row)}
            rows[i] = _barycenter(rows[i], up if forward else down, position)
        count = crossings(rows, down)
        if count < best_count:
            best, best_count = [list(r) for r in rows], count
    tallest = max((len(r) for r in best), default=0)
    height = MARGIN * 2 + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y
    boxes: dict[str, Box] = {}
    for i, row in enumerate(best):
        used = len(row) * NODE_H + max(len(row) - 1, 0) * GAP_Y
        top = (height - used) / 2
        for j, node in enumerate(row):
            boxes[node] = Box(MARGIN + i * (NODE_W + GAP_X), top + j * (NODE_H + GAP_Y), i, j)
    routes = []
    for index, edge in enumerate(edges):
        points = []
        chain = chains[index]
        for k, node in enumerate(chain):
            box = boxes[node]
            mid = box.y + NODE_H / 2
            if k == 0:
                points.append((box.x + NODE_W, mid))
            elif k == len(chain) - 1:
                points.append((box.x, mid))
            else:  # a dummy: pass through its slot
                points.append((box.x, mid))
                points.append((box.x + NODE_W, mid))
        routes.append((edge, tuple(points)))
    width = MARGIN * 2 + depth * NODE_W + max(depth - 1, 0) * GAP_X
    real = {n.id for n in graph.nodes}
    return Layout(
        {k: v for k, v in boxes.items() if k in real}, tuple(routes), width, max(height, NODE_H)
    )
