"""Params in SQL never change a statement: escaped literals inside quotes, typed values elsewhere,
check errors for the rest; injection strings stay literal values on every real server."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from osiris.compiler.compile import compile_text, write_output

HEAD = 'oml_version: "0.1.0"\nname: t\n'

# Classic injection strings, each with what the MySQL / PostgreSQL+DuckDB literal body becomes.
PAYLOAD = (
    "2099-01-01' UNION SELECT 1, CONCAT(user(),' ',@@version,' ',@@datadir) FROM dual WHERE '1'='1"
)
INJECTIONS = [
    PAYLOAD,
    "' OR '1'='1",
    "' OR 1=1 -- ",
    "'; DROP TABLE t; --",
    "\\'; DROP TABLE t; --",
    "\\",
    "\\\\'",
    "x\\' OR 1=1 #",
    "%' --",
    "%' OR note LIKE '%",
    "' /* ",
    "\u2019 OR \u20181\u2019=\u20181",  # unicode quotes
    "\uff07 OR 1=1 --",  # fullwidth apostrophe
    "a\n-- comment\n' OR '1'='1",
    "a\r\n#' OR '1'='1",
    "$$ OR 1=1 $$",
    '" OR "1"="1',
    "ʼ OR 1=1; SELECT pg_sleep(0) --",
]


def doc(params: str, steps: str) -> str:
    return HEAD + "params:\n" + params + "steps:\n" + steps


def extractor(component: str, config: str, step_id: str = "src") -> str:
    return f"  - id: {step_id}\n    component: {component}\n    mode: read\n    config: {config}\n"


def cfg(result: Any, step: str = "src") -> dict[str, Any]:
    assert result.emitted is not None, [d.summary for d in result.diagnostics]
    return json.loads(result.emitted.files[f"cfg/{step}.json"])


def codes(result: Any) -> list[str]:
    return [d.code for d in result.diagnostics if d.severity == "error"]


# -- check: where a param may stand ----------------------------------------------------------

BARE = [
    (
        "mysql.extractor",
        '{connection: "@mysql.x", query: "SELECT * FROM t WHERE ts >= ${params.v}"}',
    ),
    ("postgres.extractor", '{connection: "@postgres.x", table: t, where: "name = ${params.v}"}'),
    ("supabase.extractor", '{connection: "@supabase.x", query: "SELECT * FROM \\"${params.v}\\""}'),
    (
        "duckdb.extractor",
        '{connection: "@duckdb.x", query: "SELECT * FROM t ORDER BY ${params.v}"}',
    ),
    ("mysql.extractor", '{connection: "@mysql.x", query: "SELECT * FROM `${params.v}`"}'),
    ("mysql.extractor", '{connection: "@mysql.x", query: "SELECT 1 -- ${params.v}"}'),
    ("postgres.extractor", '{connection: "@postgres.x", query: "${params.v}"}'),
]


@pytest.mark.parametrize(("component", "config"), BARE)
def test_string_param_outside_quotes_is_a_check_error(component: str, config: str) -> None:
    result = compile_text(doc("  v: {type: string}\n", extractor(component, config)), "p.oml")
    assert result.exit_code == 2 and codes(result) == ["OML110"]
    (diagnostic,) = result.diagnostics
    assert "outside quotes" in diagnostic.summary and "it is a string" in diagnostic.why
    assert "'${params.v}'" in diagnostic.fix and "declare" in diagnostic.fix
    text = doc("  v: {type: string}\n", extractor(component, config)).encode()
    assert text[diagnostic.span.start.byte : diagnostic.span.end.byte] == b"${params.v}"


def test_processor_string_param_outside_quotes_is_a_check_error() -> None:
    steps = extractor("filesystem.csv_extractor", "{path: in.csv}") + (
        "  - id: p\n    component: duckdb.processor\n    mode: transform\n    needs: [src]\n"
        "    config: {query: 'SELECT * FROM src WHERE ${params.v}'}\n"
    )
    result = compile_text(doc("  v: {default: 'x > 1'}\n", steps), "p.oml")
    assert codes(result) == ["OML110"]


def test_params_inside_quotes_of_every_dialect_are_accepted() -> None:
    steps = (
        extractor(
            "mysql.extractor",
            """{connection: "@mysql.x", query: "SELECT '${params.v}', \\"${params.v}\\""}""",
            "a",
        )
        + extractor(
            "postgres.extractor",
            """{connection: "@postgres.x", query: "SELECT E'${params.v}', '%${params.v}%'"}""",
            "b",
        )
        + extractor(
            "duckdb.extractor",
            """{connection: "@duckdb.x", table: t, where: "x = '${params.v}'"}""",
            "c",
        )
    )
    result = compile_text(doc("  v: {type: string}\n", steps), "p.oml", params=["v=it's \\ ok"])
    assert result.exit_code == 0, result.diagnostics
    assert cfg(result, "a")["query"] == "SELECT 'it''s \\\\ ok', \"it's \\\\ ok\""
    assert cfg(result, "b")["query"] == "SELECT E'it''s \\\\ ok', '%it''s \\ ok%'"
    assert cfg(result, "c")["where"] == "x = 'it''s \\ ok'"


def test_typed_params_outside_quotes_are_written_as_values() -> None:
    params = (
        "  since: {type: date}\n  n: {type: integer, default: 5}\n  r: {type: number, default: 0.5}\n"
        "  b: {type: boolean, default: true}\n  dir: {enum: [asc, desc], default: desc}\n"
    )
    query = (
        "SELECT * FROM t WHERE ts >= ${params.since} AND x < ${params.r} AND ${params.b} "
        "ORDER BY id ${params.dir} LIMIT ${params.n}"
    )
    steps = extractor("mysql.extractor", f'{{connection: "@mysql.x", query: "{query}"}}')
    result = compile_text(doc(params, steps), "p.oml", params=["since=2024-02-03", "n=-3"])
    assert result.exit_code == 0, result.diagnostics
    assert cfg(result)["query"] == (
        "SELECT * FROM t WHERE ts >= DATE '2024-02-03' AND x < 0.5 AND TRUE ORDER BY id desc LIMIT -3"
    )


@pytest.mark.parametrize(
    ("given", "code"),
    [("since=2024-02-30", "OML061"), ("since=2024-2-3", "OML061"), ("dir=asc;--", "OML061")],
)
def test_typed_params_reject_values_of_other_shapes(given: str, code: str) -> None:
    params = (
        "  since: {type: date, default: 2024-01-01}\n  dir: {enum: [asc, desc], default: asc}\n"
    )
    query = "SELECT * FROM t WHERE ts >= ${params.since} ORDER BY id ${params.dir}"
    steps = extractor("postgres.extractor", f'{{connection: "@postgres.x", query: "{query}"}}')
    result = compile_text(doc(params, steps), "p.oml", params=[given], environ={})
    assert result.exit_code == 3 and code in codes(result)


def test_param_in_a_literal_that_cannot_be_escaped_is_a_check_error() -> None:
    steps = extractor(
        "postgres.extractor", '{connection: "@postgres.x", query: "SELECT $q$ ${params.v} $q$"}'
    )
    result = compile_text(doc("  v: {type: string}\n", steps), "p.oml")
    assert codes(result) == ["OML111"]
    assert "'${params.v}'" in result.diagnostics[0].fix


def test_nul_in_a_sql_param_is_a_compile_error() -> None:
    steps = extractor(
        "mysql.extractor", """{connection: "@mysql.x", query: "SELECT '${params.v}'"}"""
    )
    result = compile_text(doc("  v: {type: string}\n", steps), "p.oml", params=["v=a\x00' OR 1=1"])
    assert result.exit_code == 3 and codes(result) == ["OML112"]
    assert "NUL" in result.diagnostics[0].summary


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_strings_become_escaped_literal_bodies(value: str) -> None:
    steps = (
        extractor(
            "mysql.extractor", """{connection: "@mysql.x", query: "SELECT '${params.v}'"}""", "m"
        )
        + extractor(
            "postgres.extractor",
            """{connection: "@postgres.x", query: "SELECT '${params.v}'"}""",
            "p",
        )
        + extractor(
            "duckdb.extractor", """{connection: "@duckdb.x", query: "SELECT '${params.v}'"}""", "d"
        )
    )
    result = compile_text(doc("  v: {type: string}\n", steps), "p.oml", params=[f"v={value}"])
    assert result.exit_code == 0, result.diagnostics
    mysql_body = value.replace("\\", "\\\\").replace("'", "''")
    standard_body = value.replace("'", "''")
    assert cfg(result, "m")["query"] == f"SELECT '{mysql_body}'"
    assert cfg(result, "p")["query"] == f"SELECT '{standard_body}'"
    assert cfg(result, "d")["query"] == f"SELECT '{standard_body}'"


# -- against the real servers: each injection string reads exactly its own row -----------------


def _pipeline(component: str, connection: str, field: str) -> str:
    params = "".join(f"  v{i}: {{type: string}}\n" for i in range(len(INJECTIONS)))
    steps = []
    for i in range(len(INJECTIONS)):
        if field == "where":
            config = f"""{{connection: "{connection}", table: t, columns: [id], where: "note = '${{params.v{i}}}'"}}"""
        else:
            config = f"""{{connection: "{connection}", query: "SELECT id FROM t WHERE note = '${{params.v{i}}}'"}}"""
        steps.append(extractor(component, config, f"read{i}"))
        steps.append(
            f"  - id: out{i}\n    component: filesystem.csv_writer\n    mode: write\n"
            f"    needs: [read{i}]\n    config: {{path: out/{i}.csv}}\n"
        )
    return doc(params, "".join(steps))


def _run(project: Path, text: str, environ: dict[str, str]) -> None:
    from osiris.runtime.runner import run_manifest

    result = compile_text(text, str(project / "p.oml"), environ=environ)
    assert result.exit_code == 0, [d.summary for d in result.diagnostics]
    assert result.emitted is not None
    write_output(result.emitted, project / "build")
    outcome = run_manifest(project / "build" / "manifest.yaml", project_dir=project, environ={})
    assert outcome.exit_code == 0, outcome.error


def _ids(path: Path) -> list[int]:
    with path.open(encoding="utf-8", newline="") as handle:
        return sorted(int(row["id"]) for row in csv.DictReader(handle))


def _assert_each_reads_its_row(project: Path) -> None:
    for i in range(len(INJECTIONS)):
        # row i+1 holds injection i; rows 100+ are decoys any widened WHERE would return
        assert _ids(project / "out" / f"{i}.csv") == [i + 1], INJECTIONS[i]


def _environ() -> dict[str, str]:
    return {f"OSIRIS_PARAM_V{i}": value for i, value in enumerate(INJECTIONS)}


def _connections(project: Path, family: str, fields: dict[str, Any]) -> None:
    text = json.dumps({"connections": {family: {"t": fields}}})
    (project / "osiris_connections.yaml").write_text(text, encoding="utf-8")


ROWS = [(i + 1, value) for i, value in enumerate(INJECTIONS)] + [
    (100, "2099-01-01"),
    (101, "1"),
    (102, "x"),
    (103, ""),
]


@pytest.mark.mysql
@pytest.mark.parametrize("field", ["query", "where"])
def test_injections_are_literal_values_on_mysql(
    mysql_db: dict[str, Any], tmp_path: Path, field: str
) -> None:
    import pymysql

    conn = pymysql.connect(**mysql_db, charset="utf8mb4", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(200) COLLATE utf8mb4_bin)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", ROWS)
    conn.close()
    fields = ("host", "port", "user", "password", "database")
    _connections(tmp_path, "mysql", {k: mysql_db[k] for k in fields})
    _run(tmp_path, _pipeline("mysql.extractor", "@mysql.t", field), _environ())
    _assert_each_reads_its_row(tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("field", ["query", "where"])
def test_injections_are_literal_values_on_postgres(
    pg_db: dict[str, Any], tmp_path: Path, field: str
) -> None:
    import psycopg

    with psycopg.connect(
        host=pg_db["host"], port=pg_db["port"], user=pg_db["user"], dbname=pg_db["database"]
    ) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO t VALUES (%s, %s)", ROWS)
        # even a database that still treats backslashes in '...' as escapes reads them plainly
        conn.execute(f'ALTER DATABASE "{pg_db["database"]}" SET standard_conforming_strings = off')
    fields = ("host", "port", "user", "password", "database")
    _connections(tmp_path, "postgres", {k: pg_db[k] for k in fields})
    _run(tmp_path, _pipeline("postgres.extractor", "@postgres.t", field), _environ())
    _assert_each_reads_its_row(tmp_path)


@pytest.mark.parametrize("field", ["query", "where"])
def test_injections_are_literal_values_in_a_duckdb_file(tmp_path: Path, field: str) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE TABLE t (id INTEGER, note VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?)", ROWS)
    _connections(tmp_path, "duckdb", {"path": str(tmp_path / "w.duckdb")})
    _run(tmp_path, _pipeline("duckdb.extractor", "@duckdb.t", field), _environ())
    _assert_each_reads_its_row(tmp_path)


def test_injections_are_literal_values_in_a_duckdb_processor(tmp_path: Path) -> None:
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (id INTEGER, note VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?)", ROWS)
        con.execute(f"COPY t TO '{tmp_path / 'rows.parquet'}' (FORMAT parquet)")
    params = "".join(f"  v{i}: {{type: string}}\n" for i in range(len(INJECTIONS)))
    steps = [extractor("filesystem.parquet_extractor", "{path: rows.parquet}", "t")]
    for i in range(len(INJECTIONS)):
        steps.append(
            f"  - id: read{i}\n    component: duckdb.processor\n    mode: transform\n"
            f"    needs: [t]\n    config: {{query: \"SELECT id FROM t WHERE note = '${{params.v{i}}}'\"}}\n"
            f"  - id: out{i}\n    component: filesystem.csv_writer\n    mode: write\n"
            f"    needs: [read{i}]\n    config: {{path: out/{i}.csv}}\n"
        )
    _run(tmp_path, doc(params, "".join(steps)), _environ())
    _assert_each_reads_its_row(tmp_path)


# -- the reported exploit, end to end through `osiris run` -------------------------------------

EXPLOIT = doc(
    "  since: {type: string, default: '2024-01-01'}\n",
    extractor(
        "mysql.extractor",
        """{connection: "@mysql.t", query: "SELECT id, note FROM t WHERE note >= '${params.since}'"}""",
    )
    + "  - id: out\n    component: filesystem.csv_writer\n    mode: write\n    needs: [src]\n"
    "    config: {path: out.csv}\n",
)


@pytest.mark.mysql
@pytest.mark.parametrize("how", ["--param", "environment"])
def test_reported_union_payload_reads_nothing_through_osiris_run(
    mysql_db: dict[str, Any], tmp_path: Path, how: str
) -> None:
    import pymysql

    conn = pymysql.connect(**mysql_db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(200))")
        cur.execute("INSERT INTO t VALUES (1, '2024-06-01'), (2, '1999-01-01')")
    conn.close()
    fields = ("host", "port", "user", "password", "database")
    _connections(tmp_path, "mysql", {k: mysql_db[k] for k in fields})
    (tmp_path / "pipeline.oml").write_text(EXPLOIT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_PARAM_")}
    args = ["run", "pipeline.oml"]
    if how == "--param":
        args += ["--param", f"since={PAYLOAD}"]
    else:
        env["OSIRIS_PARAM_SINCE"] = PAYLOAD
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            *args,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = (tmp_path / "out.csv").read_text(encoding="utf-8")
    assert out.splitlines() == ["id,note"]  # '2099-01-01'' UNION …' is greater than every note
    assert "root" not in out and "MariaDB" not in out and "/var/lib" not in out


def test_defaults_and_profiles_are_escaped_like_command_line_values() -> None:
    text = doc(
        "  v: {type: string, default: \"' OR '1'='1\"}\n",
        extractor("mysql.extractor", """{connection: "@mysql.x", query: "SELECT '${params.v}'"}"""),
    ).replace("steps:\n", 'profiles:\n  evil: {params: {v: "\\\\\' OR 1=1 --"}}\nsteps:\n')
    assert cfg(compile_text(text, "p.oml", environ={}))["query"] == "SELECT ''' OR ''1''=''1'"
    evil = compile_text(text, "p.oml", profile="evil", environ={})
    assert cfg(evil)["query"] == "SELECT '\\\\'' OR 1=1 --'"


def test_a_value_that_would_end_the_literal_early_is_refused() -> None:
    # the pipeline's own backslash escapes the value's first character: the value must not
    # get to close the literal
    steps = extractor(
        "mysql.extractor", """{connection: "@mysql.x", query: "SELECT 'C:\\\\${params.v}'"}"""
    )
    text = doc("  v: {type: string}\n", steps)
    assert compile_text(text, "p.oml", params=["v=dir"], environ={}).exit_code == 0
    result = compile_text(text, "p.oml", params=["v=' OR 1=1 -- "], environ={})
    assert result.exit_code == 3 and codes(result) == ["OML112"]
    assert "structure" in result.diagnostics[0].summary
