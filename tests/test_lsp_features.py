"""oml-lsp feature functions in process: diagnostics, completion, hover, navigation, fixes."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from oml_cases import API_SOURCES, HTTP_ALIASES

from osiris.compiler.frontend import check_text
from osiris.compiler.lsp import completion, features, hover, navigation
from osiris.compiler.lsp.positions import UTF8, UTF16, UTF32, column_from_units, units
from osiris.compiler.lsp.state import ConnectionsFile, DocumentState

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = (ROOT / "golden/mysql_duckdb_supabase/pipeline.oml").read_text(encoding="utf-8")
PASSWORD = "s3cr3t-pw-value"
CONNECTIONS = f"""connections:
  mysql:
    shop:
      host: db.internal
      database: shop
      user: reader
      password: {PASSWORD}
      default: true
    replica:
      host: replica.internal
      password: ${{MYSQL_PASSWORD}}
  supabase:
    main:
      url: postgresql://loader:{PASSWORD}@warehouse/db
      service_role_key: {PASSWORD}
"""
CURSOR = "‸"


@pytest.fixture
def connections(tmp_path: Path) -> ConnectionsFile:
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(CONNECTIONS, encoding="utf-8")
    return ConnectionsFile(str(path))


def at(
    text: str, connections: ConnectionsFile | None = None
) -> tuple[DocumentState, types.Position]:
    """A checked state of text with the cursor marker removed, and the marker's LSP position."""
    index = text.index(CURSOR)
    clean = text.replace(CURSOR, "", 1)
    line = clean[:index].count("\n")
    line_start = clean.rfind("\n", 0, index) + 1
    state = DocumentState("file:///work/p.oml", clean, 1)
    state.connections = connections.get() if connections else None
    state.current()
    return state, types.Position(line, units(clean[line_start:index], UTF16))


def labels(text: str, connections: ConnectionsFile | None = None) -> list[str]:
    state, position = at(text, connections)
    return [item.label for item in completion.complete(state, position).items]


def items(text: str, connections: ConnectionsFile | None = None) -> list[types.CompletionItem]:
    state, position = at(text, connections)
    return list(completion.complete(state, position).items)


def hover_text(text: str, connections: ConnectionsFile | None = None) -> str | None:
    state, position = at(text, connections)
    result = hover.hover(state, position)
    if result is None:
        return None
    assert isinstance(result.contents, types.MarkupContent)
    return result.contents.value


# -- positions --------------------------------------------------------------------------------


def test_units_and_columns_in_every_encoding() -> None:
    line = "é🎉x"
    assert [units(line, e) for e in (UTF8, UTF16, UTF32)] == [7, 4, 3]
    assert column_from_units(line, 3, UTF16) == 2  # after é and the emoji's two units
    assert column_from_units(line, 6, UTF8) == 2
    assert column_from_units(line, 99, UTF16) == 3


# -- diagnostics ------------------------------------------------------------------------------


def test_diagnostics_are_the_checkers() -> None:
    text = GOLDEN.replace("mysql.extractor", "mysql.extractr").replace("mode: write", "mode: wrte")
    expected = check_text(text, "/work/p.oml").diagnostics
    got = features.diagnose(text, "file:///work/p.oml")
    assert [d.code for d in got] == [d.code for d in expected]
    assert len(got) >= 2
    for lsp, ours in zip(got, expected, strict=True):
        assert lsp.source == "osiris"
        assert lsp.message.splitlines()[0] == ours.summary
        assert lsp.message == ours.summary + "\n" + ours.why
        assert ours.span is not None
        assert lsp.range.start == types.Position(
            ours.span.start.line - 1, ours.span.start.column - 1
        )
        assert lsp.range.end == types.Position(ours.span.end.line - 1, ours.span.end.column - 1)
        assert lsp.severity == types.DiagnosticSeverity.Error


def test_ranges_count_utf16_units_after_non_ascii() -> None:
    prefix = '  - {id: step-é🎉, x-note: "é🎉", component: '
    text = GOLDEN.replace(
        "  - id: extract-orders\n    component: mysql.extractor\n    mode: read\n",
        prefix + "mysql.extractr, mode: read}\n  - x-filler: 1\n    id: extract-orders\n"
        "    component: mysql.extractor\n    mode: read\n",
        1,
    )
    got = [d for d in features.diagnose(text, "file:///work/p.oml") if d.code == "OML014"]
    assert len(got) == 1
    line = text.splitlines()[got[0].range.start.line]
    code_points = line.index("mysql.extractr")
    assert got[0].range.start.character == code_points + 2  # two emoji, 2 UTF-16 units each
    assert got[0].range.end.character == code_points + 2 + len("mysql.extractr")
    utf32 = [
        d
        for d in features.diagnose(text, "file:///work/p.oml", encoding=UTF32)
        if d.code == "OML014"
    ]
    assert utf32[0].range.start.character == code_points


