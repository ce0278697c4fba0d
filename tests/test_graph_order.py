"""Our hand-written graph algorithms against networkx's, on random step graphs.

The compiler orders steps with Kahn's algorithm (ties: source order) and finds cycles with a
depth-first search, so that it does not pay networkx's import (~150 ms) on every compile;
networkx is the reference here and a test-only dependency.
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oml_cases import pipeline

from osiris.compiler.frontend import check_text
from osiris.compiler.lower import topological_order


@st.composite
def step_graphs(
    draw: st.DrawFn, acyclic: bool | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """Step ids in source order and (upstream, downstream) edges between them."""
    count = draw(st.integers(min_value=1, max_value=9))
    ids = [f"s{i}" for i in draw(st.permutations(range(count)))]
    pairs = st.tuples(st.sampled_from(ids), st.sampled_from(ids))
    edges = draw(st.lists(pairs, max_size=count * 2))
    if acyclic:
        rank = {step: i for i, step in enumerate(sorted(ids))}  # a hidden order to respect
        edges = [(u, d) for u, d in edges if rank[u] < rank[d]]
    return ids, edges


def _graph(ids: list[str], edges: list[tuple[str, str]]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(ids)
    graph.add_edges_from(edges)
    return graph


@settings(max_examples=300)
@given(step_graphs(acyclic=True))
def test_order_is_networkx_lexicographic_order_by_source_position(
    case: tuple[list[str], list[tuple[str, str]]],
) -> None:
    ids, edges = case
    expected = nx.lexicographical_topological_sort(_graph(ids, edges), key=ids.index)
    assert list(topological_order(ids, edges)) == list(expected)


@settings(max_examples=300)
@given(step_graphs())
def test_order_refuses_exactly_the_cyclic_graphs(
    case: tuple[list[str], list[tuple[str, str]]],
) -> None:
    ids, edges = case
    if nx.is_directed_acyclic_graph(_graph(ids, edges)):
        assert sorted(topological_order(ids, edges)) == sorted(ids)
    else:
        with pytest.raises(ValueError, match="cycle"):
            topological_order(ids, edges)


@settings(max_examples=150, deadline=None)
@given(step_graphs())
def test_the_checker_reports_a_cycle_exactly_when_there_is_one(
    case: tuple[list[str], list[tuple[str, str]]],
) -> None:
    ids, edges = case
    needs = {step: sorted({u for u, d in edges if d == step}) for step in ids}
    text = pipeline(
        "".join(
            f"- {{id: {step}, component: duckdb.processor, mode: transform, "
            f"needs: [{', '.join(needs[step])}], config: {{query: 'SELECT 1'}}}}\n"
            for step in ids
        )
    )
    found = check_text(text, "p.oml")
    cycles = [d for d in found.diagnostics if d.code == "OML033"]
    graph = _graph(ids, edges)
    assert bool(cycles) == (not nx.is_directed_acyclic_graph(graph))
    for diagnostic in cycles:
        if diagnostic.summary.startswith("dependency cycle: "):
            path = diagnostic.summary.removeprefix("dependency cycle: ").split(" -> ")
            assert path[0] == path[-1] and len(path) > 2
            assert all(graph.has_edge(u, d) for u, d in itertools.pairwise(path))
