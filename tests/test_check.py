"""The checker: every diagnostic family on small pipelines, spans, suggestions and valid pipelines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from oml_cases import (
    CHECK_CASES,
    CONNECTIONS,
    TWO_INPUTS_INPUT_DF,
    VALID_CASES,
    extract,
    mysql_writer,
    pipeline,
)

from osiris.compiler.connections import ConnectionsIndex, index_connections
from osiris.compiler.frontend import check_file, check_text
from osiris.oml.diagnostics import Diagnostic, DiagnosticList, Severity
from osiris.oml.span import SourceText

ROOT = Path(__file__).resolve().parent.parent


def connections() -> ConnectionsIndex:
    index = index_connections(SourceText("osiris_connections.yaml", CONNECTIONS), DiagnosticList())
    assert index is not None
    return index


def codes(text: str, **kw: object) -> set[str]:
    return {d.code for d in check_text(text, "p.oml", **kw).diagnostics}  # type: ignore[arg-type]


@pytest.mark.parametrize(("case", "text", "expected"), CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_check_reports(case: str, text: str, expected: set[str]) -> None:
    result = check_text(text, "p.oml", connections=connections())
    found = {d.code for d in result.diagnostics}
    assert expected <= found, f"{case}: expected {expected}, got {found}"
    for d in result.diagnostics:
        assert d.summary and "\n" not in d.summary
        assert d.why, f"{d.code} has no explanation"
        if d.span is not None:
            assert 1 <= d.span.start.line <= d.span.end.line
            assert d.span.start.byte <= d.span.end.byte <= len(text.encode())


@pytest.mark.parametrize(("case", "text"), VALID_CASES, ids=[c[0] for c in VALID_CASES])
def test_valid_pipelines_are_clean(case: str, text: str) -> None:
    result = check_text(text, "p.oml", connections=connections())
    assert result.ok, [(d.code, d.summary) for d in result.diagnostics]
    assert not result.diagnostics


def test_unknown_alias_with_connections_file() -> None:
    text = pipeline(extract() + mysql_writer('{connection: "@mysql.shpo", table: t}'))
    result = check_text(text, "p.oml", connections=connections())
    (d,) = [d for d in result.diagnostics if d.code == "OML027"]
    assert "Did you mean 'shop'" in d.why
    assert d.suggestions[0].replacement == '"@mysql.shop"'
    assert codes(text) == set()  # without a connections file the alias cannot be judged


def test_default_connection_reference_resolves() -> None:
    text = pipeline(extract() + mysql_writer('{connection: "@mysql", table: t}'))
    assert codes(text, connections=connections()) == set()
    text = pipeline(
        extract()
        + "- {id: l, component: postgres.writer, mode: write, needs: [src], config: {connection: '@postgres', table: t}}\n"
    )
    assert codes(text, connections=connections()) == set()  # the only alias is the default


def _broken_connections_file(tmp_path: Path) -> list[Diagnostic]:
    diagnostics = DiagnosticList()
    assert index_connections(SourceText("c.yaml", "connections: [1"), diagnostics) is None
    return list(diagnostics)


def _missing_file(tmp_path: Path) -> list[Diagnostic]:
    return list(check_file(tmp_path / "nope.oml").diagnostics)


def _latin1_file(tmp_path: Path) -> list[Diagnostic]:
    bad = tmp_path / "latin1.oml"
    bad.write_bytes(b"name: caf\xe9\n")
    (d,) = check_file(bad).diagnostics
    assert d.span is not None and d.span.start.byte == 9
    return [d]


def _broken_spec(tmp_path: Path) -> list[Diagnostic]:
    import shutil

    from osiris.compiler.registry import load_registry

    root = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    spec = root / "components" / "mysql.writer" / "spec.yaml"
    spec.write_text(spec.read_text().replace("version: 1.0.0", "version: one"))
    registry = load_registry(root)
    return list(check_text(pipeline(extract()), "p.oml", registry=registry).diagnostics)


def _override_warning_spec(tmp_path: Path) -> list[Diagnostic]:
    """A spec may still let a step override a field the connection does not pin, with a warning."""
    import shutil

    from osiris.compiler.registry import load_registry

    root = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    spec = root / "components" / "postgres.extractor" / "spec.yaml"
    spec.write_text(
        spec.read_text().replace(
            "{field: schema, override: allowed}", "{field: schema, override: warning}"
        )
    )
    text = pipeline(
        "- {id: e, component: postgres.extractor, mode: read, "
        "config: {connection: '@postgres.main', table: t, schema: s}}\n"
    )
    return list(check_text(text, "p.oml", registry=load_registry(root)).diagnostics)


def _connections_file_problems(tmp_path: Path) -> list[Diagnostic]:
    diagnostics = DiagnosticList()
    text = (
        "connections:\n  mysql:\n"
        "    a: {host: h, user: u, database: d, password: '${PW', default: true}\n"
        "    b: {host: h, user: u, database: d, password: hunter2, default: true}\n"
        "    c: {host: h, user: u, database: d, pasword: '${PW}'}\n"
    )
    assert index_connections(SourceText("c.yaml", text), diagnostics) is not None
    return diagnostics.sorted()


def _connection_schema_problem(tmp_path: Path) -> list[Diagnostic]:
    """A connection that fails its family's schema (user missing), an error under strict."""
    diagnostics = DiagnosticList()
    text = "connections:\n  mysql:\n    a: {host: h, database: d}\n"
    index_connections(SourceText("c.yaml", text), diagnostics, validation="strict")
    return diagnostics.sorted()


