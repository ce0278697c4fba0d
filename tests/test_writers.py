"""Writers doing what they promise: upsert keys, DuckDB replace, Parquet schemas, duplicate
column names, and publishing across the writers of one run (--atomic), on real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from drivers_ctx import make_ctx
from runtime_helpers import mysql_rows as _my
from runtime_helpers import pg_rows as _pg
from runtime_helpers import run_cli, run_steps, step, write_connections, write_manifest

from osiris.runtime.drivers.duckdb_driver import DuckDBWriter
from osiris.runtime.drivers.files import CsvWriter, ParquetWriter
from osiris.runtime.drivers.mysql import MySQLWriter
from osiris.runtime.drivers.postgres import PostgresWriter
from osiris.runtime.drivers.registry import DRIVERS, driver_class

CSV = "filesystem.csv_extractor"


def _duck(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _rows(ids: list[int], label: str) -> pa.RecordBatchReader:
    table = pa.table({"id": pa.array(ids, pa.int32()), "label": [f"{label}{i}" for i in ids]})
    return table.to_reader()


# ------------------------------------------------------------------ 1. upsert needs a key


def test_mysql_upsert_without_matching_key_fails_before_loading(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    _my(mysql_db, "CREATE TABLE t (id INT, label VARCHAR(20))", "INSERT INTO t VALUES (1, 'a1')")
    config = {"table": "t", "write_mode": "upsert", "primary_key": ["id"]}
    ctx = make_ctx(tmp_path, "load", config, mysql_db)
    with pytest.raises(Exception) as caught:
        MySQLWriter().write(ctx, _rows([1, 2], "b"))
    message = str(caught.value)
    assert "t has no primary or unique key" in message and "primary_key (id)" in message
    assert _my(mysql_db, "SELECT * FROM t") == [(1, "a1")]  # nothing loaded, no duplicate
    # a key on other columns is named in the message
    _my(mysql_db, "ALTER TABLE t ADD UNIQUE KEY uq_label (label)")
    with pytest.raises(Exception, match=r"these keys: uq_label \(label\)"):
        MySQLWriter().write(make_ctx(tmp_path, "load", config, mysql_db), _rows([2], "b"))
    # a key with exactly the columns (any order) makes it work
    _my(mysql_db, "ALTER TABLE t ADD PRIMARY KEY (id)")
    MySQLWriter().write(make_ctx(tmp_path, "load", config, mysql_db), _rows([1, 2], "b"))
    assert _my(mysql_db, "SELECT * FROM t ORDER BY id") == [(1, "b1"), (2, "b2")]


def test_postgres_upsert_without_matching_key_fails_before_loading(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    _pg(
        pg_db,
        "CREATE TABLE t (id int, label text, UNIQUE (id, label))",
        "INSERT INTO t VALUES (1, 'a1')",
    )
    config = {"table": "t", "write_mode": "upsert", "primary_key": ["id"]}
    with pytest.raises(Exception) as caught:
        PostgresWriter().write(make_ctx(tmp_path, "load", config, pg_db), _rows([1, 2], "b"))
    message = str(caught.value)
    assert "needs a PRIMARY KEY or UNIQUE key on exactly primary_key (id)" in message
    assert "t_id_label_key (id, label)" in message and "ON CONFLICT" not in message
    assert _pg(pg_db, "SELECT * FROM t") == [(1, "a1")]


def test_duckdb_upsert_into_a_keyless_table_merges(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t (id INTEGER, label VARCHAR)")
    con.execute("INSERT INTO t VALUES (1, 'a1')")
    con.close()
    config = {"path": str(db), "table": "t", "write_mode": "upsert", "primary_key": ["id"]}
    DuckDBWriter().write(make_ctx(tmp_path, "load", config, None), _rows([1, 2], "b"))
    assert _duck(db, "SELECT * FROM t ORDER BY id") == [(1, "b1"), (2, "b2")]


# ------------------------------------------------------------------ 2. DuckDB replace


def _keyed_table(db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, "
        "note VARCHAR DEFAULT 'n/a')"
    )
    con.execute("INSERT INTO t VALUES (1, 1.50, 'x')")
    con.close()


def _columns(db: Path) -> list[tuple[Any, ...]]:
    return _duck(
        db,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position",
    )


def test_duckdb_replace_keeps_the_table_definition(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    _keyed_table(db)
    before = _columns(db)
    (tmp_path / "in.csv").write_text("id,amount\n7,2.25\n8,3\n")
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "src", CSV, "extractor", {"path": "in.csv", "column_types": {"amount": "VARCHAR"}}
            ),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"path": "wh.duckdb", "table": "t", "write_mode": "replace"},
                needs=["src"],
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    assert _columns(db) == before  # DECIMAL stays DECIMAL (not VARCHAR), NOT NULL kept
    assert _duck(db, "SELECT * FROM t ORDER BY id") == [
        (7, pytest.approx(2.25), "n/a"),
        (8, 3, "n/a"),
    ]
    assert _duck(
        db,
        "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 't' AND constraint_type = 'PRIMARY KEY'",
    )


def test_duckdb_replace_fails_on_rows_that_do_not_fit(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    _keyed_table(db)
    for rows in ("id,amount\n7,abc\n", "id,amount\n7,1\n7,2\n", "id,amount\n7,\n"):
        (tmp_path / "in.csv").write_text(rows)
        outcome, _ = run_steps(
            tmp_path,
            [
                step(
                    "src",
                    CSV,
                    "extractor",
                    {"path": "in.csv", "column_types": {"amount": "VARCHAR"}},
                ),
                step(
                    "load",
                    "duckdb.writer",
                    "writer",
                    {"path": "wh.duckdb", "table": "t", "write_mode": "replace"},
                    needs=["src"],
                ),
            ],
        )
        assert outcome.exit_code == 4, rows
        assert _duck(db, "SELECT id, note FROM t") == [(1, "x")], rows


# ------------------------------------------------------------------ 3. Parquet and names


@pytest.mark.parametrize("materialize", ["auto", "all"])
@pytest.mark.parametrize("data", ["", "a,1.5\n"])
def test_parquet_columns_stay_nullable(tmp_path: Path, materialize: str, data: str) -> None:
    (tmp_path / "in.csv").write_text("s,d\n" + data)
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "src",
                CSV,
                "extractor",
                {"path": "in.csv", "column_types": {"s": "VARCHAR", "d": "DECIMAL(12,2)"}},
            ),
            step(
                "out", "filesystem.parquet_writer", "writer", {"path": "o.parquet"}, needs=["src"]
            ),
        ],
        materialize=materialize,
    )
    assert outcome.exit_code == 0, outcome.error
    schema = pq.read_schema(tmp_path / "o.parquet")
    assert [(f.name, str(f.type), f.nullable) for f in schema] == [
        ("s", "string", True),
        ("d", "decimal128(12, 2)", True),
    ]


@pytest.mark.parametrize("materialize", ["auto", "all"])
def test_processor_with_duplicate_output_names_fails(tmp_path: Path, materialize: str) -> None:
    (tmp_path / "in.csv").write_text("x\n1\n")
    outcome, _ = run_steps(
        tmp_path,
        [
            step("src", CSV, "extractor", {"path": "in.csv"}),
            step(
                "q",
                "duckdb.processor",
                "processor",
                {"query": "SELECT x AS a, 2 AS A FROM input"},
                needs=["src"],
            ),
            step("out", "filesystem.parquet_writer", "writer", {"path": "o.parquet"}, needs=["q"]),
        ],
        materialize=materialize,
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "q"
    assert "duplicate column name(s) a/A" in (outcome.error or "")
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    "driver_id", ["filesystem.csv_writer", "filesystem.parquet_writer", "duckdb.writer"]
)
def test_writers_refuse_arrow_input_with_duplicate_names(tmp_path: Path, driver_id: str) -> None:
    data = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]).to_reader()
    config = {"path": str(tmp_path / "out.x"), "table": "t"}
    with pytest.raises(Exception, match=r"duplicate column name\(s\) a"):
        driver_class(driver_id)().write(make_ctx(tmp_path, "w", config, None), data)  # type: ignore[attr-defined]
    assert not list(tmp_path.glob("*out*"))


def test_database_writers_refuse_duplicate_names(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    for writer, db in ((MySQLWriter(), mysql_db), (PostgresWriter(), pg_db)):
        data = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]).to_reader()
        with pytest.raises(Exception, match=r"duplicate column name\(s\) a"):
            writer.write(make_ctx(tmp_path, "w", {"table": "t"}, db), data)


# ------------------------------------------------------------------ 4. pending publications


def test_every_writer_declares_deferred_publish() -> None:
    writers = [d for d in DRIVERS if "writer" in driver_class(d).abilities.roles]
    assert writers and all(driver_class(d).abilities.deferred_publish for d in writers)


def _deferred(tmp_path: Path, config: dict[str, Any], connection: dict[str, Any] | None) -> Any:
    ctx = make_ctx(tmp_path, "w", config, connection)
    ctx.defer_publish = True
    return ctx


@pytest.mark.parametrize("mode", ["append", "replace", "upsert"])
def test_mysql_pending_publish_and_discard(
    mysql_db: dict[str, Any], tmp_path: Path, mode: str
) -> None:
    _my(
        mysql_db,
        "CREATE TABLE t (id INT PRIMARY KEY, label VARCHAR(20))",
        "INSERT INTO t VALUES (1, 'a1')",
    )
    config = {"table": "t", "write_mode": mode, "primary_key": ["id"]}
    result = MySQLWriter().write(_deferred(tmp_path, config, mysql_db), _rows([2, 3], "b"))
    assert result.pending is not None and result.rows_out == 2
    assert _my(mysql_db, "SELECT * FROM t") == [(1, "a1")]  # not visible yet
    result.pending.discard()
    assert _my(mysql_db, "SELECT * FROM t") == [(1, "a1")]
    assert _my(mysql_db, "SHOW TABLES") == [("t",)]  # no staging table left
    result = MySQLWriter().write(_deferred(tmp_path, config, mysql_db), _rows([2, 3], "b"))
    result.pending.publish()
    expected = [(2, "b2"), (3, "b3")] if mode == "replace" else [(1, "a1"), (2, "b2"), (3, "b3")]
    assert _my(mysql_db, "SELECT * FROM t ORDER BY id") == expected
    assert _my(mysql_db, "SHOW TABLES") == [("t",)]


@pytest.mark.parametrize("mode", ["append", "replace", "upsert"])
def test_postgres_pending_publish_and_discard(
    pg_db: dict[str, Any], tmp_path: Path, mode: str
) -> None:
    _pg(pg_db, "CREATE TABLE t (id int PRIMARY KEY, label text)", "INSERT INTO t VALUES (1, 'a1')")
    config = {"table": "t", "write_mode": mode, "primary_key": ["id"]}
    result = PostgresWriter().write(_deferred(tmp_path, config, pg_db), _rows([2, 3], "b"))
    assert result.pending is not None
    result.pending.discard()
    assert _pg(pg_db, "SELECT * FROM t") == [(1, "a1")]
    result = PostgresWriter().write(_deferred(tmp_path, config, pg_db), _rows([2, 3], "b"))
    if mode != "replace":  # replace holds the table's lock until it publishes
        assert _pg(pg_db, "SELECT count(*) FROM t") == [(1,)]
    result.pending.publish()
    expected = [(2, "b2"), (3, "b3")] if mode == "replace" else [(1, "a1"), (2, "b2"), (3, "b3")]
    assert _pg(pg_db, "SELECT * FROM t ORDER BY id") == expected


def test_duckdb_pending_publish_and_discard(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    config = {"path": str(db), "table": "t", "write_mode": "append"}
    DuckDBWriter().write(make_ctx(tmp_path, "w", config, None), _rows([1], "a"))
    result = DuckDBWriter().write(_deferred(tmp_path, config, None), _rows([2], "b"))
    result.pending.discard()
    assert _duck(db, "SELECT * FROM t") == [(1, "a1")]
    first = DuckDBWriter().write(_deferred(tmp_path, config, None), _rows([2], "b"))
    # a second writer on the same file while the first is pending does not wait for it
    second = DuckDBWriter().write(
        _deferred(tmp_path, {**config, "table": "u"}, None), _rows([3], "c")
    )
    first.pending.publish()
    second.pending.publish()
    assert _duck(db, "SELECT * FROM t ORDER BY id") == [(1, "a1"), (2, "b2")]
    assert _duck(db, "SELECT * FROM u") == [(3, "c3")]


@pytest.mark.parametrize("writer", [CsvWriter, ParquetWriter])
def test_file_pending_publish_and_discard(tmp_path: Path, writer: Any) -> None:
    target = tmp_path / "out.dat"
    target.write_text("before\n")
    con = duckdb.connect()
    con.execute("CREATE TABLE src AS SELECT 1 AS id")
    ctx = _deferred(tmp_path, {"path": str(target)}, None)
    result = writer()._write(ctx, con, "src")
    assert target.read_text() == "before\n"
    result.pending.discard()
    assert target.read_text() == "before\n" and [p.name for p in tmp_path.iterdir()] == ["out.dat"]
    result = writer()._write(ctx, con, "src")
    result.pending.publish()
    assert target.read_bytes() != b"before\n" and [p.name for p in tmp_path.iterdir()] == [
        "out.dat"
    ]


# ------------------------------------------------------------------ 4. across writers of a run


def _project(
    tmp_path: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any], *, pg_fails: bool
) -> Path:
    def fields(db: dict[str, Any]) -> str:
        return json.dumps({k: db[k] for k in ("host", "port", "user", "password", "database")})

    write_connections(
        tmp_path,
        "version: 1\nconnections:\n"
        f"  mysql:\n    my: {fields(mysql_db)}\n"
        f"  postgres:\n    pg: {fields(pg_db)}\n",
    )
    _my(
        mysql_db,
        "CREATE TABLE t (id INT PRIMARY KEY, label VARCHAR(20))",
        "INSERT INTO t VALUES (1, 'old')",
    )
    # the PostgreSQL target's key makes the second row fail when pg_fails
    _pg(pg_db, "CREATE TABLE t (id int PRIMARY KEY, label text)")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("CREATE TABLE t (id INTEGER, label VARCHAR)")
    con.execute("INSERT INTO t VALUES (1, 'old')")
    con.close()
    (tmp_path / "out.csv").write_text("old\n")
    (tmp_path / "in.csv").write_text("id,label\n2,new\n" + ("2,dup\n" if pg_fails else "3,new\n"))
    load = {"table": "t", "write_mode": "append"}
    return write_manifest(
        tmp_path / "build",
        [
            step("src", CSV, "extractor", {"path": "in.csv"}),
            step("csv", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
            step(
                "my",
                "mysql.writer",
                "writer",
                {**load, "write_mode": "upsert", "primary_key": ["id"]},
                needs=["src"],
                connection="@mysql.my",
            ),
            step("duck", "duckdb.writer", "writer", {**load, "path": "wh.duckdb"}, needs=["src"]),
            step("pg", "postgres.writer", "writer", load, needs=["src"], connection="@postgres.pg"),
        ],
    )


def _targets(tmp_path: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]) -> dict[str, Any]:
    return {
        "csv": (tmp_path / "out.csv").read_text(),
        "my": _my(mysql_db, "SELECT id, label FROM t ORDER BY id"),
        "duck": _duck(tmp_path / "wh.duckdb", "SELECT id, label FROM t ORDER BY id"),
        "pg": _pg(pg_db, "SELECT id, label FROM t ORDER BY id"),
    }


def _status(tmp_path: Path) -> dict[str, Any]:
    (run,) = sorted((tmp_path / "runs").iterdir())
    status: dict[str, Any] = json.loads((run / "status.json").read_text())
    return status


def test_failed_run_without_atomic_says_which_targets_were_updated(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    _project(tmp_path, mysql_db, pg_db, pg_fails=True)
    result = run_cli(["build", "--max-parallel", "1"], cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    after = _targets(tmp_path, mysql_db, pg_db)
    assert after["csv"] != "old\n" and after["pg"] == []  # per-writer: the CSV file was replaced
    status = _status(tmp_path)
    assert status["atomic"] is False and status["failed_step"] == "pg"
    assert set(status["published_steps"]) == {"csv", "my", "duck"}
    assert status["unpublished_steps"] == ["pg"]
    assert "'csv'" in status["note"] and "--atomic" in status["note"]
    assert "note: the targets of writer step(s)" in result.stderr


def test_failed_atomic_run_changes_no_target(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    _project(tmp_path, mysql_db, pg_db, pg_fails=True)
    before = _targets(tmp_path, mysql_db, pg_db)
    result = run_cli(["build", "--atomic", "--max-parallel", "1"], cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    assert _targets(tmp_path, mysql_db, pg_db) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no .part
    status = _status(tmp_path)
    assert status["atomic"] is True and status["published_steps"] == []
    assert set(status["unpublished_steps"]) == {"csv", "my", "duck", "pg"}


def test_atomic_run_publishes_every_target(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    _project(tmp_path, mysql_db, pg_db, pg_fails=False)
    result = run_cli(["build", "--atomic"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = _targets(tmp_path, mysql_db, pg_db)
    assert after["csv"] == "id,label\n2,new\n3,new\n"
    assert after["my"] == [(1, "old"), (2, "new"), (3, "new")]
    assert after["duck"] == [(1, "old"), (2, "new"), (3, "new")]
    assert after["pg"] == [(2, "new"), (3, "new")]
    status = _status(tmp_path)
    assert set(status["published_steps"]) == {"csv", "my", "duck", "pg"}
    log = (next((tmp_path / "runs").iterdir()) / "run.log").read_text()
    assert log.count("published ") == 4


def test_a_failed_publication_reports_what_was_published(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n")
    (tmp_path / "a.csv").write_text("old a\n")
    (tmp_path / "b.csv").mkdir()  # staging b works; renaming it into place cannot
    outcome, _ = run_steps(
        tmp_path,
        [
            step("src", CSV, "extractor", {"path": "in.csv"}),
            step("a", "filesystem.csv_writer", "writer", {"path": "a.csv"}, needs=["src"]),
            step("b", "filesystem.csv_writer", "writer", {"path": "b.csv"}, needs=["src"]),
        ],
        atomic=True,
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "b"
    error = outcome.error or ""
    assert "publishing step 'b' failed: cannot move the new file" in error
    assert f"already published: 'a' (file {tmp_path / 'a.csv'})" in error
    assert f"not published (left as they were): 'b' (file {tmp_path / 'b.csv'})" in error
    assert (tmp_path / "a.csv").read_text() == "id\n1\n"
    assert (tmp_path / "b.csv").is_dir() and not list((tmp_path / "b.csv").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    status = _status(tmp_path)
    assert status["published_steps"] == ["a"] and status["unpublished_steps"] == ["b"]