def test_broken_yaml_publishes_the_syntax_error_and_keeps_the_last_good_ast() -> None:
    state = DocumentState("file:///work/p.oml", GOLDEN, 1)
    state.current()
    broken = GOLDEN.replace("    mode: read\n", "    mode: read\n    config: {connection: [\n", 1)
    state.set_text(broken, 2)
    result = state.current()
    assert result.document is None
    assert [d.code for d in result.diagnostics] == ["OML001"]
    assert state.document is not None and state.document.step("daily") is not None


def test_a_result_for_an_older_version_is_not_current() -> None:
    state = DocumentState("file:///work/p.oml", GOLDEN, 1)
    old = features.analyse(GOLDEN, state.uri)
    state.set_text(GOLDEN + "\n", 2)
    assert state.accept(old, 1) is False
    assert state.result is None and state.good is old  # kept as last good AST, never published
    assert state.accept(features.analyse(state.text, state.uri), 2) is True


def test_connections_file_is_used_like_the_cli_option(connections: ConnectionsFile) -> None:
    text = GOLDEN.replace("@mysql.shop", "@mysql.shopp")
    loaded = connections.get()
    got = features.diagnose(text, "file:///work/p.oml", loaded)
    assert "OML027" in [d.code for d in got]
    assert "OML027" not in [d.code for d in features.diagnose(text, "file:///work/p.oml")]


# -- completion -------------------------------------------------------------------------------


def test_top_level_and_step_keys_not_already_present() -> None:
    got = labels(GOLDEN.replace("description: Daily", CURSOR + "\ndescription: Daily", 1))
    assert "params" not in got and "steps" not in got and "metadata" in got
    got = labels(GOLDEN.replace("    mode: read\n", "    mode: read\n    " + CURSOR + "\n", 1))
    assert "id" not in got and "config" not in got and "needs" in got and "description" in got


def test_component_names_with_title_and_description() -> None:
    got = items(GOLDEN.replace("component: mysql.extractor", "component: " + CURSOR))
    names = [i.label for i in got]
    assert "mysql.extractor" in names and "duckdb.processor" in names
    mysql = next(i for i in got if i.label == "mysql.extractor")
    assert mysql.detail == "MySQL / MariaDB extractor"
    assert isinstance(mysql.documentation, types.MarkupContent)
    assert "MariaDB" in mysql.documentation.value


def test_modes_for_the_steps_component_while_typing() -> None:
    assert labels(GOLDEN.replace("mode: read", "mode: r" + CURSOR)) == ["read", "extract"]
    assert labels(GOLDEN.replace("mode: write", "mode: " + CURSOR)) == ["write"]


def test_config_keys_required_first_without_present_ones() -> None:
    text = GOLDEN.replace("      table: daily_totals\n", "      " + CURSOR + "\n")
    got = items(text)
    names = [i.label for i in got]
    assert "connection" not in names and "write_mode" not in names
    assert "table" in names
    ordered = sorted(got, key=lambda i: i.sort_text or "")
    assert ordered[0].label == "table"  # the one required field not yet present
    assert ordered[0].detail == "string (required)"


def test_config_keys_on_a_new_line_under_config_that_does_not_parse() -> None:
    text = GOLDEN.replace(
        "    mode: transform\n",
        "    mode: transform\n    config:\n      q" + CURSOR + "\n  - x: [\n",
        1,
    )
    assert "query" in labels(text)


def test_enum_values_for_the_key_under_the_cursor() -> None:
    assert labels(GOLDEN.replace("write_mode: upsert", "write_mode: " + CURSOR)) == [
        "append",
        "replace",
        "upsert",
    ]


def test_connections_filtered_by_family(connections: ConnectionsFile) -> None:
    got = items(GOLDEN.replace('"@mysql.shop"', '"@' + CURSOR + '"'), connections)
    assert [i.label for i in got] == ["@mysql.shop", "@mysql.replica"]
    bare = items(GOLDEN.replace('"@mysql.shop"', CURSOR), connections)
    assert bare[0].text_edit is not None and bare[0].text_edit.new_text == '"@mysql.shop"'


