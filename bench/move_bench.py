"""Moves an 8-column orders table MariaDB -> PostgreSQL (oml-run vs raw mariadb|psql), -> Parquet, PG -> DuckDB."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MYSQL = {
    "host": "127.0.0.1",
    "port": 3306,
    "user": "root",
    "password": "",
    "database": "osiris_bench",
}
PG = {
    "host": "127.0.0.1",
    "port": 5432,
    "user": "postgres",
    "password": "",
    "database": "osiris_bench",
}
ORDERS_DDL = (
    "CREATE TABLE {t} (id INT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(20), "
    "amount DECIMAL(12,2), created_at DATETIME, email VARCHAR(120), note VARCHAR(200), paid BOOL)"
)
PG_DDL = (
    "CREATE TABLE {t} (id int PRIMARY KEY, customer_id int NOT NULL, status varchar(20), "
    "amount numeric(12,2), created_at timestamp, email varchar(120), note varchar(200), paid boolean)"
)
SEED = (
    "INSERT INTO {t} SELECT seq, seq % 50000, ELT(1 + seq % 4, 'new','paid','shipped','cancelled'), "
    "(seq % 100000) / 100 + 0.99, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND, "
    "CONCAT('user', seq % 50000, '@example.com'), CONCAT('note for order ', seq), seq % 2 "
    "FROM seq_1_to_{n}"
)


def sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


def mysql(sql: str) -> None:
    sh(f'mariadb -h127.0.0.1 -uroot -e "{sql}"')


def psql(sql: str, db: str = "osiris_bench") -> None:
    sh(f'psql -q -h127.0.0.1 -Upostgres -d {db} -c "{sql}"')


def prepare(rows: int) -> str:
    """Source table orders_<rows> in MariaDB (created once) and the bench database in PG."""
    table = f"orders_{rows}"
    mysql("CREATE DATABASE IF NOT EXISTS osiris_bench CHARACTER SET utf8mb4")
    out = subprocess.run(
        [
            "mariadb",
            "-h127.0.0.1",
            "-uroot",
            "-N",
            "-e",
            f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='osiris_bench' AND TABLE_NAME='{table}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if out.stdout.strip() == "0":
        mysql(f"USE osiris_bench; {ORDERS_DDL.format(t=table)}; {SEED.format(t=table, n=rows)}")
    subprocess.run(
        [
            "psql",
            "-q",
            "-h127.0.0.1",
            "-Upostgres",
            "-d",
            "postgres",
            "-c",
            "CREATE DATABASE osiris_bench",
        ],
        capture_output=True,
        check=False,
    )
    return table


def timed(
    cmd: list[str] | str, *, shell: bool = False, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """(seconds, peak RSS MiB of the process tree's largest member) for one command."""
    started = time.perf_counter()
    if shell:  # a pipeline: wait4 on the shell reports the largest child's peak
        proc = subprocess.Popen(
            ["bash", "-c", f"set -o pipefail; {cmd}"], stdout=subprocess.DEVNULL
        )
    else:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed ({status}): {cmd}")
    return elapsed, usage.ru_maxrss // 1024


def raw_pipe(table: str) -> tuple[float, int]:
    psql(f"DROP TABLE IF EXISTS raw_{table}; {PG_DDL.format(t='raw_' + table)}")
    cmd = (
        f"mariadb -h127.0.0.1 -uroot --quick --batch --skip-column-names -e 'SELECT * FROM {table}' osiris_bench"
        f" | psql -q -h127.0.0.1 -Upostgres -d osiris_bench -c '\\copy raw_{table} FROM STDIN'"
    )
    return timed(cmd, shell=True)


def oml_run(table: str, python: str, project: Path) -> tuple[float, int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from runtime_helpers import step, write_manifest

    psql(f"DROP TABLE IF EXISTS oml_{table}")
    (project / "osiris_connections.yaml").write_text(
        json.dumps({"connections": {"mysql": {"bench": MYSQL}, "postgres": {"bench": PG}}}),
        encoding="utf-8",
    )
    manifest = write_manifest(
        project / "build",
        [
            step(
                "extract",
                "mysql.extractor",
                "extractor",
                {"table": table},
                connection="@mysql.bench",
            ),
            step(
                "load",
                "postgres.writer",
                "writer",
                {"table": f"oml_{table}", "write_mode": "replace", "primary_key": ["id"]},
                inputs={"df": "extract"},
                connection="@postgres.bench",
            ),
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [python, "-m", "runtime.cli", str(manifest), "--project-dir", str(project)]
    return timed(cmd, env=env)


def in_process(case: str, table: str, python: str) -> tuple[float, int]:
    """A driver-only case in a fresh interpreter (see --case)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return timed([python, __file__, "--case", case, "--table", table], env=env)


def run_case(case: str, table: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import pyarrow.parquet as pq
    from drivers_ctx import make_ctx

    from runtime.drivers.mysql import MySQLExtractor
    from runtime.drivers.postgres import PostgresExtractor, PostgresWriter

    tmp = Path(tempfile.mkdtemp(prefix="osiris-bench-"))
    if case == "stream":  # extract -> write straight through, no run database
        reader = MySQLExtractor().extract(make_ctx(tmp, "e", {"table": table}, MYSQL))
        cfg = {"table": f"stream_{table}", "write_mode": "replace", "primary_key": ["id"]}
        PostgresWriter().write(make_ctx(tmp, "w", cfg, PG), reader)
    elif case == "parquet":
        reader = MySQLExtractor().extract(make_ctx(tmp, "e", {"table": table}, MYSQL))
        with pq.ParquetWriter(tmp / "orders.parquet", reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    elif case == "pg-duckdb":
        import duckdb

        reader = PostgresExtractor().extract(make_ctx(tmp, "e", {"table": f"raw_{table}"}, PG))
        con = duckdb.connect(str(tmp / "out.duckdb"), config={"memory_limit": "256MB"})
        con.register("incoming", reader)
        con.execute("CREATE TABLE orders AS SELECT * FROM incoming")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 5_000_000])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for oml-run / drivers"
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.table)
        return
    print(f"python: {args.python}")
    results: list[dict[str, Any]] = []
    for rows in args.rows:
        table = prepare(rows)
        with tempfile.TemporaryDirectory() as project:
            raw_s, raw_rss = raw_pipe(table)
            oml_s, oml_rss = oml_run(table, args.python, Path(project))
        stream_s, stream_rss = in_process("stream", table, args.python)
        pq_s, pq_rss = in_process("parquet", table, args.python)
        duck_s, duck_rss = in_process("pg-duckdb", table, args.python)
        for name, secs, rss in [
            ("raw mariadb | psql \\copy", raw_s, raw_rss),
            ("oml-run MariaDB -> PostgreSQL", oml_s, oml_rss),
            ("drivers streamed MariaDB -> PG", stream_s, stream_rss),
            ("drivers MariaDB -> Parquet", pq_s, pq_rss),
            ("drivers PostgreSQL -> DuckDB", duck_s, duck_rss),
        ]:
            results.append(
                {
                    "rows": rows,
                    "case": name,
                    "seconds": round(secs, 2),
                    "rows_per_s": round(rows / secs),
                    "ratio_to_raw": round(raw_s / secs, 2),
                    "peak_rss_mib": rss,
                }
            )
            print(
                f"{rows:>9,} {name:34s} {secs:7.2f}s {rows / secs:>11,.0f} rows/s "
                f"ratio {raw_s / secs:4.2f}  peak RSS {rss} MiB",
                flush=True,
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
