"""Moves an 8-column orders table MariaDB -> PostgreSQL through oml-run against the raw pipe.

Usage: python bench/move_bench.py [--rows N ...] [--repeat K]   (default 1M and 5M rows, 3 runs)
Each run is its own process: the raw `mariadb --quick --batch | psql \\copy` pipe (which also
loads raw_<table>, the PostgreSQL source of the last case), then oml-run MariaDB -> PostgreSQL
(replace with a primary key), MariaDB -> Parquet and PostgreSQL -> DuckDB, interleaved. Prints
the median seconds, rows/s, the ratio raw-pipe-time / case-time (goal >= 0.8 for MariaDB ->
PostgreSQL) and peak RSS (median and max of the runs; goal <= 400 MiB, flat from 1M to 5M).
Needs the local MariaDB and PostgreSQL and the mariadb/psql clients.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ORDERS_DDL, PG_DDL, SEED

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


def _pipeline(table: str, case: str) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from runtime_helpers import step

    if case == "pg-duckdb":
        return [
            step(
                "extract",
                "postgres.extractor",
                "extractor",
                {"table": f"raw_{table}"},
                connection="@postgres.bench",
            ),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"path": "out.duckdb", "table": "orders", "write_mode": "replace"},
                needs=["extract"],
            ),
        ]
    extract = step(
        "extract", "mysql.extractor", "extractor", {"table": table}, connection="@mysql.bench"
    )
    if case == "parquet":
        writer = step(
            "load",
            "filesystem.parquet_writer",
            "writer",
            {"path": "orders.parquet"},
            needs=["extract"],
        )
    else:
        writer = step(
            "load",
            "postgres.writer",
            "writer",
            {"table": f"oml_{table}", "write_mode": "replace", "primary_key": ["id"]},
            needs=["extract"],
            connection="@postgres.bench",
        )
    return [extract, writer]


def oml_run(table: str, case: str, python: str, project: Path) -> tuple[float, int]:
    """`oml-run` of a two-step pipeline (case: pg, parquet or pg-duckdb) in its own process."""
    sys.path.insert(0, str(ROOT / "tests"))
    from runtime_helpers import write_manifest

    if case == "pg":
        psql(f"DROP TABLE IF EXISTS oml_{table}")
    (project / "osiris_connections.yaml").write_text(
        json.dumps({"connections": {"mysql": {"bench": MYSQL}, "postgres": {"bench": PG}}}),
        encoding="utf-8",
    )
    manifest = write_manifest(project / f"build-{case}", _pipeline(table, case))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    cmd = [python, "-m", "osiris.runtime.cli", str(manifest), "--project-dir", str(project)]
    cmd += ["--no-keep-intermediate", "--format", "json"]
    return timed(cmd, env=env)


CASES = (
    ("raw mariadb | psql \\copy", None),
    ("oml-run MariaDB -> PostgreSQL", "pg"),
    ("oml-run MariaDB -> Parquet", "parquet"),
    ("oml-run PostgreSQL -> DuckDB", "pg-duckdb"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for oml-run / drivers"
    )
    args = parser.parse_args()
    print(f"python: {args.python}; median of {args.repeat} runs, cases interleaved")
    results: list[dict[str, Any]] = []
    for rows in args.rows:
        table = prepare(rows)
        runs: dict[str, list[tuple[float, int]]] = {name: [] for name, _ in CASES}
        with tempfile.TemporaryDirectory() as project:
            for _ in range(args.repeat):
                for name, case in CASES:
                    if case is None:
                        runs[name].append(raw_pipe(table))
                    else:
                        runs[name].append(oml_run(table, case, args.python, Path(project)))
        raw_s = statistics.median(s for s, _ in runs[CASES[0][0]])
        for name, _ in CASES:
            secs = statistics.median(s for s, _ in runs[name])
            rss = max(r for _, r in runs[name])
            rss_median = round(statistics.median(r for _, r in runs[name]))
            results.append(
                {
                    "rows": rows,
                    "case": name,
                    "seconds": round(secs, 2),
                    "rows_per_s": round(rows / secs),
                    "ratio_to_raw": round(raw_s / secs, 2),
                    "peak_rss_mib": rss,
                    "median_peak_rss_mib": rss_median,
                }
            )
            print(
                f"{rows:>9,} {name:32s} {secs:7.2f}s {rows / secs:>11,.0f} rows/s "
                f"ratio {raw_s / secs:4.2f}  peak RSS {rss_median} MiB (median), {rss} (max)",
                flush=True,
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
