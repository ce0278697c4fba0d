"""Benchmark discovery: first (cold) discovery vs a cached, digest-verified hit, 200 tables × 20 columns.

On MariaDB, PostgreSQL and DuckDB (each skipped when unreachable). A verified hit connects and
runs one catalog-digest query; connecting is measured on its own, in the same run, and the
target applies to the hit's work beyond it: ≤ 50 ms. The tables are created in a database /
schema named *catalog_bench* and dropped afterwards.

Usage: python bench/discovery_bench.py [--tables 200] [--columns 20] [--repeat 15]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ms, p50, row, time_calls

TARGET = 0.050
MYSQL = {
    "host": "127.0.0.1",
    "port": 3306,
    "user": "root",
    "password": "",
    "database": "osiris_catalog_bench",
}
POSTGRES = {
    "host": "127.0.0.1",
    "port": 5432,
    "user": "postgres",
    "database": "test",
    "schema": "catalog_bench",
}
TYPES = ["INT", "BIGINT", "VARCHAR(40)", "DECIMAL(12,2)", "DATE", "TIMESTAMP", "TEXT", "BOOLEAN"]


def _ddl(i: int, columns: int, *, pg: bool) -> str:
    cols = ["id BIGINT PRIMARY KEY"] + [
        f"c{j} {TYPES[j % len(TYPES)].replace('TIMESTAMP', 'TIMESTAMP' if pg else 'DATETIME')}"
        + (" NOT NULL DEFAULT 0" if TYPES[j % len(TYPES)] == "INT" else "")
        for j in range(1, columns)
    ]
    return f"t_catalog_{i:03d} ({', '.join(cols)})"


def setup_mysql(tables: int, columns: int) -> Callable[[], None] | None:
    try:
        import pymysql

        admin = pymysql.connect(
            **{k: v for k, v in MYSQL.items() if k != "database"}, autocommit=True
        )
    except Exception as err:
        print(f"  MariaDB: skipped ({err})")
        return None
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS osiris_catalog_bench")
        cur.execute("CREATE DATABASE osiris_catalog_bench")
        cur.execute("USE osiris_catalog_bench")
        for i in range(tables):
            cur.execute("CREATE TABLE " + _ddl(i, columns, pg=False))

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS osiris_catalog_bench")
        admin.close()

    return drop


def setup_postgres(tables: int, columns: int) -> Callable[[], None] | None:
    try:
        import psycopg

        admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    except Exception as err:
        print(f"  PostgreSQL: skipped ({err})")
        return None
    admin.execute("DROP SCHEMA IF EXISTS catalog_bench CASCADE")
    admin.execute("CREATE SCHEMA catalog_bench")
    for i in range(tables):
        admin.execute("CREATE TABLE catalog_bench." + _ddl(i, columns, pg=True))

    def drop() -> None:
        admin.execute("DROP SCHEMA IF EXISTS catalog_bench CASCADE")
        admin.close()

    return drop


def setup_duckdb(path: Path, tables: int, columns: int) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        for i in range(tables):
            con.execute("CREATE TABLE " + _ddl(i, columns, pg=True))


def measure(label: str, ref: str, root: Path, connect: Callable[[], Any], repeat: int) -> None:
    from osiris.compiler.discovery import cache
    from osiris.compiler.discovery.service import discover, key_parts, resolve
    from osiris.runtime.catalog.read import catalog_digest

    def run(**kw: Any) -> Any:
        return discover(
            ref, project_root=root, connections_path=root / "osiris_connections.yaml",
            environ={}, **kw,
        )  # fmt: skip

    start = time.perf_counter()
    first = run(refresh=True)
    cold = time.perf_counter() - start
    assert first.cache_status.status == "miss", first.cache_status
    tables = len(first.catalog.tables)
    columns = sum(len(t.columns) for t in first.catalog.tables)
    hit = p50(time_calls(lambda: run(), repeat=repeat))
    check = run()
    assert check.cache_status.status == "hit" and check.cache_status.verified, check.cache_status
    conn = p50(time_calls(lambda: connect().close(), repeat=repeat))
    conns = root / "osiris_connections.yaml"
    source = resolve(ref, project_root=root, connections_path=conns, environ={})
    parts = key_parts(source, None, None, 0)
    path = cache.entry_path(cache.connection_dir(root, source.family, source.alias), parts.key)
    resolving = p50(
        time_calls(
            lambda: (
                key_parts(
                    resolve(ref, project_root=root, connections_path=conns, environ={}),
                    None,
                    None,
                    0,
                ).key
            ),
            repeat=repeat,
        )
    )
    digest = p50(time_calls(lambda: catalog_digest(source.family, source.fields), repeat=repeat))
    entry = p50(time_calls(lambda: cache.read_entry(path), repeat=repeat))
    print(f"{label}: {tables} tables, {columns} columns")
    row("first discovery (miss: digest + catalog + write)", cold)
    row("cached hit (connect + digest + entry read)", hit)
    row("connect alone", conn)
    row("  of the hit: resolve connection + key", resolving)
    row("  of the hit: digest query (beyond connecting)", max(0.0, digest - conn))
    row("  of the hit: entry read + decode", entry)
    row("hit beyond connecting", max(0.0, hit - conn), TARGET)
    print(f"  {'first / hit':<46} {cold / hit:8.1f} x")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    import yaml

    work = Path(tempfile.mkdtemp(prefix="osiris-catalog-bench-"))
    duck = work / "bench_catalog.duckdb"
    connections = {
        "mysql": {"bench": {k: v for k, v in MYSQL.items() if k != "password"}},
        "postgres": {"bench": POSTGRES},
        "duckdb": {"bench": {"path": str(duck)}},
    }
    (work / "osiris_connections.yaml").write_text(
        yaml.safe_dump({"version": 1, "connections": connections})
    )
    print(f"discovery: {args.tables} tables × {args.columns} columns, p50 of {args.repeat}")
    try:
        drop = setup_mysql(args.tables, args.columns)
        if drop is not None:
            try:
                from osiris.runtime.drivers.mysql import connect as my_connect

                measure("MariaDB", "@mysql.bench", work, lambda: my_connect(MYSQL), args.repeat)
            finally:
                drop()
        drop = setup_postgres(args.tables, args.columns)
        if drop is not None:
            try:
                from osiris.runtime.drivers.postgres import connect as pg_connect

                measure(
                    "PostgreSQL", "@postgres.bench", work, lambda: pg_connect(POSTGRES), args.repeat
                )
            finally:
                drop()
        setup_duckdb(duck, args.tables, args.columns)

        def duck_connect() -> Any:
            from osiris.runtime.catalog.duckdb import _open

            return _open({"path": str(duck)})

        measure("DuckDB", "@duckdb.bench", work, duck_connect, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"target: a verified hit ≤ {ms(TARGET).strip()} beyond connecting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
