"""Faults on real servers: a killed connection fails the step cleanly, the target is unchanged, a rerun works."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pymysql
import pytest
from drivers_ctx import make_ctx

from osiris.runtime.drivers.base import DriverError
from osiris.runtime.drivers.mysql import MySQLExtractor
from osiris.runtime.drivers.postgres import PostgresWriter


def _pg(db: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], dbname=db["database"], autocommit=True
    )


def _slow_rows(total: int, batch: int) -> pa.RecordBatchReader:
    schema = pa.schema([("id", pa.int64()), ("payload", pa.string())])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, total, batch):
            ids = list(range(start, min(start + batch, total)))
            yield pa.record_batch(
                [pa.array(ids, pa.int64()), [f"row {i}" * 5 for i in ids]], schema=schema
            )
            time.sleep(0.01)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _terminate_copy_soon(db: dict[str, Any]) -> threading.Thread:
    def killer() -> None:
        with _pg(db) as admin:
            for _ in range(500):
                found = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE 'COPY %%' "
                    "AND pid <> pg_backend_pid()",
                    [db["database"]],
                ).fetchall()
                if found:
                    time.sleep(0.05)  # let some batches through first
                    admin.execute("SELECT pg_terminate_backend(%s)", [found[0][0]])
                    return
                time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["append", "replace", "upsert"])
def test_pg_backend_terminated_mid_copy(pg_db: dict[str, Any], tmp_path: Path, mode: str) -> None:
    with _pg(pg_db) as conn:
        conn.execute("CREATE TABLE target (id bigint PRIMARY KEY, payload text)")
        conn.execute("INSERT INTO target VALUES (-1, 'before'), (-2, 'before')")
    cfg = {"table": "target", "write_mode": mode, "primary_key": ["id"]}
    killer = _terminate_copy_soon(pg_db)
    with pytest.raises(DriverError) as info:
        PostgresWriter().write(make_ctx(tmp_path, "w", cfg, pg_db), _slow_rows(200_000, 2_000))
    killer.join(5)
    assert "\n" not in str(info.value)
    with _pg(pg_db) as conn:
        assert conn.execute("SELECT id, payload FROM target ORDER BY id").fetchall() == [
            (-2, "before"),
            (-1, "before"),
        ]
        leftovers = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%osiris%'")
        assert leftovers.fetchone() == (0,)
    result = PostgresWriter().write(make_ctx(tmp_path, "w", cfg, pg_db), _slow_rows(3_000, 1_000))
    assert result.rows_out == 3_000


@pytest.mark.mysql
@pytest.mark.postgres
def test_mysql_connection_killed_mid_extract(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    admin = pymysql.connect(
        **{k: mysql_db[k] for k in ("host", "port", "user", "password", "database")},
        autocommit=True,
    )
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, payload VARCHAR(200))")
        cur.execute("INSERT INTO big SELECT seq, REPEAT('x', 200) FROM seq_1_to_200000")
    with _pg(pg_db) as conn:
        conn.execute("CREATE TABLE target (id int PRIMARY KEY, payload text)")
        conn.execute("INSERT INTO target VALUES (-1, 'before')")
    extract_cfg = {"table": "big", "batch_size": 1_000}
    reader = MySQLExtractor().extract(make_ctx(tmp_path, "e", extract_cfg, mysql_db))

    def killing(source: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(source):
            if i == 2:
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                        "AND ID <> CONNECTION_ID() AND INFO LIKE 'SELECT%%osiris_q%%'",
                        (mysql_db["database"],),
                    )
                    for (pid,) in cur.fetchall():
                        cur.execute(f"KILL {int(pid)}")
            yield batch

    data = pa.RecordBatchReader.from_batches(reader.schema, killing(reader))
    load_cfg = {"table": "target", "write_mode": "append"}
    with pytest.raises(DriverError) as info:
        PostgresWriter().write(make_ctx(tmp_path, "w", load_cfg, pg_db), data)
    assert "MySQL" in str(info.value) and "\n" not in str(info.value)
    assert "the connection was lost" in str(info.value)
    assert "cx writer failed" not in str(info.value) and "Source(" not in str(info.value)
    with _pg(pg_db) as conn:
        assert conn.execute("SELECT * FROM target").fetchall() == [(-1, "before")]
    rerun = MySQLExtractor().extract(make_ctx(tmp_path, "e2", extract_cfg, mysql_db))
    assert (
        PostgresWriter().write(make_ctx(tmp_path, "w2", load_cfg, pg_db), rerun).rows_out == 200_000
    )
    admin.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # fails after ~150k rows have been streamed: the error comes at the end of the COPY
        (
            {"query": "SELECT g, 1 / (g - 150000) AS x FROM generate_series(1, 200000) g"},
            "division by zero",
        ),
        ({"table": "numbers", "where": "nope > 1"}, "nope"),  # fails before the first row
    ],
)
def test_pg_extract_server_errors_are_one_line(
    pg_db: dict[str, Any], tmp_path: Path, config: dict[str, Any], expected: str
) -> None:
    from osiris.runtime.drivers.postgres import PostgresExtractor

    with _pg(pg_db) as conn:
        conn.execute("CREATE TABLE numbers (n int)")
    with pytest.raises(DriverError) as info:
        for _ in PostgresExtractor().extract(make_ctx(tmp_path, "e", config, pg_db)):
            pass
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.postgres
def test_pg_backend_terminated_mid_extract(pg_db: dict[str, Any], tmp_path: Path) -> None:
    from osiris.runtime.drivers.postgres import PostgresExtractor

    config = {
        "query": "SELECT g, repeat('x', 100) AS pad, pg_sleep(0.00001) FROM generate_series(1, 300000) g",
        "batch_size": 1_000,
    }
    reader = PostgresExtractor().extract(make_ctx(tmp_path, "e", config, pg_db))
    killer = _terminate_copy_soon(pg_db)
    seen = 0
    with pytest.raises(DriverError) as info:
        for batch in reader:
            seen += batch.num_rows
    killer.join(5)
    message = str(info.value)
    assert "the server ended the session" in message and "administrator command" in message
    assert "\n" not in message and seen < 300_000