# Problems that need files on disk: (id, make the diagnostics in tmp_path, exact codes).
FILE_CASES: list[tuple[str, Callable[[Path], list[Diagnostic]], list[str]]] = [
    ("broken-connections-file", _broken_connections_file, ["OML040"]),
    ("missing-file", _missing_file, ["OML000"]),
    ("not-utf8", _latin1_file, ["OML000"]),
    ("broken-spec", _broken_spec, ["OML050"]),
    ("override-warning-spec", _override_warning_spec, ["OML023"]),
    (
        "connections-file-problems",
        _connections_file_problems,
        ["OML102", "OML101", "OML103", "OML104"],
    ),
    ("connection-schema-problem", _connection_schema_problem, ["OML105"]),
]


@pytest.mark.parametrize(("case", "make", "expected"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_file_cases(
    case: str, make: Callable[[Path], list[Diagnostic]], expected: list[str], tmp_path: Path
) -> None:
    assert [d.code for d in make(tmp_path)] == expected


def test_did_you_mean_and_quick_fix_for_component() -> None:
    text = pipeline(extract().replace("csv_extractor", "csv_extractr"))
    (d,) = check_text(text, "p.oml").diagnostics
    assert d.code == "OML014"
    assert d.suggestions[0].replacement == "filesystem.csv_extractor"
    line = text.splitlines()[d.span.start.line - 1]  # type: ignore[union-attr]
    assert line[d.span.start.column - 1 : d.span.end.column - 1] == "filesystem.csv_extractr"  # type: ignore[union-attr]


def test_expression_error_points_inside_the_string() -> None:
    text = pipeline(extract(config='{path: "data/${params."}'))
    (d,) = [d for d in check_text(text, "p.oml").diagnostics if d.code == "OML028"]
    line = text.splitlines()[d.span.start.line - 1]  # type: ignore[union-attr]
    assert line[d.span.start.column - 1] == '"'  # the end of the string, where a name was expected
    assert "expected a name" in d.summary


def test_spans_are_utf8_byte_accurate() -> None:
    text = "# café ☕ 🎉\n" + pipeline(extract().replace("csv_extractor", "csv_extractr"))
    (d,) = check_text(text, "p.oml").diagnostics
    assert d.span is not None
    raw = text.encode()
    assert raw[d.span.start.byte : d.span.end.byte].decode() == "filesystem.csv_extractr"


def test_cycle_names_the_path() -> None:
    case = dict((c[0], c[1]) for c in CHECK_CASES)["cycle"]
    (d,) = [d for d in check_text(case, "p.oml").diagnostics if d.code == "OML033"]
    assert "a -> b -> a" in d.summary


def test_input_df_with_two_inputs_is_an_error_on_the_sql_line() -> None:
    (d,) = check_text(TWO_INPUTS_INPUT_DF, "p.oml").diagnostics
    assert d.code == "OML037" and d.span is not None
    line = TWO_INPUTS_INPUT_DF.splitlines()[d.span.start.line - 1]
    assert line.strip() == "FROM input_df JOIN more USING (id)"
    assert line[d.span.start.column - 1 : d.span.end.column - 1] == "input_df"
    assert d.summary == "the query of 'p' reads 'input_df', but 'p' has 2 inputs: src, more"
    assert [s.replacement for s in d.suggestions] == ["src", "more"]
    # `input` the same way; with one input both aliases stay valid (VALID_CASES).
    text = TWO_INPUTS_INPUT_DF.replace("FROM input_df", "FROM input")
    (d,) = check_text(text, "p.oml").diagnostics
    assert d.code == "OML037" and "reads 'input'," in d.summary


def test_processor_table_typo_suggests_input() -> None:
    case = dict((c[0], c[1]) for c in CHECK_CASES)["processor-unknown-table"]
    (d,) = [d for d in check_text(case, "p.oml").diagnostics if d.code == "OML037"]
    assert "'src'" in d.why and d.suggestions and d.suggestions[0].replacement == "src"


def test_unused_param_is_only_a_warning() -> None:
    case = dict((c[0], c[1]) for c in CHECK_CASES)["unused-param"]
    result = check_text(case, "p.oml")
    assert result.ok
    assert [d.severity for d in result.diagnostics] == [Severity.WARNING]


def test_errors_are_collected_not_raised_one_by_one() -> None:
    text = pipeline(
        extract(config="{path: x, delimter: ';'}")
        + extract(step_id="src")
        + mysql_writer('{connection: "@postgres.x", table: t, write_mode: upsrt}', needs="[nope]")
    )
    assert {"OML017", "OML013", "OML026", "OML019", "OML032"} <= codes(text)
