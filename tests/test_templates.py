"""${...} templates parsed once by the front end: nodes with spans on the AST, one visitor, one
OML028 per bad string, and check, lowering and the LSP reading the same nodes."""

from __future__ import annotations

import dataclasses
import gc
import threading
from typing import Any

import pytest
from oml_cases import HEADER, extract, pipeline

from osiris.compiler.check import check, sql_with_param_defaults
from osiris.compiler.compile import compile_text
from osiris.compiler.frontend import check_text
from osiris.compiler.lsp import navigation
from osiris.compiler.lsp.state import DocumentState
from osiris.compiler.registry import load_registry
from osiris.oml import ast, expr, yamltree
from osiris.oml.dump import to_data
from osiris.oml.expr import Escape, Reference, Template, Text
from osiris.oml.parser import parse
from osiris.oml.visitor import NodeVisitor, child_nodes, find_all
from osiris.oml.yamltree import YScalar, gc_paused

PROCESSOR = """\
- id: calc
  component: duckdb.processor
  mode: transform
  needs: [src]
  config:
    query: "SELECT '$${x}' AS lit, ${params.n} AS n FROM src"
"""
WRITERS = """\
- id: a
  component: filesystem.csv_writer
  mode: write
  inputs: {df: "${calc.df}"}
  config: {path: "out/$${a}-${params.n}.csv"}
- id: b
  component: filesystem.csv_writer
  mode: write
  inputs: {df: "${steps.calc.df}"}
  config: {path: b.csv}
- id: c
  component: filesystem.csv_writer
  mode: write
  inputs: {df: "${ calc.df }"}
  config: {path: c.csv}
"""
PARAMS = HEADER + "params:\n  n: {type: integer, default: 5}\n"
FLOW = pipeline(extract() + PROCESSOR + WRITERS, PARAMS)
TEMPLATE_STRINGS = 5  # the query, a's path and the three inputs


def scalar(document: ast.Document, step_id: str, key: str) -> YScalar:
    step = document.step(step_id)
    assert step is not None and step.config is not None
    entry = step.config.get(key)
    assert entry is not None and isinstance(entry.value, YScalar)
    return entry.value


def test_templates_are_nodes_on_the_ast() -> None:
    document, diagnostics = parse(FLOW, "p.oml")
    assert document is not None and not diagnostics.items
    query = scalar(document, "calc", "query")
    assert query.template is not None
    assert [type(p) for p in query.template.parts] == [Text, Escape, Text, Reference, Text]
    (reference,) = find_all(query, Reference)
    assert reference.param == "n" and reference.span.start.line == query.span.start.line
    step = document.step("b")
    assert step is not None
    (item,) = step.inputs
    assert item.upstream is not None and item.upstream.path == ("steps", "calc", "df")
    assert scalar(document, "b", "path").template is None  # plain text: nothing to parse


def test_only_step_config_and_input_strings_are_templates() -> None:
    text = FLOW.replace("name: t\n", 'name: t\ndescription: "${not.parsed"\nx-note: "${x}"\n')
    document, diagnostics = parse(text, "p.oml")
    assert document is not None and not diagnostics.items
    templated = [s for s in find_all(document, YScalar) if s.template is not None]
    assert len(templated) == TEMPLATE_STRINGS


