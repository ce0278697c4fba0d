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
    Template,
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


@pytest.mark.parametrize("brk", ["\n", "\r\n", "\r", "\u2028"])
def test_entry_spans_follow_the_files_lines(brk: str) -> None:
    # libyaml counts a lone CR and LS as line breaks; spans count the file's lines ("\n").
    text = f'a: "x{brk}y"\nb:\n  c: [1, 2]\n  d: é\n'
    source = SourceText("f", text)
    node = parse_yaml(source, DiagnosticList())
    assert isinstance(node, YMap)
    inner = node.entries[1].value
    assert isinstance(inner, YMap)
    for entry, first, last in [
        (node.entries[0], "a:", '"\n'),
        (inner.entries[0], "c:", "]"),
        (inner.entries[1], "d:", "é"),
    ]:
        start = text.index(first)
        end = text.index(last, start) + (1 if last == '"\n' else len(last))
        assert entry.span == source.span(start, end)


def test_folded_block_scalar_has_no_fold_marks() -> None:
    node = parse_yaml(SourceText("f", "q: >-\n  SELECT 1\n  FROM t\n"), DiagnosticList())
    assert isinstance(node, YMap)
    entry = node.get("q")
    assert entry is not None and isinstance(entry.value, YScalar)
    assert entry.value.value == "SELECT 1 FROM t"


def template(text: str) -> Template:
    """A bare string parsed as a template: offsets in the string are offsets in the source."""
    source = SourceText("t", text)
    return parse_template(text, source.whole(), source.span)


def test_template_parts_and_escape() -> None:
    parsed = template("a ${params.x} $${y} ${steps.load.df}${ b-c.df }")
    refs = [p for p in parsed.parts if isinstance(p, Reference)]
    assert [r.path for r in refs] == [("params", "x"), ("steps", "load", "df"), ("b-c", "df")]
    assert refs[0].param == "x" and refs[1].step == "load" and refs[2].step == "b-c"
    assert refs[2].attribute == "df"
    assert [type(p).__name__ for p in parsed.parts] == [
        "Text",
        "Reference",
        "Text",
        "Escape",
        "Text",
        "Reference",
        "Reference",
    ]
    assert "".join(p.text for p in parsed.parts if not isinstance(p, Reference)) == "a  ${y} "
    assert [(p.span.start.column, p.span.end.column) for p in parsed.parts] == [
        (1, 3),
        (3, 14),
        (14, 15),
        (15, 18),
        (18, 21),
        (21, 37),
        (37, 48),
    ]
    whole = template("${params.n}").whole_reference
    assert whole is not None and whole.path == ("params", "n") and whole.span.end.column == 12
    assert template("cost $5 and $$ 3").parts[0].text == "cost $5 and $$ 3"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "offset"),
    [("x ${params.", 11), ("${}", 2), ("${a b}", 4), ("${a.}", 4)],
)
def test_template_errors_point_at_the_column(text: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as err:
        template(text)
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