def test_step_ids_in_needs_inputs_and_references() -> None:
    assert labels(GOLDEN.replace("needs: [extract-orders]", "needs: [" + CURSOR + "]")) == [
        "extract-orders",
        "load",
    ]
    got = items(GOLDEN.replace('inputs: {df: "${daily.df}"}', "inputs: {df: " + CURSOR + "}"))
    assert [i.label for i in got] == ["extract-orders", "daily"]
    assert got[1].text_edit is not None and got[1].text_edit.new_text == '"${daily.df}"'
    refs = items(GOLDEN.replace('"${daily.df}"', '"${' + CURSOR + '"'))
    assert [i.label for i in refs][:2] == ["extract-orders", "daily"]
    assert refs[1].text_edit is not None and refs[1].text_edit.new_text == "daily.df}"


def test_params_after_dollar_brace_params() -> None:
    got = items(GOLDEN.replace("${params.since}", "${params." + CURSOR))
    assert [i.label for i in got] == ["since"]


def test_secrets_never_appear_in_completion_or_hover(connections: ConnectionsFile) -> None:
    outputs = [
        repr(items(GOLDEN.replace('"@mysql.shop"', '"@' + CURSOR + '"'), connections)),
        repr(items(GOLDEN.replace('"@supabase.main"', '"@' + CURSOR + '"'), connections)),
        hover_text(GOLDEN.replace("@mysql.shop", "@mysql.sh" + CURSOR + "op"), connections),
        hover_text(GOLDEN.replace("@supabase.main", "@supabase.ma" + CURSOR + "in"), connections),
    ]
    assert all(outputs)
    for output in outputs:
        assert PASSWORD not in str(output)
    assert "db.internal" in str(outputs[2])


# -- hover ------------------------------------------------------------------------------------


def test_hover_component_field_and_step() -> None:
    assert "MySQL / MariaDB extractor" in (
        hover_text(GOLDEN.replace("mysql.extr", "mysql.ex" + CURSOR + "tr")) or ""
    )
    field = (
        hover_text(GOLDEN.replace("write_mode: upsert", "write_" + CURSOR + "mode: upsert")) or ""
    )
    assert "`string`" in field and "Default: `append`" in field and "`upsert`" in field
    step = hover_text(
        GOLDEN.replace("needs: [extract-orders]", "needs: [extract-o" + CURSOR + "rders]")
    )
    assert step is not None and "mysql.extractor" in step
    ref = hover_text(GOLDEN.replace('"${daily.df}"', '"${da' + CURSOR + 'ily.df}"'))
    assert ref is not None and "duckdb.processor" in ref


# -- navigation -------------------------------------------------------------------------------


def _definition(text: str, connections: ConnectionsFile | None = None) -> list[types.Location]:
    state, position = at(text, connections)
    return navigation.definition(state, position)


def test_definition_of_step_references() -> None:
    lines = GOLDEN.splitlines()
    id_line = lines.index("  - id: extract-orders")
    for text in (
        GOLDEN.replace("needs: [extract-orders]", "needs: [extract-o" + CURSOR + "rders]"),
        GOLDEN.replace('FROM "extract-orders"', 'FROM "extract-o' + CURSOR + 'rders"'),
    ):
        (location,) = _definition(text)
        assert location.range == types.Range(
            types.Position(id_line, 8), types.Position(id_line, 22)
        )
    (location,) = _definition(GOLDEN.replace('"${daily.df}"', '"${da' + CURSOR + 'ily.df}"'))
    assert location.range.start.line == lines.index("  - id: daily")


def test_definition_of_a_connection_alias(connections: ConnectionsFile) -> None:
    (location,) = _definition(
        GOLDEN.replace("@mysql.shop", "@mysql.sh" + CURSOR + "op"), connections
    )
    assert location.uri.endswith("osiris_connections.yaml")
    assert location.range.start == types.Position(2, 4)


