"""Errors a user can read: library internals said in our terms (their text kept as detail), real
row numbers and causes, and no prefix said twice."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pymysql
import pytest
import yaml
from drivers_ctx import make_ctx
from runtime_helpers import only_run_dir, read_events, run_cli, run_steps, step, write_manifest

from osiris.runtime.context import RunDatabase
from osiris.runtime.drivers.base import DriverError
from osiris.runtime.drivers.mysql import MySQLWriter
from osiris.runtime.drivers.postgres import PostgresWriter

CSV = "filesystem.csv_extractor"


def _oml_run(
    project: Path, steps: list[dict[str, Any]], *, materialize: str = "auto"
) -> tuple[Any, Path, str]:
    """oml-run in a subprocess: (process, run directory, the final error line on stderr)."""
    manifest = write_manifest(project / "build", steps)
    result = run_cli([str(manifest), "--materialize", materialize], cwd=project)
    return result, only_run_dir(project), result.stderr.strip().splitlines()[-1]


def _failed_events(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {e["step"]: e for e in read_events(run_dir) if e["event"] == "step_failed"}


def _inconsistent_csv(path: Path) -> Path:
    """A file whose first lines have no one layout: DuckDB's sniffer gives up on it."""
    lines = ["a,b,c", *(f"{i},{i},{i}" for i in range(3000)), "1,2,3,4,5,6"]
    path.write_text("\n".join([*lines, *(f"{i},x,y" for i in range(10))]) + "\n")
    return path


@pytest.mark.parametrize("materialize", ["auto", "all"])
def test_csv_sniffer_failure_is_one_sentence_with_our_options(
    tmp_path: Path, materialize: str
) -> None:
    bad = _inconsistent_csv(tmp_path / "bad.csv")
    steps = [
        step("orders", CSV, "extractor", {"path": str(bad)}),
        step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["orders"]),
    ]
    result, run_dir, line = _oml_run(tmp_path, steps, materialize=materialize)
    assert result.returncode == 4 and len(result.stderr.strip().splitlines()) == 1
    assert str(bad) in line and "layout" in line
    assert "set delimiter, quote, escape, header or skip_rows" in line
    for internal in ("strict_mode", "null_padding", "ignore_errors", "read_csv", "Possible fixes"):
        assert internal not in line and internal not in result.stdout
    assert len(line.replace(str(bad), "").replace(str(run_dir), "")) < 300
    failed = _failed_events(run_dir)["orders"]  # DuckDB's own text, for whoever needs it
    assert "Error when sniffing file" in failed["detail"]
    assert "Error when sniffing file" in (run_dir / "run.log").read_text()
    status = json.loads((run_dir / "status.json").read_text())
    assert "Error when sniffing file" in status["error_detail"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "a,b,c\n" + "".join(f"{i},{i},{i}\n" for i in range(30_000)) + "1,2,3,4,5,6\n",
            "line 30002 has more than 3 fields; check delimiter, quote and escape, or fix that line",
        ),
        (
            "a,b,c\n" + "".join(f"{i},{i},{i}\n" for i in range(30_000)) + "x,2,3\n",
            "line 30002: value 'x' of column 'a' is not a BIGINT; "
            "set its type in column_types, e.g. {a: VARCHAR}",
        ),
    ],
)
def test_csv_bad_line_names_file_line_and_our_option(
    tmp_path: Path, body: str, expected: str
) -> None:
    path = tmp_path / "data.csv"
    path.write_text(body)
    outcome, run_dir = run_steps(tmp_path, [step("orders", CSV, "extractor", {"path": str(path)})])
    assert outcome.exit_code == 4
    assert outcome.error == (f"step 'orders' ({CSV}) failed: CSV file {path}, {expected}"), (
        outcome.error
    )
    assert "Possible" in _failed_events(run_dir)["orders"]["detail"]


