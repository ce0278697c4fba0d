"""Partitioned MariaDB -> PostgreSQL (or Parquet): local engine and a 2-worker Dask cluster.

Usage: python bench/dask_bench.py [--rows N] [--repeat K] [--partitions 1 2 4]
[--target postgres|parquet|dataset] (default 5M rows into PostgreSQL, 1 run per case). Each case
is its own `oml-run` process (replace with a primary key): unpartitioned, then
`partition: {column: id, count: P}` on the local engine (threads) and with `--engine dask
--scheduler ...` against a `dask scheduler` + two `dask worker` processes started by this script
on 127.0.0.1 (stopped at the end). The baseline, measured in the same run, is the raw
`mariadb --quick --batch | psql \\copy` pipe for PostgreSQL, and the unpartitioned run (one
stream, in the client) for the Parquet targets (one file, or layout dataset). --via-processor
adds an unpartitioned dask case and a `SELECT *` duckdb.processor between the two steps, local
and dask (where each step is a task of its own and the rows travel as Arrow tables between
processes). Prints seconds,
rows/s and the ratio baseline-time / case-time. Needs the local MariaDB/PostgreSQL, the mariadb/psql
clients and the `dask` extra. Uses the databases osiris_bench_dask (`--database NAME`), dropped
at the end (`--keep` keeps them, and the generated source table, for the next run).
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
BIN = Path(sys.executable).parent
DB = "osiris_bench_dask"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": DB}
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "", "database": DB}


def sh(cmd: str) -> None:
    subprocess.run(["bash", "-c", cmd], check=True, stdout=subprocess.DEVNULL)


def mysql(sql: str) -> None:
    sh(f'mariadb -h127.0.0.1 -uroot -e "{sql}"')


def psql(sql: str, db: str | None = None) -> None:
    sh(f'psql -q -h127.0.0.1 -Upostgres -d {db or DB} -c "{sql}"')


def use_database(name: str) -> None:
    """Run against database `name` on both servers (two benches at once must not share one:
    each drops its database at the end)."""
    global DB
    DB = MYSQL["database"] = PG["database"] = name


def prepare(rows: int) -> str:
    table = f"dask_orders_{rows}"
    mysql(f"CREATE DATABASE IF NOT EXISTS {DB} CHARACTER SET utf8mb4")
    exists = subprocess.run(
        ["mariadb", "-h127.0.0.1", "-uroot", "-N", "-e",
         f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='{DB}' "
         f"AND TABLE_NAME='{table}'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if exists == "0":
        mysql(f"USE {DB}; {ORDERS_DDL.format(t=table)}; {SEED.format(t=table, n=rows)}")
    subprocess.run(
        ["psql", "-q", "-h127.0.0.1", "-Upostgres", "-d", "postgres", "-c", f"CREATE DATABASE {DB}"],
        capture_output=True, check=False,
    )  # fmt: skip
    return table


def timed(cmd: list[str] | str, *, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    if isinstance(cmd, str):
        proc = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], stdout=subprocess.DEVNULL)
    else:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {cmd}\n{proc.stdout or ''}")
    return time.perf_counter() - started


def raw_pipe(table: str) -> float:
    psql(f"DROP TABLE IF EXISTS raw_{table}; {PG_DDL.format(t='raw_' + table)}")
    return timed(
        f"mariadb -h127.0.0.1 -uroot --quick --batch --skip-column-names -e 'SELECT * FROM {table}' {DB}"
        f" | psql -q -h127.0.0.1 -Upostgres -d {DB} -c '\\copy raw_{table} FROM STDIN'"
    )


def oml_run(
    table: str,
    partitions: int | None,
    engine: list[str],
    project: Path,
    target: str,
    via: bool = False,
) -> float:
    sys.path.insert(0, str(ROOT / "tests"))
    from runtime_helpers import step, write_manifest

    if target == "postgres":
        psql(f"DROP TABLE IF EXISTS oml_{table}")
    (project / "osiris_connections.yaml").write_text(
        json.dumps({"connections": {"mysql": {"bench": MYSQL}, "postgres": {"bench": PG}}}),
        encoding="utf-8",
    )
    partition = {"column": "id", "count": partitions} if partitions else None
    calc = step("calc", "duckdb.processor", "processor", {"query": "SELECT * FROM extract"},
                needs=["extract"])  # fmt: skip
    upstream = ["calc" if via else "extract"]
    load = (
        step("load", "postgres.writer", "writer",
             {"table": f"oml_{table}", "write_mode": "replace", "primary_key": ["id"]},
             needs=upstream, connection="@postgres.bench")
        if target == "postgres"
        else step("load", "filesystem.parquet_writer", "writer",
                  {"path": f"out/oml_{table}", "layout": "file" if target == "parquet" else target},
                  needs=upstream)
    )  # fmt: skip
    steps = [
        step("extract", "mysql.extractor", "extractor", {"table": table},
             connection="@mysql.bench", partition=partition),
        *([calc] if via else []),
        load,
    ]  # fmt: skip
    manifest = write_manifest(project / "build", steps)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    cmd = [sys.executable, "-m", "osiris.runtime.cli", str(manifest), "--project-dir"]
    cmd += [str(project), "--no-keep-intermediate", "--format", "json", *engine]
    return timed(cmd, env=env)


class Cluster:
    """`dask scheduler` + two single-threaded `dask worker` processes on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        file = folder / "scheduler.json"
        self.log = (folder / "cluster.log").open("wb")
        quiet = {"stdout": self.log, "stderr": subprocess.STDOUT}
        self.procs = [
            subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(file)], **quiet)  # type: ignore[call-overload]
        ]  # fmt: skip
        while not file.exists():
            time.sleep(0.2)
        for _ in range(2):
            self.procs.append(
                subprocess.Popen([str(BIN / "dask"), "worker", "--scheduler-file", str(file),
                                  "--nthreads", "1", "--no-dashboard"], **quiet)  # type: ignore[call-overload]
            )  # fmt: skip
        from distributed import Client

        with Client(scheduler_file=str(file), timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            self.address = client.scheduler.address

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=30)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median reported)")
    parser.add_argument("--partitions", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument(
        "--via-processor",
        action="store_true",
        help="also: a duckdb.processor (SELECT *) between extractor and writer, local and dask "
        "(on dask each step is a task: the rows cross between processes as Arrow tables)",
    )
    parser.add_argument("--target", choices=["postgres", "parquet", "dataset"], default="postgres")
    parser.add_argument("--database", default=DB, help=f"bench database on both servers ({DB})")
    args = parser.parse_args()
    use_database(args.database)
    table = prepare(args.rows)
    print(f"{args.rows:,} rows, {os.cpu_count()} CPUs, median of {args.repeat} run(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp))
        try:
            cases: list[tuple[str, Any]] = []
            if args.target == "postgres":
                cases.append(("raw mariadb | psql \\copy", None))
            cases.append(("local, no partition", (None, [])))
            cases += [(f"local, {p} partition(s)", (p, [])) for p in args.partitions]
            dask = ["--engine", "dask", "--scheduler", cluster.address]
            cases += [(f"dask 2 workers, {p} partition(s)", (p, dask)) for p in args.partitions]
            if args.via_processor:
                cases.append(("dask 2 workers, no partition", (None, dask)))
                cases.append(("local, processor between", (None, [], True)))
                cases.append(("dask 2 workers, processor between", (None, dask, True)))
            runs: dict[str, list[float]] = {name: [] for name, _ in cases}
            for _ in range(args.repeat):
                for name, case in cases:
                    if case is None:
                        runs[name].append(raw_pipe(table))
                    else:
                        project = Path(tmp) / "project"
                        project.mkdir(exist_ok=True)
                        runs[name].append(
                            oml_run(table, case[0], case[1], project, args.target, *case[2:])
                        )
        finally:
            cluster.stop()
            if not args.keep:
                mysql(f"DROP DATABASE IF EXISTS {DB}")
                psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", db="postgres")
    raw = statistics.median(runs[cases[0][0]])
    results = []
    for name, _ in cases:
        secs = statistics.median(runs[name])
        results.append({"case": name, "seconds": round(secs, 2),
                        "rows_per_s": round(args.rows / secs), "ratio_to_baseline": round(raw / secs, 2)})  # fmt: skip
        print(f"{name:36s} {secs:7.2f}s {args.rows / secs:>11,.0f} rows/s  ratio {raw / secs:4.2f}",
              flush=True)  # fmt: skip
    print(json.dumps({"rows": args.rows, "target": args.target, "baseline": cases[0][0],
                      "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