def test_document_symbols_one_per_step() -> None:
    state, _ = at(GOLDEN + CURSOR)
    got = navigation.symbols(state)
    assert [(s.name, s.detail) for s in got] == [
        ("extract-orders", "mysql.extractor"),
        ("daily", "duckdb.processor"),
        ("load", "supabase.writer"),
    ]
    assert got[1].selection_range.start == types.Position(
        GOLDEN.splitlines().index("  - id: daily"), 8
    )
    broken, _ = at(GOLDEN + "  - x: [" + CURSOR)
    assert [s.name for s in navigation.symbols(broken)] == ["extract-orders", "daily", "load"]


# -- formatting and quick fixes ---------------------------------------------------------------


def test_formatting_is_one_whole_document_edit() -> None:
    state, _ = at(GOLDEN + CURSOR)
    assert features.formatting(state) == []
    head, steps = GOLDEN.split("steps:\n", 1)
    messy = head + "steps:\n" + "".join(line[2:] + "\n" for line in steps.splitlines())
    state.set_text(messy, 2)
    (edit,) = features.formatting(state)
    assert edit.new_text == GOLDEN
    assert edit.range.start == types.Position(0, 0)
    state.set_text("steps: [\n", 3)
    assert features.formatting(state) == []


def test_code_actions_from_suggestions() -> None:
    text = GOLDEN.replace("component: mysql.extractor", "component: mysql.extractr")
    state, _ = at(text + CURSOR)
    line = text.splitlines().index("    component: mysql.extractr")
    wanted = types.Range(types.Position(line, 16), types.Position(line, 16))
    fix_all, *actions = features.code_actions(state, wanted)
    assert fix_all.kind == features.FIX_ALL
    assert actions and actions[0].kind == types.CodeActionKind.QuickFix
    assert actions[0].is_preferred
    assert actions[0].title == "Change to 'mysql.extractor'"
    assert actions[0].edit is not None and actions[0].edit.changes is not None
    (edit,) = actions[0].edit.changes[state.uri]
    assert edit.new_text == "mysql.extractor"
    assert edit.range == types.Range(types.Position(line, 15), types.Position(line, 29))
    nowhere = types.Range(types.Position(0, 0), types.Position(0, 0))
    assert features.code_actions(state, nowhere, [types.CodeActionKind.QuickFix]) == []


# -- while typing: the text often does not parse ----------------------------------------------


NEW_STEP = "  - id: more\n    component: mysql.extractor\n"


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("  - id: more\n    component: " + CURSOR, "mysql.extractor"),
        ("  - id: more\n    component: duck" + CURSOR, "duckdb.processor"),
        (NEW_STEP + "    mode: r" + CURSOR, "read"),
        ("  - " + CURSOR, "id"),
        ("  - id: more\n    " + CURSOR, "component"),
        (NEW_STEP + "    mode: read\n    config:\n      " + CURSOR, "table"),
        (NEW_STEP + "    config: {" + CURSOR, "table"),
        (NEW_STEP + "    config:\n      connection: @" + CURSOR, "@mysql.shop"),
        (NEW_STEP + "    needs: [dai" + CURSOR, "daily"),
        (NEW_STEP + "    needs:\n      - " + CURSOR, "daily"),
        (NEW_STEP + "    config:\n      query: 'SELECT ${" + CURSOR, "daily"),
        (NEW_STEP + '    config:\n      query: "SELECT ${params.' + CURSOR, "since"),
    ],
)
def test_completion_while_typing(tail: str, expected: str, connections: ConnectionsFile) -> None:
    assert expected in labels(GOLDEN + tail, connections)


def test_hover_and_definition_keep_working_while_the_text_is_broken() -> None:
    text = (
        GOLDEN.replace("needs: [extract-orders]", "needs: [extract-o" + CURSOR + "rders]")
        + "  - x: [\n"
    )
    state, position = at(text)
    assert state.current().document is None
    (location,) = navigation.definition(state, position)
    assert location.range.start.line == GOLDEN.splitlines().index("  - id: extract-orders")
    shown = hover.hover(state, position)
    assert shown is not None and "mysql.extractor" in str(shown.contents)


def test_connections_setting_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from osiris.compiler.lsp.server import OmlLanguageServer

    monkeypatch.delenv("OSIRIS_CONNECTIONS", raising=False)
    server = OmlLanguageServer()
    server.root = str(tmp_path)
    uri = (tmp_path / "p.oml").as_uri()
    assert server.connections_path(uri) == str(tmp_path / "osiris_connections.yaml")
    for settings in (
        {"osiris": {"connections": "conf/c.yaml"}},
        {"connections": "conf/c.yaml"},
        {"osiris.connections": "conf/c.yaml"},
    ):
        server.setting = None
        server.configure(settings)
        assert server.connections_path(uri) == str(tmp_path / "conf/c.yaml")
    server.configure({"osiris": {"connections": "/abs/c.yaml", "debounceMs": 25}})
    assert server.connections_path(uri) == "/abs/c.yaml" and server.debounce == 0.025


