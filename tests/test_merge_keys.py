"""YAML merge keys (`<<: *defaults`, `<<: [*a, *b]`) wherever mappings appear, with spans at the
merged values' origin."""

from __future__ import annotations

import json
import textwrap

import yaml
from oml_cases import HEADER, WITH_MERGE_KEYS

from osiris.compiler.compile import compile_text
from osiris.compiler.frontend import check_text
from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import SourceText
from osiris.oml.yamltree import YMap, parse_yaml

SEMANTICS = textwrap.dedent(
    """\
    a: &a {x: 1, y: 2}
    b: &b {y: 3, z: 4, w: 0}
    c:
      w: 9
      <<: [*a, *b]
      x: 5
    d: &d {<<: *a, q: 1}
    e: {<<: *d, y: 7}
    f: {"<<": literal}
    """
)


def test_yaml_1_1_semantics_explicit_keys_win_then_earlier_merges() -> None:
    node = parse_yaml(SourceText("f", SEMANTICS), DiagnosticList())
    assert isinstance(node, YMap)
    data = node.to_python()
    assert data["c"] == {"w": 9, "x": 5, "y": 2, "z": 4}
    assert data["e"] == {"x": 1, "y": 7, "q": 1}  # nested: d merges a, e merges d
    assert data["f"] == {"<<": "literal"}  # a quoted "<<" is an ordinary key
    # The same values as PyYAML's own (YAML 1.1) loader gives.
    assert data == yaml.safe_load(SEMANTICS)


def test_merged_entries_keep_the_spans_where_they_are_written() -> None:
    node = parse_yaml(SourceText("f", SEMANTICS), DiagnosticList())
    assert isinstance(node, YMap)
    c = node.get("c")
    assert c is not None and isinstance(c.value, YMap)
    spans = {e.key.value: (e.span.start.line, e.span.start.column) for e in c.value.entries}
    assert spans == {"w": (4, 3), "y": (1, 14), "z": (2, 14), "x": (6, 3)}


def _written_out(text: str) -> str:
    """The pipeline with its merges expanded by hand."""
    return HEADER + textwrap.dedent(
        """\
        steps:
          - id: src
            component: filesystem.csv_extractor
            mode: read
            config: {delimiter: ";", header: true, path: data/in.csv}
          - id: other
            component: filesystem.csv_extractor
            mode: read
            config: {delimiter: "|", header: true, path: data/other.csv}
          - id: out
            component: filesystem.csv_writer
            mode: write
            needs: [src]
            config: {path: out.csv}
        """
    )


def test_merges_in_steps_and_configs_compile_like_the_written_out_pipeline() -> None:
    merged = compile_text(WITH_MERGE_KEYS, "p.oml")
    plain = compile_text(_written_out(WITH_MERGE_KEYS), "p.oml")
    assert merged.emitted is not None and plain.emitted is not None, merged.diagnostics
    assert not merged.diagnostics
    for name in plain.emitted.files:
        if name.startswith("cfg/"):
            assert merged.emitted.files[name] == plain.emitted.files[name], name
    assert merged.emitted.manifest["steps"] == plain.emitted.manifest["steps"]
    assert json.loads(merged.emitted.files["cfg/other.json"])["delimiter"] == "|"


def test_an_error_in_a_merged_value_points_at_its_origin_and_names_the_merge() -> None:
    text = WITH_MERGE_KEYS.replace("header: true", 'header: true, delimitr: ","')
    result = check_text(text, "p.oml")
    (d,) = result.diagnostics
    assert d.code == "OML017" and d.span is not None
    assert d.span.start.line == 3  # the x-csv line, where the typo is written
    assert text.splitlines()[2].startswith("x-csv: &csv")
    assert d.why.endswith(
        "This value is merged in by '<<: *csv' on line 11 and "
        "'<<: [{delimiter: \"|\"}, *csv]' on line 15."
    )


def test_a_merge_of_a_scalar_is_a_wrong_type() -> None:
    result = check_text(WITH_MERGE_KEYS.replace("<<: *csv\n", "<<: plain\n"), "p.oml")
    (d,) = result.diagnostics
    assert d.code == "OML008" and "'<<'" in d.summary and d.span is not None
    assert d.span.start.line == 11 and d.span.start.column == 11


def test_explicit_duplicates_are_still_duplicates() -> None:
    text = WITH_MERGE_KEYS.replace("path: data/in.csv", "path: data/in.csv\n      path: x.csv")
    assert {d.code for d in check_text(text, "p.oml").diagnostics} == {"OML002"}
