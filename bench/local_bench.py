"""Benchmark: oml-run (CSV -> duckdb.processor group by -> Parquet) against the same COPY in plain DuckDB.

Usage: python bench/local_bench.py [--repeat N] [--materialize auto|all] [ROWS ...]
(default: 1000000 5000000, 3 repeats, materialize auto)
Prints rows/s, the ratio plain-DuckDB-time / oml-run-time (goal >= 0.7) and the peak RSS of the
oml-run process (goal <= 300 MiB, flat from 1M to 5M rows). Each measured command runs as its own
child process and its peak RSS comes from os.wait4, so nothing here needs psutil. Every figure is
the median of the repeats (oml-run and plain DuckDB alternate, so a busy machine hits both).
--materialize all runs oml-run with OSIRIS_MATERIALIZE=all (every step output a table in
run.duckdb) instead of the default shortcuts (see docs/runtime.md).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from osiris.runtime.contract.manifest import cfg_bytes, manifest_digest, sha256_tag

ROOT = Path(__file__).resolve().parent.parent
GROUP_BY = (
    "SELECT customer_id, product, count(*) AS orders, sum(quantity * unit_price) AS revenue "
    "FROM {source} GROUP BY customer_id, product"
)


@dataclass(frozen=True, slots=True)
class Measurement:
    seconds: float
    peak_rss_mib: float
    exit_code: int
    output: str


def generate_orders(path: Path, rows: int) -> None:
    """A deterministic orders CSV of the given size, written by DuckDB."""
    duckdb.sql(
        f"""COPY (
            SELECT i AS order_id,
                   'C' || lpad(((i * 7919) % 50000)::VARCHAR, 5, '0') AS customer_id,
                   DATE '2024-01-01' + (i % 365)::INTEGER AS order_date,
                   ['notebook', 'pen', 'ink', 'lamp', 'paper', 'stapler', 'backpack'][1 + i % 7] AS product,
                   1 + i % 9 AS quantity,
                   round(((i * 31) % 10000) / 100.0, 2) AS unit_price,
                   ['paid', 'shipped', 'refunded'][1 + i % 3] AS status
            FROM range({rows}) t(i)
        ) TO '{path}' (HEADER)"""
    )


def write_manifest(directory: Path) -> Path:
    """manifest.yaml + cfg/ for extract -> group by -> parquet, built with the runtime contract."""
    steps = [
        ("orders", "filesystem.csv_extractor", "extractor", {"path": "orders.csv"}, []),
        (
            "totals",
            "duckdb.processor",
            "processor",
            {"query": GROUP_BY.format(source="orders")},
            ["orders"],
        ),
        (
            "write",
            "filesystem.parquet_writer",
            "writer",
            {"path": "out/totals.parquet"},
            ["totals"],
        ),
    ]
    (directory / "cfg").mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for step_id, driver, role, config, needs in steps:
        data = cfg_bytes(config)
        (directory / "cfg" / f"{step_id}.json").write_bytes(data)
        entries.append(
            {
                "id": step_id,
                "component": driver,
                "component_version": "0.1.0",
                "driver": driver,
                "mode": {"extractor": "read", "processor": "transform", "writer": "write"}[role],
                "role": role,
                "needs": needs,
                "inputs": {},
                "connection": None,
                "cfg": f"cfg/{step_id}.json",
                "cfg_sha256": sha256_tag(data),
            }
        )
    tag = sha256_tag(b"bench")
    manifest: dict[str, Any] = {
        "manifest_version": "0.1.0",
        "pipeline": {"name": "bench-orders", "oml_version": "0.1.0"},
        "toolchain": {"name": "osiris-bench", "version": "0.1.0"},
        "params": {},
        "fingerprints": {k: tag for k in ("oml", "specs", "params", "toolchain", "manifest")},
        "steps": entries,
    }
    manifest["fingerprints"]["manifest"] = manifest_digest(manifest)
    path = directory / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=True), encoding="utf-8")
    return path


# Runs argv[2:] and writes its peak RSS (KiB) and wall time (s) to the file argv[1]. Linux carries the peak RSS of
# the process that forks into the child's ru_maxrss (exec keeps the old mm's high-water mark), so
# a child started straight from this benchmark, which has just run DuckDB in process, would
# report at least this process's peak. A small launcher in between keeps the figure honest.
_LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(f"{usage.ru_maxrss} {time.perf_counter() - started}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> Measurement:
    """Wall time and peak RSS of one child process (started through a small launcher)."""
    with tempfile.NamedTemporaryFile(prefix="osiris-rss-", delete=False) as handle:
        rss_file = Path(handle.name)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(rss_file), *command],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            check=False,
        )
        kib, seconds = (rss_file.read_text().split() or ["0", "0"])[:2]
    finally:
        rss_file.unlink(missing_ok=True)
    output = proc.stdout.decode("utf-8", "replace")
    return Measurement(float(seconds), int(kib) / 1024, proc.returncode, output)


def plain_duckdb_in_process(project: Path) -> float:
    started = time.perf_counter()
    con = duckdb.connect()
    source = f"read_csv('{project / 'orders.csv'}')"
    con.execute(
        f"COPY ({GROUP_BY.format(source=source)}) TO '{project / 'direct.parquet'}' (FORMAT parquet)"
    )
    con.close()
    return time.perf_counter() - started


def plain_duckdb_child(project: Path) -> Measurement:
    source = f"read_csv('{project / 'orders.csv'}')"
    sql = f"COPY ({GROUP_BY.format(source=source)}) TO '{project / 'direct2.parquet'}' (FORMAT parquet)"
    return measure([sys.executable, "-c", f"import duckdb; duckdb.sql({sql!r})"], project)


def bench_once(project: Path, manifest: Path, rows: int, env: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, "-m", "osiris.runtime.cli", str(manifest), "--format", "json"]
    run = measure(command, project, env)
    if run.exit_code != 0:
        raise SystemExit(f"oml-run failed (exit {run.exit_code}):\n{run.output}")
    summary = json.loads(run.output.strip().splitlines()[-1])
    lean = measure([*command, "--no-keep-intermediate"], project, env)
    steps = {s["id"]: s["duration_ms"] for s in summary["steps"]}
    direct = plain_duckdb_in_process(project)
    child = plain_duckdb_child(project)
    return {
        "rows": rows,
        "csv_mib": (project / "orders.csv").stat().st_size / 2**20,
        "osiris_s": run.seconds,
        "osiris_rss": run.peak_rss_mib,
        "no_keep_s": lean.seconds,
        "no_keep_rss": lean.peak_rss_mib,
        "direct_s": direct,
        "direct_child_s": child.seconds,
        "direct_rss": child.peak_rss_mib,
        "extract_ms": steps["orders"],
        "process_ms": steps["totals"],
        "write_ms": steps["write"],
        "ratio": direct / run.seconds,
        "ratio_child": child.seconds / run.seconds,
        "ratio_no_keep": direct / lean.seconds,
    }


def bench(rows: int, *, repeat: int = 3, materialize: str = "auto") -> dict[str, float]:
    """Median of each figure over `repeat` runs (ratios are medians of per-run ratios)."""
    env = {"OSIRIS_MATERIALIZE": materialize}
    with tempfile.TemporaryDirectory(prefix="osiris-bench-") as tmp:
        project = Path(tmp)
        generate_orders(project / "orders.csv", rows)
        manifest = write_manifest(project / "build")
        runs = [bench_once(project, manifest, rows, env) for _ in range(max(1, repeat))]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="local_bench.py")
    parser.add_argument("rows", nargs="*", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--materialize", choices=["auto", "all"], default="auto")
    args = parser.parse_args(argv)
    sizes = args.rows or [1_000_000, 5_000_000]
    print(f"materialize={args.materialize}, median of {args.repeat} runs")
    print(
        f"{'rows':>10} {'csv MiB':>8} {'oml-run s':>9} {'rows/s':>11} {'peak RSS':>9} "
        f"{'duckdb s':>8} {'child s':>7} {'RSS':>6} {'ratio':>6} {'ratio*':>6}  steps ms (e/p/w)  "
        "--no-keep-intermediate: s, RSS, ratio"
    )
    for rows in sizes:
        r = bench(rows, repeat=args.repeat, materialize=args.materialize)
        print(
            f"{rows:>10,} {r['csv_mib']:>8.1f} {r['osiris_s']:>9.2f} {rows / r['osiris_s']:>11,.0f} "
            f"{r['osiris_rss']:>6.0f} MiB {r['direct_s']:>8.2f} {r['direct_child_s']:>7.2f} "
            f"{r['direct_rss']:>4.0f}Mi {r['ratio']:>6.2f} "
            f"{r['ratio_child']:>6.2f}  "
            f"{r['extract_ms']:.0f}/{r['process_ms']:.0f}/{r['write_ms']:.0f}  "
            f"{r['no_keep_s']:>6.2f}s {r['no_keep_rss']:>4.0f}Mi {r['ratio_no_keep']:>5.2f}",
            flush=True,
        )
    print(
        "ratio = plain DuckDB in-process time / oml-run wall time; ratio* counts the plain DuckDB "
        "run as a child process too (interpreter start-up on both sides). Goals: ratio >= 0.7, "
        "peak RSS <= 300 MiB and flat."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
