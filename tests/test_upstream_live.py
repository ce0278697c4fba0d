"""Upstream compatibility fields against the real servers, through `osiris run`:
offset on the SQL extractors, truncate_before on mysql.writer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from oml_cases import extract, mysql_writer, pipeline

from osiris.runtime.drivers.sql_common import DriverConfigError, ExtractOptions, WriteOptions


def osiris(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def inline(db: dict[str, Any]) -> str:
    fields = {k: db[k] for k in ("host", "port", "user", "database")}
    return ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())


def read_to_csv(project: Path, component: str, config: str) -> subprocess.CompletedProcess[str]:
    text = pipeline(
        f"""\
        - id: src
          component: {component}
          mode: read
          config: {{{config}}}
        - id: out
          component: filesystem.csv_writer
          mode: write
          needs: [src]
          config: {{path: o.csv}}
        """
    )
    (project / "pipeline.oml").write_text(text, encoding="utf-8")
    return osiris("run", "pipeline.oml", cwd=project)


def csv_lines(project: Path) -> list[str]:
    return (project / "o.csv").read_text(encoding="utf-8").splitlines()


# ---- offset ----------------------------------------------------------------------------------

# Inserted out of key order, and (kv) with no primary key at all.
ROWS = [(5, "e", 50), (3, "c", 30), (1, "a", 10), (4, "d", 40), (2, "b", 20), (6, "f", 60)]


@pytest.fixture
def mysql_rows(mysql_db: dict[str, Any]) -> dict[str, Any]:
    import pymysql

    conn = pymysql.connect(**mysql_db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(10), n INT)")
        cur.execute("CREATE TABLE kv (name VARCHAR(10), n INT)")
        cur.executemany("INSERT INTO items VALUES (%s, %s, %s)", ROWS)
        cur.executemany("INSERT INTO kv VALUES (%s, %s)", [(r[1], r[2]) for r in ROWS])
    conn.close()
    return mysql_db


@pytest.fixture
def pg_rows(pg_db: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(
        **{k: v for k, v in pg_db.items() if k != "database"},
        dbname=pg_db["database"],
        autocommit=True,
    ) as conn:
        conn.execute("CREATE TABLE items (id INT PRIMARY KEY, name TEXT, n INT)")
        conn.execute("CREATE TABLE kv (name TEXT, n INT)")
        # updates move rows on the heap: physical order is no longer insertion order
        for row in ROWS:
            conn.execute("INSERT INTO items VALUES (%s, %s, %s)", row)
            conn.execute("INSERT INTO kv VALUES (%s, %s)", row[1:])
        conn.execute("UPDATE items SET n = n + 0 WHERE id IN (1, 2)")
        conn.execute("UPDATE kv SET n = n + 0 WHERE name IN ('a', 'b')")
    return pg_db


CASES = [
    # (config after the connection, expected csv lines)
    ("table: items, offset: 2", ["id,name,n", "3,c,30", "4,d,40", "5,e,50", "6,f,60"]),
    ("table: items, offset: 1, limit: 2", ["id,name,n", "2,b,20", "3,c,30"]),
    # offset 0 is the first page: in the same order as the pages after it
    ("table: items, offset: 0, limit: 2", ["id,name,n", "1,a,10", "2,b,20"]),
    ("table: kv, offset: 0", ["name,n", "a,10", "b,20", "c,30", "d,40", "e,50", "f,60"]),
    ("table: items, offset: 10", ["id,name,n"]),
    # the key is not among the columns read: ordered by the columns read
    (
        "table: items, columns: [n, name], where: 'n > 15', offset: 1, limit: 3",
        ["n,name", "30,c", "40,d", "50,e"],
    ),
    ("table: items, columns: [name, id], where: 'id <> 3', offset: 3", ["name,id", "e,5", "f,6"]),
    # no primary key: ordered by every column read
    ("table: kv, offset: 4", ["name,n", "e,50", "f,60"]),
    ("table: kv, columns: [n], where: 'n < 60', offset: 1, limit: 2", ["n", "20", "30"]),
]


@pytest.mark.parametrize(("config", "expected"), CASES)
def test_mysql_offset(
    tmp_path: Path, mysql_rows: dict[str, Any], config: str, expected: list[str]
) -> None:
    run = read_to_csv(tmp_path, "mysql.extractor", f"{inline(mysql_rows)}, {config}")
    assert run.returncode == 0, run.stderr + run.stdout
    assert csv_lines(tmp_path) == expected


@pytest.mark.parametrize(("config", "expected"), CASES)
def test_postgres_offset(
    tmp_path: Path, pg_rows: dict[str, Any], config: str, expected: list[str]
) -> None:
    run = read_to_csv(tmp_path, "postgres.extractor", f"{inline(pg_rows)}, {config}")
    assert run.returncode == 0, run.stderr + run.stdout
    assert csv_lines(tmp_path) == expected


def test_supabase_offset(tmp_path: Path, pg_rows: dict[str, Any]) -> None:
    config = f"{inline(pg_rows)}, table: items, schema: public, offset: 4, limit: 1"
    run = read_to_csv(tmp_path, "supabase.extractor", config)
    assert run.returncode == 0, run.stderr + run.stdout
    assert csv_lines(tmp_path) == ["id,name,n", "5,e,50"]


@pytest.mark.parametrize("component", ["mysql.extractor", "postgres.extractor"])
def test_offset_with_query_is_a_check_error(tmp_path: Path, component: str) -> None:
    config = "host: h, database: d, user: u, query: 'SELECT 1 AS x', offset: 1"
    run = read_to_csv(tmp_path, component, config)
    assert run.returncode != 0
    assert "offset only applies with table" in run.stderr + run.stdout
    assert not (tmp_path / "o.csv").exists()


def test_offset_with_query_is_refused_by_the_driver_too() -> None:
    class Ctx:
        batch_size = None

    with pytest.raises(DriverConfigError, match="offset only applies with table"):
        ExtractOptions.parse({"query": "SELECT 1", "offset": 2}, Ctx())
    with pytest.raises(DriverConfigError, match="offset only applies with table"):
        ExtractOptions.parse({"query": "SELECT 1", "offset": 0}, Ctx())
    opts = ExtractOptions.parse({"table": "t", "offset": 0}, Ctx())
    assert opts.limited("SELECT * FROM t", ["id"]) == "SELECT * FROM t ORDER BY id"


# ---- truncate_before ---------------------------------------------------------------------------


def _mysql(db: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    import pymysql

    conn = pymysql.connect(**db, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def _truncate_project(tmp_path: Path, db: dict[str, Any], csv: str, extra: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text(csv, encoding="utf-8")
    writer = mysql_writer(f"{{{inline(db)}, table: dst, truncate_before: true{extra}}}")
    (tmp_path / "pipeline.oml").write_text(pipeline(extract() + writer), encoding="utf-8")


@pytest.mark.parametrize("extra", ["", ", write_mode: append"])
def test_mysql_truncate_before_replaces_the_rows(
    tmp_path: Path, mysql_db: dict[str, Any], extra: str
) -> None:
    _mysql(mysql_db, "CREATE TABLE dst (id INT PRIMARY KEY, name VARCHAR(3) NOT NULL)")
    _mysql(mysql_db, "INSERT INTO dst VALUES (1, 'old'), (2, 'old'), (9, 'old')")
    _truncate_project(tmp_path, mysql_db, "id,name\n1,new\n3,abc\n", extra)
    run = osiris("run", "pipeline.oml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    assert _mysql(mysql_db, "SELECT id, name FROM dst ORDER BY id") == [(1, "new"), (3, "abc")]
    # the table itself is kept (its key and column types), not recreated from the data
    ddl = _mysql(mysql_db, "SHOW CREATE TABLE dst")[0][1]
    assert "PRIMARY KEY (`id`)" in ddl and "varchar(3)" in ddl.lower()
    assert [t for (t,) in _mysql(mysql_db, "SHOW TABLES")] == ["dst"]  # no staging left


def test_mysql_truncate_before_failing_load_keeps_the_old_rows(
    tmp_path: Path, mysql_db: dict[str, Any]
) -> None:
    _mysql(mysql_db, "CREATE TABLE dst (id INT PRIMARY KEY, name VARCHAR(3) NOT NULL)")
    _mysql(mysql_db, "INSERT INTO dst VALUES (1, 'old'), (2, 'old')")
    # the second row is too long for VARCHAR(3): the load fails after the first row went in
    _truncate_project(tmp_path, mysql_db, "id,name\n5,new\n6,toolong\n", ", write_mode: append")
    run = osiris("run", "pipeline.oml", cwd=tmp_path)
    assert run.returncode != 0
    assert "dst" in run.stderr + run.stdout
    assert _mysql(mysql_db, "SELECT id, name FROM dst ORDER BY id") == [(1, "old"), (2, "old")]
    assert [t for (t,) in _mysql(mysql_db, "SHOW TABLES")] == ["dst"]


def test_mysql_truncate_before_false_appends(tmp_path: Path, mysql_db: dict[str, Any]) -> None:
    _mysql(mysql_db, "CREATE TABLE dst (id INT PRIMARY KEY, name VARCHAR(3) NOT NULL)")
    _mysql(mysql_db, "INSERT INTO dst VALUES (1, 'old')")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("id,name\n2,new\n", encoding="utf-8")
    writer = mysql_writer(f"{{{inline(mysql_db)}, table: dst, truncate_before: false}}")
    (tmp_path / "pipeline.oml").write_text(pipeline(extract() + writer), encoding="utf-8")
    run = osiris("run", "pipeline.oml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout
    assert _mysql(mysql_db, "SELECT id, name FROM dst ORDER BY id") == [(1, "old"), (2, "new")]


@pytest.mark.parametrize("mode", ["write_mode: upsert", "mode: upsert"])
def test_truncate_before_with_upsert_is_a_check_error(tmp_path: Path, mode: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("id\n1\n", encoding="utf-8")
    config = f"{{host: h, database: d, user: u, table: dst, truncate_before: true, {mode}, primary_key: [id]}}"
    (tmp_path / "pipeline.oml").write_text(pipeline(extract() + mysql_writer(config)))
    run = osiris("run", "pipeline.oml", cwd=tmp_path)
    assert run.returncode != 0
    assert "nothing to upsert into" in run.stderr + run.stdout


def test_truncate_before_in_the_driver() -> None:
    class Ctx:
        batch_size = None

    base = {"table": "t", "truncate_before": True}
    assert WriteOptions.parse(base, Ctx()).write_mode == "replace"
    assert WriteOptions.parse({**base, "write_mode": "replace"}, Ctx()).write_mode == "replace"
    with pytest.raises(DriverConfigError, match="nothing to upsert into"):
        WriteOptions.parse({**base, "write_mode": "upsert", "primary_key": ["id"]}, Ctx())
