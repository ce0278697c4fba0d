"""Pipelines written for upstream Osiris (0.5.7): accepted names and shapes, hints, mended texts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from oml_cases import extract, mysql_writer, pipeline

from osiris.compiler.compile import compile_text
from osiris.compiler.frontend import check_text
from osiris.oml.diagnostics import Diagnostic
from osiris.runtime.connections import ConnectionResolver
from osiris.runtime.secrets import Redactor


def diagnostics(text: str) -> list[Diagnostic]:
    return list(check_text(text, "p.oml").diagnostics)


def codes(text: str) -> set[str]:
    return {d.code for d in diagnostics(text)}


def config_of(text: str, step: str) -> dict[str, object]:
    result = compile_text(text, "p.oml")
    assert result.emitted is not None, [(d.code, d.summary) for d in result.diagnostics]
    (node,) = [s for s in result.emitted.manifest["steps"] if s["id"] == step]
    loaded: dict[str, object] = json.loads(result.emitted.files[node["cfg"]])
    return loaded


# -- item: names and shapes ------------------------------------------------------------------


def test_primary_key_as_a_string_is_one_column() -> None:
    text = pipeline(
        extract()
        + mysql_writer('{connection: "@mysql", table: t, write_mode: upsert, primary_key: id}')
    )
    assert codes(text) == set()
    assert config_of(text, "load")["primary_key"] == ["id"]


def test_legacy_pipeline_block_gets_a_migration_hint_only() -> None:
    text = "pipeline:\n  name: x\n  steps: []\n"
    found = diagnostics(text)
    assert [d.code for d in found] == ["OML005"]
    assert "top level" in found[0].fix and "oml_version" in found[0].fix


def test_pre_oml_source_and_destination_get_step_hints() -> None:
    text = 'oml_version: "0.1.0"\nname: x\nsource: {connection: mysql}\ndestination: {type: x}\n'
    found = [d for d in diagnostics(text) if d.code == "OML005"]
    assert {d.summary.split("'")[1] for d in found} == {"source", "destination"}
    assert "extractor step" in found[0].fix and "writer step" in found[1].fix
    assert "OML004" not in codes(text) and "OML006" not in codes(text)


def test_missing_key_sentences_read_well() -> None:
    found = diagnostics("steps:\n  - {component: mysql.extractor}\n")
    whys = {d.why for d in found if d.code in ("OML006", "OML011")}
    assert "The pipeline needs 'name'." in whys
    assert "A step needs 'id'." in whys
    assert not any("Every the" in w or "Every a " in w for w in whys)


def test_writer_without_input_example_never_names_itself() -> None:
    text = pipeline(extract() + mysql_writer('{connection: "@mysql", table: t}', needs="[]"))
    (d,) = [d for d in diagnostics(text) if d.code == "OML035"]
    assert d.example == "needs: [src]"
    assert "place in the list creates no edge" in d.why
    lone = pipeline(mysql_writer('{connection: "@mysql", table: t}', needs="[]"))
    (d,) = [d for d in diagnostics(lone) if d.code == "OML035"]
    assert "[load]" not in d.example


def test_unquoted_connection_reference_says_quote_it() -> None:
    text = pipeline(
        extract()
        + mysql_writer("{table: t}").replace(
            "config: {table: t}", "config:\n    connection: @mysql.default\n    table: t"
        )
    )
    (d,) = diagnostics(text)
    assert d.code == "OML001" and "quote it" in d.summary
    assert d.example == 'connection: "@mysql.default"'
    assert d.suggestions[0].replacement == '"@mysql.default"'


def test_supabase_pg_dsn_is_read_as_dsn(tmp_path: Path) -> None:
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(
        "connections:\n  supabase:\n    main:\n"
        "      pg_dsn: 'postgresql://postgres:${SB_PASSWORD}@db.example.com:5432/postgres'\n"
    )
    redactor = Redactor()
    resolved = ConnectionResolver(
        path, redactor=redactor, environ={"SB_PASSWORD": "s3cret-pass"}
    ).resolve("@supabase.main")
    assert resolved.fields["dsn"].startswith("postgresql://postgres:s3cret-pass@")
    assert "pg_dsn" not in resolved.fields
    assert any("pg_dsn is upstream Osiris's name for dsn" in w for w in resolved.warnings)
    assert redactor.redact("s3cret-pass") == "***"


# -- item: upstream component fields ----------------------------------------------------------


def _writer(config: str) -> str:
    return pipeline(extract() + mysql_writer(config))


def test_upstream_writer_names_compile_to_our_manifest() -> None:
    ours = _writer(
        '{connection: "@mysql", table: t, write_mode: upsert, primary_key: [id],'
        " create_if_missing: false}"
    )
    theirs = _writer(
        '{connection: "@mysql", table: t, mode: upsert, upsert_keys: id, create_table: false,'
        " pool_size: 5, pool_recycle: 3600, echo: true}"
    )
    assert codes(ours) == set()
    found = diagnostics(theirs)
    assert sorted(d.code for d in found) == ["OML130"] * 3 + ["OML131"] * 3
    assert all(d.severity == "warning" for d in found)
    mode = next(d for d in found if "'mode'" in d.summary)
    assert mode.suggestions[0].replacement == "write_mode"
    pool = next(d for d in found if "'pool_size'" in d.summary)
    assert "no effect" in pool.summary and pool.suggestions[0].replacement == ""
    a = compile_text(ours, "p.oml").emitted
    b = compile_text(theirs, "p.oml").emitted
    assert a is not None and b is not None
    assert {k: v for k, v in a.files.items() if k.startswith("cfg/")} == {
        k: v for k, v in b.files.items() if k.startswith("cfg/")
    }
    assert a.manifest["steps"] == b.manifest["steps"]


def test_bad_value_of_an_upstream_field_is_a_bad_value() -> None:
    found = diagnostics(_writer('{connection: "@mysql", table: t, mode: upsertt, upsert_keys: id}'))
    assert "OML017" not in {d.code for d in found}
    (bad,) = [d for d in found if d.code == "OML019"]
    assert "'mode'" in bad.summary and bad.suggestions[0].replacement == "upsert"


@pytest.mark.parametrize(
    ("field", "value", "ours"),
    [
        ("filter", "{status: eq.active}", "where"),
        ("select", "'id,name'", "columns"),
        ("order", "id.desc", "ORDER BY"),
        ("tables", "[a, b]", "one step per table"),
    ],
)
def test_upstream_field_that_would_change_the_rows_read_is_an_error(
    field: str, value: str, ours: str
) -> None:
    """A PostgREST filter we do not apply must not silently read every row: OML133."""
    step = textwrap.dedent(
        f"""\
        - id: src
          component: supabase.extractor
          mode: read
          config: {{connection: "@supabase", table: t, {field}: {value}}}
        """
    )
    found = [d for d in diagnostics(pipeline(step)) if d.code == "OML133"]
    assert len(found) == 1 and found[0].severity == "error"
    assert f"'{field}'" in found[0].summary and ours in (found[0].why or "")


def test_upstream_and_our_name_together_is_an_error() -> None:
    found = diagnostics(
        _writer('{connection: "@mysql", table: t, mode: append, write_mode: append}')
    )
    assert [d.code for d in found] == ["OML132"]


def test_upstream_mode_upsert_still_needs_keys() -> None:
    assert "OML021" in codes(_writer('{connection: "@mysql", table: t, mode: upsert}'))


def _csv_project(tmp_path: Path, writer_config: str) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text(
        'id,name,amount\n1,Zoë,2.5\n2,"a,b",3\n', encoding="utf-8"
    )
    text = pipeline(
        extract()
        + textwrap.dedent(
            f"""\
            - id: out
              component: filesystem.csv_writer
              mode: write
              needs: [src]
              config: {writer_config}
            """
        )
    )
    (tmp_path / "pipeline.oml").write_text(text, encoding="utf-8")
    return tmp_path


def osiris(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_upstream_style_csv_writer_checks_and_runs(tmp_path: Path) -> None:
    project = _csv_project(
        tmp_path, '{path: out/o.csv, encoding: "utf-8", newline: "lf", header: true}'
    )
    assert not diagnostics((project / "pipeline.oml").read_text())
    run = osiris("run", "pipeline.oml", cwd=project)
    assert run.returncode == 0, run.stderr
    assert (
        project / "out" / "o.csv"
    ).read_bytes() == b'id,name,amount\n1,Zo\xc3\xab,2.5\n2,"a,b",3.0\n'


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "{path: o.csv, newline: crlf, quoting: all}",
            b'"id","name","amount"\r\n"1","Zo\xc3\xab","2.5"\r\n"2","a,b","3.0"\r\n',
        ),
        (
            "{path: o.csv, quoting: nonnumeric}",
            b'id,"name",amount\n1,"Zo\xc3\xab",2.5\n2,"a,b",3.0\n',
        ),
        (
            "{path: o.csv, encoding: latin-1}",
            b'id,name,amount\n1,Zo\xeb,2.5\n2,"a,b",3.0\n',
        ),
        (
            "{path: o.csv, encoding: utf-16, newline: crlf}",
            b"\xff\xfe" + 'id,name,amount\r\n1,Zoë,2.5\r\n2,"a,b",3.0\r\n'.encode("utf-16-le"),
        ),
    ],
)
def test_csv_writer_upstream_output_options(tmp_path: Path, config: str, expected: bytes) -> None:
    project = _csv_project(tmp_path, config)
    run = osiris("run", "pipeline.oml", cwd=project)
    assert run.returncode == 0, run.stderr
    assert (project / "o.csv").read_bytes() == expected


def test_csv_writer_ascii_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    project = _csv_project(tmp_path, "{path: o.csv, encoding: ascii}")
    run = osiris("run", "pipeline.oml", cwd=project)
    assert run.returncode == 4
    assert "ascii cannot represent" in run.stderr + run.stdout
    assert not (project / "o.csv").exists()


def test_csv_writer_create_dirs_false(tmp_path: Path) -> None:
    project = _csv_project(tmp_path, "{path: missing/o.csv, create_dirs: false}")
    run = osiris("run", "pipeline.oml", cwd=project)
    assert run.returncode == 4
    assert "create_dirs is false" in run.stderr + run.stdout
    assert not (project / "missing").exists()


def test_csv_extractor_upstream_fields(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("# note\nid,name\n1,a\n2,n/a\n3,c\n4,d\n")
    config = (
        "{path: data/in.csv, comment: '#', na_values: [n/a], limit: 2, compression: infer,"
        " chunk_size: 100, parse_dates: true, skip_blank_lines: true}"
    )
    text = pipeline(
        extract(config=config)
        + textwrap.dedent(
            """\
            - id: out
              component: filesystem.csv_writer
              mode: write
              needs: [src]
              config: {path: o.csv, null_value: 'NULL'}
            """
        )
    )
    (tmp_path / "pipeline.oml").write_text(text)
    found = diagnostics(text)
    assert sorted(d.code for d in found) == ["OML130"]  # chunk_size; the rest are honoured
    run = osiris("run", "pipeline.oml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "o.csv").read_text() == "id,name\n1,a\n2,NULL\n"
