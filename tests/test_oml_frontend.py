"""The language front end on its own: spans, YAML tree, expressions, parser and renderers."""

from __future__ import annotations

import json

import pytest
from oml_cases import CSV_TO_CSV

from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.expr import (
    ConnectionRef,
    ExpressionError,
    Reference,
    parse_connection_ref,
    parse_template,
)
from osiris.oml.parser import parse
from osiris.oml.render import render_json, render_text
from osiris.oml.span import SourceText
from osiris.oml.yamltree import YMap, YScalar, parse_yaml


def test_positions_count_characters_and_utf8_bytes() -> None:
    source = SourceText("f", "a: é🎉x\nb: 1\n")
    pos = source.position(5)  # the 'x'
    assert (pos.line, pos.column, pos.byte) == (1, 6, 9)
    assert source.position(8).line == 2 and source.line_text(2) == "b: 1"


def test_yaml_scalars_follow_yaml_1_2() -> None:
    diagnostics = DiagnosticList()
    node = parse_yaml(
        SourceText("f", "a: yes\nb: 0x10\nc: 1_000\nd: ~\ne: '5'\nf: .inf\n"), diagnostics
    )
    assert isinstance(node, YMap)
    assert node.to_python() == {
        "a": "yes",
        "b": 16,
        "c": 1000,
        "d": None,
        "e": "5",
        "f": float("inf"),
    }


def test_folded_block_scalar_has_no_fold_marks() -> None:
    node = parse_yaml(SourceText("f", "q: >-\n  SELECT 1\n  FROM t\n"), DiagnosticList())
    assert isinstance(node, YMap)
    entry = node.get("q")
    assert entry is not None and isinstance(entry.value, YScalar)
    assert entry.value.value == "SELECT 1 FROM t"


def test_template_parts_and_escape() -> None:
    template = parse_template("a ${params.x} $${y} ${steps.load.df}${ b-c.df }")
    refs = template.references
    assert [r.path for r in refs] == [("params", "x"), ("steps", "load", "df"), ("b-c", "df")]
    assert refs[0].param == "x" and refs[1].step == "load" and refs[2].step == "b-c"
    assert refs[2].attribute == "df"
    assert "".join(p.text for p in template.parts if not isinstance(p, Reference)) == "a  ${y} "
    assert parse_template("${params.n}").whole_reference == Reference(("params", "n"), 0, 11)
    assert parse_template("cost $5 and $$ 3").parts[0].text == "cost $5 and $$ 3"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "offset"),
    [("x ${params.", 11), ("${}", 2), ("${a b}", 4), ("${a.}", 4)],
)
def test_template_errors_point_at_the_column(text: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as err:
        parse_template(text)
    assert err.value.offset == offset


def test_connection_refs() -> None:
    assert parse_connection_ref("@mysql.shop-1") == ConnectionRef("mysql", "shop-1")
    assert parse_connection_ref("@duckdb") == ConnectionRef("duckdb", None)
    for bad in ("@", "@MySQL", "@mysql.", "@mysql.a.b", "mysql.a"):
        with pytest.raises(ExpressionError):
            parse_connection_ref(bad)


def test_parser_builds_typed_ast_with_spans() -> None:
    document, diagnostics = parse(CSV_TO_CSV, "p.oml")
    assert not diagnostics.items and document is not None
    assert [s.key for s in document.steps] == ["src", "out"]
    out = document.steps[1]
    assert out.needs[0].id == "src" and out.needs[0].span.start.line == 11
    assert out.component is not None and out.component.value == "filesystem.csv_writer"


def test_renderers() -> None:
    document, diagnostics = parse(CSV_TO_CSV.replace("name: t", "name: t\nnmae: x"), "p.oml")
    sorted_ = diagnostics.sorted()
    text = render_text(sorted_, {"p.oml": document.source}, color=False)  # type: ignore[union-attr]
    assert "p.oml:3:1: error[OML004]: unknown key 'nmae' in the pipeline" in text
    assert "3 | nmae: x\n  | ^^^^" in text and "Did you mean 'name'?" in text
    assert text.rstrip().endswith("Invalid: 1 error.")
    report = render_json(sorted_)
    json.dumps(report)
    assert report["diagnostics"][0]["range"]["start"] == {"line": 3, "column": 1, "byte": 29}
    capped = render_text(sorted_ * 5, {}, limit=2)
    assert "… and 3 more" in capped