def test_connections_follow_the_documents_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a setting, a document is checked against its own project's connections file,
    the one `omlc check` uses: the nearest osiris_connections.yaml above it."""
    from osiris.compiler.lsp.server import OmlLanguageServer

    monkeypatch.delenv("OSIRIS_CONNECTIONS", raising=False)
    project = tmp_path / "proj"
    (project / "pipelines").mkdir(parents=True)
    (project / "osiris_connections.yaml").write_text(CONNECTIONS)
    server = OmlLanguageServer()
    server.root = str(tmp_path)
    uri = (project / "pipelines" / "p.oml").as_uri()
    assert server.connections_path(uri) == str(project / "osiris_connections.yaml")
    loaded = server.connections(uri)
    assert loaded is not None and loaded.index is not None
    monkeypatch.setenv("OSIRIS_CONNECTIONS", str(tmp_path / "env.yaml"))
    assert server.connections_path(uri) == str(tmp_path / "env.yaml")


def test_a_value_typed_right_after_the_colon_gets_its_space() -> None:
    (first, *_) = items(GOLDEN + "  - id: more\n    component:" + CURSOR)
    assert first.text_edit is not None and first.text_edit.new_text == " " + first.label


# -- API sources: fields nested in object fields (paginator, incremental) ---------------------

API = API_SOURCES
HTTP_CONNECTIONS = (
    HTTP_ALIASES
    + """  mysql:
    db: {host: db.internal}
"""
)
PAGINATORS = ["cursor", "page_number", "offset", "json_link", "header_link", "single_page"]


def test_nested_fields_complete_their_keys_and_values() -> None:
    assert labels(API.replace("{type: cursor}", "{type: " + CURSOR + "}")) == PAGINATORS
    block = API.replace("paginator: {type: cursor}", "paginator:\n        type: " + CURSOR)
    assert labels(block) == PAGINATORS
    keys = labels(API.replace("{type: cursor}", "{type: cursor, " + CURSOR + "}"))
    assert "cursor_param" in keys and "next_url_path" in keys and "type" not in keys
    got = items(API.replace("        start_param", "        " + CURSOR + "start_param"))
    assert [i.label for i in got] == ["initial_value", "start_param", "lag"]  # cursor_path is there
    lag = next(i for i in got if i.label == "lag")
    assert lag.detail == "number" and "late-arriving" in str(lag.documentation)
    required = items(API.replace("        cursor_path: updated_at\n", "        " + CURSOR + "\n"))
    assert required[0].label == "cursor_path" and required[0].detail == "string (required)"


def test_hover_on_an_object_field_and_on_a_field_nested_in_it() -> None:
    paginator = hover_text(API.replace("paginator:", "pagi" + CURSOR + "nator:")) or ""
    assert paginator.startswith("**paginator**: `object`") and "next page" in paginator
    nested = hover_text(API.replace("{type: cursor}", "{ty" + CURSOR + "pe: cursor}")) or ""
    assert nested.startswith("**paginator.type**: `enum` (required)")
    assert "`header_link`" in nested
    start = hover_text(API.replace("start_param:", "start_" + CURSOR + "param:")) or ""
    assert start.startswith("**incremental.start_param**") and "updated_since" in start


def test_http_connections_are_offered_with_their_base_url(tmp_path: Path) -> None:
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(HTTP_CONNECTIONS, encoding="utf-8")
    got = items(API.replace('"@http.shop"', '"@' + CURSOR + '"'), ConnectionsFile(str(path)))
    assert [(i.label, i.detail) for i in got] == [
        ("@http.shop", "base_url=https://shop.example.com/api"),
        ("@http.backup", "base_url=https://backup.example.com"),
    ]
    assert "API_TOKEN" not in repr(got)
    typed = items(API.replace('"@http.shop"', '"@http.' + CURSOR + '"'), ConnectionsFile(str(path)))
    assert [i.label for i in typed] == ["@http.shop", "@http.backup"]
    assert typed[0].text_edit is not None and typed[0].text_edit.new_text == "@http.shop"