class _CountingParser:
    """Stands in for the lark parser and counts template parses."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.templates: list[str] = []

    def parse(self, text: str, start: str) -> Any:
        if start == "template":
            self.templates.append(text)
        return self.real.parse(text, start=start)


def test_each_template_is_parsed_once_by_the_front_end(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = _CountingParser(expr._parser())
    monkeypatch.setattr(expr, "_parser", lambda: counting)
    compiled = compile_text(FLOW, "p.oml", environ={})  # check passes, then lowering
    assert compiled.exit_code == 0, [d.summary for d in compiled.diagnostics]
    assert sorted(counting.templates) == sorted(set(counting.templates))
    assert len(counting.templates) == TEMPLATE_STRINGS
    state = DocumentState("file:///work/p.oml", FLOW, 1)
    state.current()  # the LSP's own check parses the text once more
    assert len(counting.templates) == 2 * TEMPLATE_STRINGS
    document = state.document
    assert document is not None
    assert navigation.upstream(state, "a") == ["calc"]
    assert sql_with_param_defaults(document, scalar(document, "calc", "query")) is not None
    assert len(counting.templates) == 2 * TEMPLATE_STRINGS  # navigation reads the parsed nodes


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("where: a = ${params.n}", "${params.n}"),
        ('where: "a = \\"x\\"\\t${params.n}"', "${params.n}"),
        ("where: 'it''s ${ params.n }'", "${ params.n }"),
        ('where: "é🎉 $${params.n} ${params.n}"', "${params.n}"),
        ("where: |\n        line one\n        é ${params.n} two", "${params.n}"),
        ("where: >\n        folded\n        text ${params.n}", "${params.n}"),
        ("where: plain\n        over lines ${params.n}", "${params.n}"),
    ],
    ids=[
        "plain",
        "double-quoted",
        "single-quoted",
        "non-ascii-escape",
        "literal",
        "folded",
        "multi",
    ],
)
def test_reference_spans_point_at_the_written_reference(value: str, written: str) -> None:
    text = pipeline(
        extract().replace("config: {path: data/in.csv}", "config:\n    path: x\n    " + value),
        PARAMS,
    )
    document, _ = parse(text, "p.oml")
    assert document is not None
    (reference,) = find_all(document, Reference)
    raw = text.encode()
    assert raw[reference.span.start.byte : reference.span.end.byte].decode() == written
    line = text.splitlines()[reference.span.start.line - 1]
    start, end = reference.span.start.column - 1, reference.span.end.column - 1
    assert line[start:end] == written


def test_bad_expression_is_reported_once_per_string() -> None:
    flow = FLOW.replace("${params.n} AS n", "${params. AS n").replace(
        '"${ calc.df }"', '"${calc.df"'
    )
    lines = flow.splitlines()
    expected = [
        i + 1 for i, line in enumerate(lines) if "${params. " in line or '${calc.df"' in line
    ]
    document, diagnostics = parse(flow, "p.oml")
    assert document is not None
    check(document, load_registry(), diagnostics)  # the query is read by three passes
    bad = [d for d in diagnostics if d.code == "OML028"]
    assert sorted(d.span.start.line for d in bad if d.span) == expected
    assert [d.code for d in check_text(flow, "p.oml").diagnostics].count("OML028") == 2


def test_check_lowering_and_lsp_agree() -> None:
    result = compile_text(FLOW, "p.oml", environ={})
    assert result.ir is not None and result.checked.context is not None
    state = DocumentState("file:///work/p.oml", FLOW, 1)
    state.current()
    for step_id in ("a", "b", "c"):
        assert result.checked.context.upstream(step_id) == ["calc"]
        assert navigation.upstream(state, step_id) == ["calc"]
        assert result.ir.nodes[step_id].inputs == (("df", "calc"),)
    assert result.ir.nodes["a"].config["path"] == "out/${a}-5.csv"
    document = result.checked.document
    assert document is not None
    query = sql_with_param_defaults(document, scalar(document, "calc", "query"))
    assert (
        query == result.ir.nodes["calc"].config["query"] == "SELECT '${x}' AS lit, 5 AS n FROM src"
    )


def _node_types() -> set[type]:
    modules = (ast, yamltree, expr)
    return {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and "span" in {f.name for f in dataclasses.fields(value)}
    }


class _Record(NodeVisitor):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def visit(self, node: Any) -> Any:
        self.seen.append(node)
        return super().visit(node)


def test_the_visitor_reaches_every_node_type_through_child_fields() -> None:
    text = FLOW.replace("name: t\n", "name: t\nmetadata: {owner: me}\nx-note: [1]\n").replace(
        "params:\n", "profiles:\n  prod: {params: {n: 7}}\nparams:\n  m: 1\n"
    )
    document, _ = parse(text, "p.oml")
    record = _Record()
    record.visit(document)
    nodes = _node_types()
    assert {type(n) for n in record.seen} == nodes
    for node in record.seen:
        listed = getattr(type(node), "child_fields", ())
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            items = value if type(value) is tuple else (value,)
            if any(type(item) in nodes for item in items):
                assert field.name in listed, f"{type(node).__name__}.{field.name} holds nodes"
    assert list(find_all(document, Reference)) == [n for n in record.seen if type(n) is Reference]


def test_visit_dispatches_by_class_name_and_returns_the_result() -> None:
    class Paths(NodeVisitor):
        def visit_Template(self, node: Template) -> list[str]:
            return [".".join(r.path) for r in find_all(node, Reference)]

        def visit_YScalar(self, node: YScalar) -> Any:
            return node.value if node.template is None else self.visit(node.template)

    document, _ = parse(FLOW, "p.oml")
    assert document is not None
    query = scalar(document, "calc", "query")
    assert Paths().visit(query) == ["params.n"]
    assert child_nodes(query) == [query.template]
    assert Paths().visit(document) is None  # generic_visit walks, returns nothing


def test_ast_dump_shows_template_nodes() -> None:
    document, _ = parse(FLOW, "p.oml")
    query = to_data(document)["steps"][1]["config"]["query"]
    assert query["kind"] == "Template"
    assert [p["kind"] for p in query["parts"]] == ["Text", "Escape", "Text", "Reference", "Text"]
    assert query["parts"][3]["path"] == ["params", "n"]


def test_gc_pause_nests_and_restores_the_previous_state() -> None:
    assert gc.isenabled()
    with gc_paused:
        with gc_paused:
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused:
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused:
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_gc_pause_shared_by_two_threads() -> None:
    inside, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    states: list[bool] = []

    def first() -> None:
        with gc_paused:
            inside.set()
            second_in.wait()
        first_out.set()

    def second() -> None:
        inside.wait()
        with gc_paused:
            second_in.set()
            first_out.wait()
            states.append(gc.isenabled())  # the first thread left; the pause holds
        states.append(gc.isenabled())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert states == [False, True]
