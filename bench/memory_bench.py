"""Peak memory of PostgreSQL -> DuckDB (oml-run) at 1M and 5M rows, against baselines in the same run.

Usage: python bench/memory_bench.py [--rows N ...] [--repeat K] [--before REF]
(default 1M and 5M rows, 3 runs). Every case is its own process, cases interleaved; each reports
the process's peak RSS (wait4), wall seconds, rows/s and CPU seconds (user + system: steadier
than wall time on a shared machine).

- `imports`: Python with the modules a PG -> DuckDB run loads (duckdb, pyarrow, psycopg, runtime);
- `extract only`: imports + the PostgreSQL extractor drained into nothing (the source's floor);
- `oml-run, 256MB`: the pipeline with the DuckDB target at the run database's memory_limit
  (OSIRIS_DUCKDB_MEMORY_LIMIT=256MB, the writer's setting before the memory work);
- `oml-run`: the pipeline as shipped;
- `oml-run REF` (with --before REF, e.g. a commit before the memory work): the same pipeline on
  that git revision's runtime (`git archive REF runtime`, put first on PYTHONPATH).
Prints the median (and max) peak RSS per case, the ratio 5M/1M of each case's peak (goal for
oml-run: <= 300 MiB and flat) and oml-run against the baselines. Needs the local PostgreSQL; the
source tables pg_orders_<rows> in database osiris_bench are generated once (generate_series).
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

ROOT = Path(__file__).resolve().parent.parent
PG = {
    "host": "127.0.0.1",
    "port": 5432,
    "user": "postgres",
    "password": "",
    "database": "osiris_bench",
}
PG_DDL = (
    "CREATE TABLE {t} (id int PRIMARY KEY, customer_id int NOT NULL, status varchar(20), "
    "amount numeric(12,2), created_at timestamp, email varchar(120), note varchar(200), paid boolean)"
)
SEED = (
    "INSERT INTO {t} SELECT s, s % 50000, (ARRAY['new','paid','shipped','cancelled'])[1 + s % 4], "
    "(s % 100000) / 100.0 + 0.99, TIMESTAMP '2024-01-01' + s * INTERVAL '1 second', "
    "'user' || (s % 50000) || '@example.com', 'note for order ' || s, s % 2 = 1 "
    "FROM generate_series(1, {n}) AS s"
)
IMPORTS = "import duckdb, pyarrow.csv, psycopg, osiris.runtime.cli, osiris.runtime.drivers.postgres"
WIDE_TARGET = {"OSIRIS_DUCKDB_MEMORY_LIMIT": "256MB"}


def psql(sql: str, db: str = "osiris_bench") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-q", "-X", "-h127.0.0.1", "-Upostgres", "-d", db, "-tAc", sql],
        capture_output=True,
        text=True,
        check=False,
    )


def prepare(rows: int) -> str:
    """The source table pg_orders_<rows> (created once)."""
    table = f"pg_orders_{rows}"
    psql("CREATE DATABASE osiris_bench", db="postgres")
    if psql(f"SELECT to_regclass('{table}') IS NOT NULL").stdout.strip() != "t":
        done = psql(f"{PG_DDL.format(t=table)}; {SEED.format(t=table, n=rows)}; ANALYZE {table}")
        if done.returncode != 0:
            raise SystemExit(f"cannot create {table}: {done.stderr.strip()}")
    return table


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB) of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed ({status}): {cmd}\n{stderr.decode()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def extract_only(table: str, python: str, env: dict[str, str]) -> tuple[float, float, int]:
    code = f"""
import sys, types
{IMPORTS}
from osiris.runtime.drivers.postgres import PostgresExtractor
ctx = types.SimpleNamespace(step_id="extract", config={{"table": {table!r}}},
    connection={PG!r}, batch_size=50_000, progress=lambda rows: None, log=lambda m: None)
