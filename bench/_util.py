"""Shared helpers for the benchmark scripts: timing, realistic generated pipelines, reporting.

Benchmarks print numbers (p50 over repeats) and ratios against baselines measured in the same
run; they are scripts, not timed tests.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The orders table the data-moving benches load: MariaDB DDL, PostgreSQL DDL, and a MariaDB seed
# of n generated rows (seq_1_to_n, the SEQUENCE engine).
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


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def time_calls(fn: Callable[[], Any], *, repeat: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def time_process(
    cmd: Sequence[str],
    *,
    repeat: int,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    warmup: int = 1,
    expect: int | None = 0,
) -> list[float]:
    """Wall time of whole processes (stdout/stderr discarded)."""
    full_env = dict(os.environ if env is None else env)
    samples = []
    for i in range(warmup + repeat):
        start = time.perf_counter()
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if expect is not None and proc.returncode != expect:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}"
            )
        if i >= warmup:
            samples.append(elapsed)
    return samples


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def verdict(value: float, target: float) -> str:
    return "ok  " if value <= target else "MISS"


def row(label: str, value: float, target: float | None = None, note: str = "") -> None:
    tgt = f"target ≤ {target * 1000:.0f} ms  {verdict(value, target)}" if target else ""
    print(f"  {label:<46} {ms(value)}   {tgt} {note}".rstrip())


# -- realistic generated pipelines --------------------------------------------------------------

_EXTRACTORS = [
    (
        "mysql.extractor",
        'connection: "@mysql.shop"\n      table: orders_{n}\n'
        "      columns: [id, customer_id, amount, created_at]\n"
        "      where: \"created_at >= '${{params.since}}'\"",
    ),
    (
        "postgres.extractor",
        'connection: "@postgres.crm"\n      schema: sales\n      table: accounts_{n}',
    ),
    (
        "filesystem.csv_extractor",
        'path: "data/part-{n}.csv"\n      delimiter: ";"\n'
        '      column_types: {{id: BIGINT, amount: "DECIMAL(12,2)"}}',
    ),
    ("filesystem.parquet_extractor", 'path: "lake/events/{n}/*.parquet"\n      batch_size: 100000'),
    (
        "supabase.extractor",
        'connection: "@supabase.main"\n      query: "SELECT id, plan, amount FROM plans_{n} WHERE active"',
    ),
    (
        "duckdb.extractor",
        "path: data/warehouse.duckdb\n      table: dim.users_{n}\n      limit: 1000",
    ),
]
_WRITERS = [
    (
        "postgres.writer",
        'connection: "@postgres.dwh"\n      table: mart_{n}\n      write_mode: upsert\n'
        "      primary_key: [id]",
    ),
    ("filesystem.parquet_writer", 'path: "lake/marts/{n}"\n      partition_by: [day]'),
    (
        "duckdb.writer",
        'connection: "@duckdb.lake"\n      table: mart_{n}\n      write_mode: replace',
    ),
    ("filesystem.csv_writer", 'path: "out/mart-{n}.csv.gz"\n      compression: gzip'),
    (
        "mysql.writer",
        'connection: "@mysql.dwh"\n      table: mart_{n}\n      write_mode: append\n'
        "      batch_size: ${{params.batch}}",
    ),
    ("supabase.writer", 'connection: "@supabase.main"\n      table: mart_{n}'),
]


def generate_pipeline(steps: int) -> str:
    """A pipeline of exactly `steps` steps: extract -> transform -> write groups over all 13
    components, every fourth transform also joining the previous group's output (fan-in), and
    params used in configs and queries."""
    out = [
        f"# generated benchmark pipeline with {steps} steps",
        'oml_version: "0.1.0"',
        f"name: bench-{steps}-steps",
        "description: Generated pipeline mixing every component.",
        "params:",
        '  since: {type: string, default: "2024-01-01"}',
        "  batch: {type: integer, default: 20000}",
        "  min_amount: {type: number, default: 10}",
        "profiles:",
        "  prod:",
        "    params: {batch: 50000}",
        "steps:",
    ]
    count = 0
    group = 0
    previous: str | None = None

    def add(lines: list[str]) -> None:
        nonlocal count
        out.extend(lines)
        count += 1

    while count < steps:
        n = group
        component, config = _EXTRACTORS[n % len(_EXTRACTORS)]
        ext = f"extract-{n}"
        add(
            [
                f"  - id: {ext}",
                f"    component: {component}",
                "    mode: read",
                "    config:",
                "      " + config.format(n=n),
            ]
        )
        if count >= steps:
            break
        proc = f"transform-{n}"
        needs = [ext]
        query = (
            f'SELECT *, amount * 1.2 AS gross FROM "{ext}" WHERE amount >= ${{params.min_amount}}'
        )
        if previous is not None and n % 4 == 3:
            needs.append(previous)
            query = (
                f'SELECT a.*, b.gross AS prev_gross FROM "{ext}" a '
                f'LEFT JOIN "{previous}" b ON b.id = a.id'
            )
        add(
            [
                f"  - id: {proc}",
                "    component: duckdb.processor",
                "    mode: transform",
                f"    needs: [{', '.join(needs)}]",
                "    config:",
                f"      query: {_dq(query)}",
            ]
        )
        previous = proc
        if count >= steps:
            break
        component, config = _WRITERS[n % len(_WRITERS)]
        edge = f'inputs: {{df: "${{{proc}.df}}"}}' if n % 2 else f"needs: [{proc}]"
        add(
            [
                f"  - id: load-{n}",
                f"    component: {component}",
                "    mode: write",
                f"    {edge}",
                "    config:",
                "      " + config.format(n=n),
            ]
        )
        group += 1
    return "\n".join(out) + "\n"


def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def omlc_cmd() -> list[str]:
    script = BIN / "omlc"
    if script.exists():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from osiris.compiler.cli import omlc_main; sys.exit(omlc_main())",
    ]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_PARAM_")}