def test_csv_path_that_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "part-1.csv").write_text("a\n1\n")
    steps = [
        step("src", CSV, "extractor", {"path": str(folder)}),
        step("p", "duckdb.processor", "processor", {"query": "SELECT * FROM src"}, needs=["src"]),
    ]
    result, _, line = _oml_run(tmp_path, steps)
    assert result.returncode == 4
    assert f"path {folder} is a directory, not a file" in line
    assert f"use a glob such as {folder}/*" in line
    assert "CREATE TABLE" not in line and "read_csv" not in line


def test_extractor_error_read_into_the_run_database_is_its_own(tmp_path: Path) -> None:
    """DuckDB reports a failing Arrow reader as "... failed: Unknown error": store() raises
    the reader's own error instead."""
    schema = pa.schema([("id", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array([1, 2])], schema=schema)
        raise DriverError("MySQL u@h:3306/db: extract: the connection was lost")

    database = RunDatabase(tmp_path / "run.duckdb")
    try:
        with pytest.raises(DriverError, match="the connection was lost") as info:
            database.store("extract", pa.RecordBatchReader.from_batches(schema, batches()))
        assert "Unknown error" not in str(info.value) and "osiris_extract" not in str(info.value)
    finally:
        database.close()


@pytest.mark.mysql
def test_mysql_zero_date_read_into_the_run_database(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    """connectorx's Rust error and DuckDB's "Unknown error" around it become one sentence."""
    pytest.importorskip("connectorx")
    admin = pymysql.connect(**mysql_db, autocommit=True)
    with admin.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE z (id INT, d DATE)")
        cur.execute("INSERT INTO z VALUES (1, '2020-01-01'), (2, '0000-00-00')")
    admin.close()
    connections = {"version": 1, "connections": {"mysql": {"main": mysql_db}}}
    (tmp_path / "osiris_connections.yaml").write_text(yaml.safe_dump(connections))
    steps = [
        step("ext", "mysql.extractor", "extractor", {"table": "z"}, connection="@mysql.main"),
        step("p", "duckdb.processor", "processor", {"query": "SELECT * FROM ext"}, needs=["ext"]),
    ]
    result, run_dir, line = _oml_run(tmp_path, steps, materialize="all")
    assert result.returncode == 4
    assert "cannot convert the date value '0000-00-00' read from MySQL" in line
    assert "NULLIF(column, '0000-00-00')" in line
    for internal in ("Unknown error", "osiris_extract", "chrono", "core::option", "Traceback"):
        assert internal not in line
    assert "NaiveDate" in _failed_events(run_dir)["ext"]["detail"]


def _pg(db: dict[str, Any], **extra: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], dbname=db["database"], **extra
    )


@pytest.mark.postgres
def test_pg_deadlock_is_a_deadlock_not_a_lost_connection(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    with _pg(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE target (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO target VALUES (1, 'old'), (2, 'old')")
    other = _pg(pg_db)
    other.execute("SET deadlock_timeout = '60s'")  # the writer's session (1 s) detects it
    other.execute("UPDATE target SET v = 'other' WHERE id = 2")  # holds row 2
    schema = pa.schema([("id", pa.int32()), ("v", pa.string())])
    rows = pa.record_batch([pa.array([1, 2], pa.int32()), pa.array(["new", "new"])], schema=schema)
    config = {"table": "target", "write_mode": "upsert", "primary_key": ["id"]}
    errors: list[BaseException] = []

    def write() -> None:  # merges row 1 (locks it), then waits for row 2
        try:
            data = pa.RecordBatchReader.from_batches(schema, [rows])
            PostgresWriter().write(make_ctx(tmp_path, "w", config, pg_db), data)
        except BaseException as err:
            errors.append(err)

    writer = threading.Thread(target=write)
    writer.start()
    with _pg(pg_db, autocommit=True) as admin:
        for _ in range(1000):
            waiting = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%%'",
                [pg_db["database"]],
            ).fetchone()
            if waiting and waiting[0]:
                break
            time.sleep(0.02)
    other.execute("UPDATE target SET v = 'other' WHERE id = 1")  # now each waits for the other
    writer.join(30)
    other.rollback()
    other.close()
    assert len(errors) == 1 and isinstance(errors[0], DriverError), errors
    message = str(errors[0])
    assert "deadlock: this step and another transaction each waited" in message
    assert "(server: deadlock detected)" in message
    assert "connection lost" not in message and "\n" not in message
    assert "40P01" not in message and "Process" in (errors[0].detail or "")
    with _pg(pg_db, autocommit=True) as conn:  # rolled back
        assert conn.execute("SELECT v FROM target ORDER BY id").fetchall() == [("old",), ("old",)]


@pytest.mark.mysql
def test_mysql_rejected_row_is_numbered_in_the_whole_input(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    admin = pymysql.connect(**mysql_db, autocommit=True)
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE target (id INT PRIMARY KEY, v TINYINT)")
    schema = pa.schema([("id", pa.int64()), ("v", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(1, 200_001, 50_000):  # LOAD DATA runs once per batch
            ids = list(range(start, start + 50_000))
            values = [1000 if i == 150_000 else 1 for i in ids]  # out of TINYINT's range
            yield pa.record_batch([pa.array(ids), pa.array(values)], schema=schema)

    data = pa.RecordBatchReader.from_batches(schema, batches())
    config = {"table": "target", "write_mode": "append"}
    with pytest.raises(DriverError) as info:
        MySQLWriter().write(make_ctx(tmp_path, "w", config, mysql_db), data)
    message = str(info.value)
    assert "at row 150000 of the input" in message and "at row 50000" not in message
    with admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM target")
        assert cur.fetchone() == (0,)
    admin.close()


def _segments_repeat(text: str) -> bool:
    """Whether any ': '-separated part of a message is said twice in a row."""
    parts = [part.strip() for part in text.split(": ")]
    return any(a == b for a, b in itertools.pairwise(parts))


def test_no_prefix_is_said_twice(tmp_path: Path) -> None:
    """Several kinds of failure in one run: each step's error names neither its own step nor
    its own kind of error twice, and the run's error line names the step once."""
    folder = tmp_path / "folder"
    folder.mkdir()
    good = tmp_path / "good.csv"
    good.write_text("id\n1\n")
    kinds = {
        "missing_file": step("missing_file", CSV, "extractor", {"path": "nope.csv"}),
        "directory": step(
            "directory", "filesystem.parquet_extractor", "extractor", {"path": str(folder)}
        ),
        "bad_sql": step(
            "bad_sql", "duckdb.processor", "processor", {"query": "SELECT nope FROM good"},
            needs=["good"],
        ),
        "bad_mode": step(
            "bad_mode", "duckdb.writer", "writer",
            {"path": "wh.duckdb", "table": "t", "write_mode": "sideways"}, needs=["good"],
        ),
        "glob_target": step(
            "glob_target", "filesystem.csv_writer", "writer", {"path": "out-*.csv"},
            needs=["good"],
        ),
    }  # fmt: skip
    steps = [step("good", CSV, "extractor", {"path": str(good)}), *kinds.values()]
    outcome, run_dir = run_steps(tmp_path, steps, materialize="all")
    assert outcome.exit_code == 4
    failed = _failed_events(run_dir)
    assert set(failed) == set(kinds), failed
    for step_id, event in failed.items():
        error = event["error"]
        for naming in (f"step {step_id}", f"step '{step_id}'"):  # named by who reports it
            assert naming not in error, error
        assert not _segments_repeat(error), error
    first = outcome.failed_step
    assert outcome.error.startswith(f"step '{first}' (")
    assert outcome.error.count(first) == 1, outcome.error
    assert not _segments_repeat(outcome.error), outcome.error
