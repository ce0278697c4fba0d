"""Measures candidate client libraries on 1M rows x 8 columns (run in a venv that has all of them)."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

MYSQL = {
    "host": "127.0.0.1",
    "port": 3306,
    "user": "root",
    "password": "",
    "database": "osiris_bench",
}
PG_DSN = "host=127.0.0.1 user=postgres dbname=osiris_bench"
SCHEMA = pa.schema(
    [
        ("id", pa.int32()),
        ("customer_id", pa.int32()),
        ("status", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("created_at", pa.timestamp("us")),
        ("email", pa.string()),
        ("note", pa.string()),
        ("paid", pa.bool_()),
    ]
)
PG_TABLE = (
    "DROP TABLE IF EXISTS choice; CREATE TABLE choice (id int, customer_id int, status varchar(20), "
    "amount numeric(12,2), created_at timestamp, email varchar(120), note varchar(200), paid boolean)"
)


def _text_columns(rows: list[tuple[Any, ...]]) -> list[pa.Array]:
    cols = []
    for col, field in zip(zip(*rows, strict=False), SCHEMA, strict=True):
        arr = pa.array(col, pa.binary() if isinstance(col[0], bytes) else pa.string())
        arr = arr.cast(pa.string())
        if pa.types.is_boolean(field.type):
            cols.append(arr.cast(pa.int8()).cast(pa.bool_()))
        else:
            cols.append(arr.cast(field.type))
    return cols


def read_pymysql(table: str, raw: bool) -> int:
    import pymysql
    import pymysql.converters
    import pymysql.cursors

    kw: dict[str, Any] = {"cursorclass": pymysql.cursors.SSCursor}
    if raw:
        kw["conv"] = {
            k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)
        }
    conn = pymysql.connect(**MYSQL, **kw)
    n = 0
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        while rows := cur.fetchmany(50_000):
            if raw:
                _text_columns(rows)
            else:
                [pa.array(c) for c in zip(*rows, strict=False)]
            n += len(rows)
    return n


def read_mysqlclient(table: str) -> int:
    import MySQLdb
    import MySQLdb.cursors

    conn = MySQLdb.connect(
        host="127.0.0.1",
        user="root",
        password="",
        database="osiris_bench",
        cursorclass=MySQLdb.cursors.SSCursor,
        conv={},
    )
    n = 0
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {table}")
    while rows := cur.fetchmany(50_000):
        _text_columns(rows)
        n += len(rows)
    return n


def read_connectorx(table: str) -> int:
    import connectorx

    cols = "id, customer_id, status, CAST(amount AS CHAR) AS amount, created_at, email, note, paid"
    reader = connectorx.read_sql(
        "mysql://root@127.0.0.1:3306/osiris_bench",
        f"SELECT {cols} FROM {table}",
        return_type="arrow_stream",
        batch_size=50_000,
    )
    return sum(b.num_rows for b in reader)


def pg_table() -> pa.Table:
    import connectorx

    return connectorx.read_sql(
        "postgresql://postgres@127.0.0.1:5432/osiris_bench",
        "SELECT * FROM choice_src",
        return_type="arrow",
    ).cast(SCHEMA)


def write_pg(kind: str, table: pa.Table) -> int:
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        conn.execute(PG_TABLE)
        conn.commit()
        if kind == "adbc":
            import adbc_driver_postgresql.dbapi as adbc

            with adbc.connect("postgresql://postgres@127.0.0.1:5432/osiris_bench") as a:
                with a.cursor() as cur:
                    cur.adbc_ingest("choice", table, mode="append")
                a.commit()
            return table.num_rows
        fmt = {"csv": "(FORMAT csv)", "binary": "(FORMAT binary)", "text": ""}[kind]
        with conn.cursor() as cur, cur.copy(f"COPY choice FROM STDIN {fmt}") as copy:
            if kind == "binary":
                copy.set_types(
                    [
                        "int4",
                        "int4",
                        "varchar",
                        "numeric",
                        "timestamp",
                        "varchar",
                        "varchar",
                        "bool",
                    ]
                )
            for batch in table.to_batches(50_000):
                if kind == "csv":
                    buf = io.BytesIO()
                    pcsv.write_csv(batch, buf, pcsv.WriteOptions(include_header=False))
                    copy.write(buf.getbuffer())
                else:
                    for row in zip(*[c.to_pylist() for c in batch.columns], strict=True):
                        copy.write_row(row)
        conn.commit()
    return table.num_rows


def read_pg(kind: str) -> int:
    if kind == "adbc":
        import adbc_driver_postgresql.dbapi as adbc

        with (
            adbc.connect("postgresql://postgres@127.0.0.1:5432/osiris_bench") as a,
            a.cursor() as cur,
        ):
            cur.execute("SELECT * FROM choice_src")
            return sum(b.num_rows for b in cur.fetch_record_batch())
    import psycopg

    with psycopg.connect(PG_DSN) as conn, conn.cursor() as cur:
        n = 0
        with cur.copy("COPY choice_src TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(
                ["int4", "int4", "varchar", "numeric", "timestamp", "varchar", "varchar", "bool"]
            )
            rows = []
            for row in copy.rows():
                rows.append(row)
                if len(rows) == 50_000:
                    [pa.array(c) for c in zip(*rows, strict=True)]
                    n += len(rows)
                    rows = []
            n += len(rows)
        return n


def write_mysql(kind: str, table: pa.Table) -> int:
    import os
    import tempfile

    import pymysql

    conn = pymysql.connect(**MYSQL, local_infile=True)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS choice")
        cur.execute(
            "CREATE TABLE choice (id INT, customer_id INT, status VARCHAR(20), amount DECIMAL(12,2), "
            "created_at DATETIME(6), email VARCHAR(120), note VARCHAR(200), paid BOOL)"
        )
        fd, path = tempfile.mkstemp(suffix=".csv")
        os.close(fd)
        for batch in table.to_batches(50_000):
            if kind == "load_data":
                cols = [
                    c.cast(pa.int8()) if pa.types.is_boolean(c.type) else c for c in batch.columns
                ]
                prepared = pa.RecordBatch.from_arrays(cols, names=batch.schema.names)
                pcsv.write_csv(
                    prepared, path, pcsv.WriteOptions(include_header=False, null_string="NULL")
                )
                cur.execute(
                    "LOAD DATA LOCAL INFILE %s INTO TABLE choice CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' "
                    "OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n'",
                    (path,),
                )
            else:
                rows = list(zip(*[c.to_pylist() for c in batch.columns], strict=True))
                cur.executemany("INSERT INTO choice VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
        os.unlink(path)
    conn.commit()
    conn.close()
    return table.num_rows


def timed(name: str, fn: Callable[[], int]) -> None:
    try:
        started = time.perf_counter()
        rows = fn()
        secs = time.perf_counter() - started
        print(f"{name:44s} {rows / secs:>12,.0f} rows/s  ({secs:.2f}s)", flush=True)
    except ImportError as err:
        print(f"{name:44s} skipped: {err}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--table", default="orders_1000000", help="MariaDB osiris_bench table (move_bench seeds it)"
    )
    args = parser.parse_args()
    t = args.table
    print(f"python {sys.version.split()[0]}, source osiris_bench.{t}")
    subprocess.run(
        f"psql -q -h127.0.0.1 -Upostgres osiris_bench -c 'DROP TABLE IF EXISTS choice_src' && "
        f'psql -q -h127.0.0.1 -Upostgres osiris_bench -c "{PG_TABLE.replace("choice", "choice_src")}" && '
        f"mariadb -h127.0.0.1 -uroot --quick --batch --skip-column-names -e 'SELECT * FROM {t}' osiris_bench | "
        "psql -q -h127.0.0.1 -Upostgres osiris_bench -c '\\copy choice_src FROM STDIN'",
        shell=True,
        check=True,
    )
    print("-- MySQL/MariaDB read -> Arrow")
    timed("pymysql SSCursor (default converters)", lambda: read_pymysql(t, raw=False))
    timed("pymysql SSCursor raw text + Arrow casts", lambda: read_pymysql(t, raw=True))
    timed("mysqlclient SSCursor raw + Arrow casts", lambda: read_mysqlclient(t))
    timed("connectorx arrow_stream", lambda: read_connectorx(t))
    table = pg_table()
    print("-- PostgreSQL write (COPY) from Arrow")
    for kind in ("csv", "binary", "text", "adbc"):
        timed(
            f"psycopg COPY {kind} ({'write() Arrow-CSV blocks' if kind == 'csv' else 'write_row'})"
            if kind != "adbc"
            else "ADBC adbc_ingest",
            lambda k=kind: write_pg(k, table),
        )  # type: ignore[misc]
    print("-- PostgreSQL read -> Arrow")
    timed("psycopg COPY binary rows()", lambda: read_pg("binary"))
    timed("ADBC fetch_record_batch", lambda: read_pg("adbc"))
    import tempfile
    from pathlib import Path

    from osiris.runtime.drivers.postgres import PostgresExtractor

    sys.path.insert(0, "tests")
    from drivers_ctx import make_ctx

    pg = {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "postgres",
        "password": "",
        "database": "osiris_bench",
    }
    ctx = make_ctx(Path(tempfile.mkdtemp()), "e", {"table": "choice_src"}, pg)
    timed(
        "osiris PostgresExtractor (COPY csv -> Arrow CSV)",
        lambda: sum(b.num_rows for b in PostgresExtractor().extract(ctx)),
    )
    print("-- MySQL/MariaDB write from Arrow")
    timed("pymysql LOAD DATA LOCAL INFILE (Arrow CSV)", lambda: write_mysql("load_data", table))
    timed("pymysql executemany multi-row INSERT", lambda: write_mysql("insert", table))


if __name__ == "__main__":
    main()
