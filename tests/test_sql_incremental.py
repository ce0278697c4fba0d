"""Incremental reads of the SQL extractors on real MariaDB/PostgreSQL: a bound WHERE cursor > last, state after success."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime_helpers import mysql_rows as _my
from runtime_helpers import pg_rows as _pg
from runtime_helpers import run_steps, step, write_connections

from osiris.runtime.records.state import state_path


def _connections(project: Path, family: str, db: dict[str, Any]) -> None:
    write_connections(
        project,
        f"version: 1\nconnections:\n  {family}:\n    main:\n"
        f"      host: {db['host']}\n      port: {db['port']}\n      database: {db['database']}\n"
        f"      user: {db['user']}\n      password: '{db['password']}'\n",
    )


def _pipeline(
    family: str, incremental: dict[str, Any], partition: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    read = {"table": "events_httpsrc", "incremental": incremental}
    write = {"table": "copy_httpsrc", "write_mode": "upsert", "primary_key": ["id"]}
    return [
        step(
            "src",
            f"{family}.extractor",
            "extractor",
            read,
            connection=f"@{family}.main",
            partition=partition,
        ),
        step(
            "load", f"{family}.writer", "writer", write, needs=["src"], connection=f"@{family}.main"
        ),
    ]


def _state(project: Path) -> dict[str, Any]:
    return json.loads(state_path(project, "test-pipeline", "src").read_text(encoding="utf-8"))


def _incremental_runs(
    project: Path, family: str, sql: Any, partition: dict[str, Any] | None = None
) -> None:
    """Shared scenario: full first run, then only new and changed rows, upserted."""
    incremental = {"cursor_column": "updated_at", "initial_value": "2023-12-31 23:59:59"}
    steps = _pipeline(family, incremental, partition)
    outcome, _ = run_steps(project, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert [s.rows_out for s in outcome.steps if s.step_id == "src"] == [3]
    assert _state(project)["last_value"].startswith("2024-01-03 00:00:00")
    sql(
        "INSERT INTO events_httpsrc VALUES (4, 'd', '2024-01-04 00:00:00'), "
        "(5, 'e', '2024-01-05 00:00:00')",
        "UPDATE events_httpsrc SET name = 'a2', updated_at = '2024-01-06 00:00:00' WHERE id = 1",
    )
    outcome, run_dir = run_steps(project, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert sorted(s.rows_in for s in outcome.steps if s.step_id == "load") == [3]
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    sent = next(line for line in log.splitlines() if "incremental: SELECT" in line)
    assert "[1 parameter]" in sent and "2024-01-03" not in sent  # the value is bound, not pasted
    assert sql("SELECT id, name FROM copy_httpsrc ORDER BY id") == [
        (1, "a2"), (2, "b"), (3, "c"), (4, "d"), (5, "e"),
    ]  # fmt: skip
    assert _state(project)["last_value"].startswith("2024-01-06 00:00:00")


def _events_tables(family: str, db: dict[str, Any]) -> Any:
    """events_httpsrc (three rows, a day apart) and an empty copy_httpsrc on the family's
    server; a function running statements there."""
    mysql = family == "mysql"
    text, stamp = ("VARCHAR(20)", "DATETIME") if mysql else ("TEXT", "TIMESTAMP")

    def sql(*statements: str) -> list[tuple[Any, ...]]:
        return (_my if mysql else _pg)(db, *statements)

    sql(
        f"CREATE TABLE events_httpsrc (id INT PRIMARY KEY, name {text}, updated_at {stamp})",
        "INSERT INTO events_httpsrc VALUES (1, 'a', '2024-01-01 00:00:00'), "
        "(2, 'b', '2024-01-02 00:00:00'), (3, 'c', '2024-01-03 00:00:00')",
        f"CREATE TABLE copy_httpsrc (id INT PRIMARY KEY, name {text}, updated_at {stamp})",
    )
    return sql


def test_mysql_incremental_reads_only_new_rows(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    sql = _events_tables("mysql", mysql_db)
    _connections(tmp_path, "mysql", mysql_db)
    _incremental_runs(tmp_path, "mysql", sql)


def test_partitioned_incremental_reads_only_new_rows_and_advances(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """partition: with incremental: every partition reads the same window (the state goes to
    each), and the highest value any partition read is the new state."""
    for family, db in (("mysql", mysql_db), ("postgres", pg_db)):
        sql = _events_tables(family, db)
        project = tmp_path / family
        project.mkdir()
        _connections(project, family, db)
        partition = {"column": "id", "count": 3, "lower": 1, "upper": 6}
        _incremental_runs(project, family, sql, partition)


def test_postgres_incremental_reads_only_new_rows(pg_db: dict[str, Any], tmp_path: Path) -> None:
    sql = _events_tables("postgres", pg_db)
    _connections(tmp_path, "postgres", pg_db)
    _incremental_runs(tmp_path, "postgres", sql)


def test_supabase_incremental_reads_only_new_rows(pg_db: dict[str, Any], tmp_path: Path) -> None:
    """@supabase.<alias> runs the PostgreSQL driver: the same bound cursor, the same upsert (the
    local PostgreSQL stands in for the project's database)."""
    sql = _events_tables("postgres", pg_db)
    _connections(tmp_path, "supabase", pg_db)
    _incremental_runs(tmp_path, "supabase", sql)


def test_a_failed_run_keeps_the_sql_state(pg_db: dict[str, Any], tmp_path: Path) -> None:
    _pg(
        pg_db,
        "CREATE TABLE events_httpsrc (id INT PRIMARY KEY, name TEXT, updated_at TIMESTAMP)",
        "INSERT INTO events_httpsrc VALUES (1, 'a', '2024-01-01 00:00:00')",
        "CREATE TABLE copy_httpsrc (id INT PRIMARY KEY, name INT, updated_at TIMESTAMP)",
    )
    _connections(tmp_path, "postgres", pg_db)
    steps = _pipeline("postgres", {"cursor_column": "updated_at"})
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code != 0  # name 'a' does not fit the target's INT column
    assert not state_path(tmp_path, "test-pipeline", "src").exists()
    assert _pg(pg_db, "SELECT count(*) FROM copy_httpsrc") == [(0,)]


def test_duckdb_incremental_binds_the_last_value(tmp_path: Path) -> None:
    import duckdb

    source = tmp_path / "source_httpsrc.duckdb"
    con = duckdb.connect(str(source))
    con.execute("CREATE TABLE events_httpsrc (id INTEGER, name VARCHAR, version BIGINT)")
    con.execute("INSERT INTO events_httpsrc VALUES (1, 'a', 10), (2, 'b', 20)")
    con.close()
    (tmp_path / "osiris.yaml").write_text("", encoding="utf-8")
    read = {
        "path": str(source),
        "table": "events_httpsrc",
        "incremental": {"cursor_column": "version"},
    }
    steps = [
        step("src", "duckdb.extractor", "extractor", read),
        step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
    ]
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert _state(tmp_path)["last_value"] == 20
    con = duckdb.connect(str(source))
    con.execute("INSERT INTO events_httpsrc VALUES (3, 'c', 30)")
    con.close()
    outcome, run_dir = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines() == [
        "id,name,version",
        "3,c,30",
    ]
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert '"version" > ? [1 parameter]' in log
    assert _state(tmp_path)["last_value"] == 30


def test_csv_incremental_reads_only_newer_rows(tmp_path: Path) -> None:
    (tmp_path / "osiris.yaml").write_text("", encoding="utf-8")
    data = tmp_path / "in_httpsrc.csv"
    data.write_text("id,seen\n1,2024-01-01 00:00:00\n2,2024-01-02 00:00:00\n", encoding="utf-8")
    read = {"path": "in_httpsrc.csv", "incremental": {"cursor_column": "seen", "lag": 0}}
    steps = [
        step("src", "filesystem.csv_extractor", "extractor", read),
        step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
    ]
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert _state(tmp_path)["last_value"] == "2024-01-02 00:00:00"
    with data.open("a", encoding="utf-8") as more:
        more.write("3,2024-01-03 00:00:00\n")
    outcome, run_dir = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["3"]
    assert '"seen" > ? [1 parameter]' in (run_dir / "run.log").read_text(encoding="utf-8")


def test_parquet_incremental_reads_only_newer_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "osiris.yaml").write_text("", encoding="utf-8")
    data = tmp_path / "in_sm.parquet"
    pq.write_table(pa.table({"id": [1, 2], "version": [10, 20]}), data)
    read = {"path": "in_sm.parquet", "incremental": {"cursor_column": "version", "lag": 5}}
    steps = [
        step("src", "filesystem.parquet_extractor", "extractor", read),
        step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
    ]
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert _state(tmp_path)["last_value"] == 20
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "version": [10, 20, 16, 30]}), data)
    outcome, run_dir = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert lines == ["id,version", "2,20", "3,16", "4,30"]  # after 20 - 5: 16 arrived late
    assert '"version" > ? [1 parameter]' in (run_dir / "run.log").read_text(encoding="utf-8")
    assert _state(tmp_path)["last_value"] == 30