rows = sum(b.num_rows for b in PostgresExtractor().extract(ctx))
assert rows == int(sys.argv[1]), rows
"""
    return measured([python, "-c", code, table.rsplit("_", 1)[1]], env)


def oml_run(
    table: str, python: str, project: Path, env: dict[str, str]
) -> tuple[float, float, int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from runtime_helpers import step, write_manifest

    (project / "osiris_connections.yaml").write_text(
        json.dumps({"connections": {"postgres": {"bench": PG}}}), encoding="utf-8"
    )
    steps = [
        step(
            "extract",
            "postgres.extractor",
            "extractor",
            {"table": table},
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
    manifest = write_manifest(project / "build", steps)
    (project / "out.duckdb").unlink(missing_ok=True)
    args = [str(manifest), "--project-dir", str(project), "--no-keep-intermediate"]
    result = measured([python, "-m", "osiris.runtime.cli", *args], env)
    _check_rows(project / "out.duckdb", int(table.rsplit("_", 1)[1]), python)
    return result


def _check_rows(path: Path, rows: int, python: str) -> None:
    code = "import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True).execute('SELECT count(*) FROM orders').fetchone()[0])"
    found = subprocess.run(
        [python, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    if int(found.stdout) != rows:
        raise SystemExit(f"{path}: {found.stdout.strip()} rows, expected {rows}")


def checkout(ref: str, into: Path) -> dict[str, str]:
    """The runtime of git revision `ref` under into/osiris/runtime; the PYTHONPATH that runs it."""
    (into / "osiris").mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "runtime"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into / "osiris")], input=archive.stdout, check=True)
    return {"PYTHONPATH": str(into)}


CASES = ("imports", "extract only", "oml-run, 256MB", "oml-run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for oml-run")
    parser.add_argument("--before", help="git revision whose runtime is measured as well")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    cases = list(CASES)
    before_env: dict[str, str] = {}
    before = tempfile.TemporaryDirectory(prefix="osiris-memory-bench-before-")
    if args.before:
        before_env = checkout(args.before, Path(before.name))
        cases.insert(-1, f"oml-run {args.before}")
    print(f"python: {args.python}; median of {args.repeat} runs, cases interleaved", flush=True)
    results: list[dict[str, Any]] = []
    peaks: dict[tuple[str, int], float] = {}
    for rows in args.rows:
        table = prepare(rows)
        runs: dict[str, list[tuple[float, float, int]]] = {case: [] for case in cases}
        with tempfile.TemporaryDirectory(prefix="osiris-memory-bench-") as tmp:
            project = Path(tmp)
            for _ in range(args.repeat):
                for case in cases:
                    if case == "imports":
                        run = measured([args.python, "-c", IMPORTS], env)
                    elif case == "extract only":
                        run = extract_only(table, args.python, env)
                    elif case == "oml-run, 256MB":
                        run = oml_run(table, args.python, project, env | WIDE_TARGET)
                    elif case == "oml-run":
                        run = oml_run(table, args.python, project, env)
                    else:
                        run = oml_run(table, args.python, project, env | before_env)
                    runs[case].append(run)
        for case in cases:
            secs = statistics.median(r[0] for r in runs[case])
            cpu = statistics.median(r[1] for r in runs[case])
            rss = statistics.median(r[2] for r in runs[case])
            peaks[case, rows] = rss
            results.append(
                {
                    "rows": rows,
                    "case": case,
                    "seconds": round(secs, 2),
                    "cpu_seconds": round(cpu, 2),
                    "rows_per_s": round(rows / secs),
                    "median_peak_rss_mib": round(rss),
                    "max_peak_rss_mib": max(r[2] for r in runs[case]),
                }
            )
            rate = f"{rows / secs:>11,.0f} rows/s" if case != "imports" else " " * 18
            print(
                f"{rows:>9,} {case:22s} {secs:7.2f}s {rate}  cpu {cpu:6.2f}s  "
                f"peak RSS {rss:4.0f} MiB (median), {max(r[2] for r in runs[case])} (max)",
                flush=True,
            )
    if len(args.rows) > 1:
        small, large = min(args.rows), max(args.rows)
        for case in cases:
            ratio = peaks[case, large] / peaks[case, small]
            print(f"peak RSS {large:,}/{small:,} rows, {case:22s}: {ratio:4.2f}")
    for rows in args.rows:
        for case in cases[2:-1]:
            ratio = peaks["oml-run", rows] / peaks[case, rows]
            print(f"peak RSS oml-run / {case} at {rows:,} rows: {ratio:4.2f}")
    before.cleanup()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
