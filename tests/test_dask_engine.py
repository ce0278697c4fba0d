"""`--engine dask`: partitions as tasks on a LocalCluster and on real `dask scheduler` / `dask
worker` processes, giving exactly the local engine's result; failures and Ctrl-C leave the target."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import read_events, run_steps, write_manifest
from test_partitions import (
    PQ_FAILING_WHERE,
    PQ_PARTITION,
    _connections,
    hidden,
    mysql_source,
    mysql_summary,
    mysql_tables,
    no_ledger,
    parquet_steps,
    parquet_summary,
    pg_connect,
    pg_summary,
    pg_tables,
    snapshot,
    two_steps,
)

pytest.importorskip("distributed")

from osiris.runtime.engines.partitions import EngineOptions

PARTITION = {"column": "id", "count": 4, "lower": 0, "upper": 2000}
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1 (random ports): yields
    the scheduler's address and the workers' addresses; stops them afterwards."""
    with dask_cluster(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster


@contextlib.contextmanager
def dask_cluster(
    folder: Path, environ: dict[str, str] | None = None, nthreads: int = 1
) -> Iterator[tuple[str, list[str]]]:
    """Start the scheduler and two workers of `nthreads` threads (nannies that restart a worker
    process that dies), with their files under folder and `environ` added to their environment."""
    from distributed import Client

    file = folder / "scheduler.json"
    log = (folder / "cluster.log").open("wb")
    common = ["--no-dashboard"]
    workdir = ["--local-directory", str(folder / "scratch")]
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(folder / "scratch"), **(environ or {})}
    procs = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(file),
                *common,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for name in ("w1", "w2"):
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "dask"),
                        "worker",
                        "--scheduler-file",
                        str(file),
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        str(nthreads),
                        "--name",
                        name,
                        *common,
                        *workdir,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        with Client(scheduler_file=str(file), timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
            workers = sorted(client.scheduler_info()["workers"])
        yield address, workers
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def oml_run(manifest: Path, project: Path, *args: str, **popen: Any) -> Any:
    command = [sys.executable, "-m", "osiris.runtime.cli", str(manifest), "--project-dir",
               str(project), "--format", "json", *args]  # fmt: skip
    return subprocess.Popen(
        command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def run_dir_of(project: Path) -> Path:
    (found,) = sorted((project / "runs").iterdir())
    return found


def test_local_cluster_equals_the_local_engine(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    local, _ = run_steps(
        tmp_path / "a", two_steps(PARTITION, table="dask_local"), connections=conns
    )
    assert local.status == "ok", local.error
    outcome, run_dir = run_steps(
        tmp_path / "b",
        two_steps(PARTITION),
        connections=conns,
        engine="dask",
        engine_options=EngineOptions(workers=2),
    )
    assert outcome.status == "ok", outcome.error
    assert pg_summary(pg_db, "dask_dst") == pg_summary(pg_db, "dask_local")
    assert run_dir is not None
    events = read_events(run_dir)
    assert next(e for e in events if e["event"] == "run_started")["engine"] == "dask"
    parts = [e for e in events if e["event"] == "partition_finished"]
    assert len(parts) == 4 and all(p["worker"].startswith("tcp://127.0.0.1:") for p in parts)
    assert sum(p["rows"] for p in parts) == 3000
    assert pg_tables(pg_db) == ["dask_dst", "dask_local"]


def test_scheduler_and_two_workers_mysql_to_postgres_and_back(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    address, workers = scheduler
    mysql_source(mysql_db)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    local, _ = run_steps(
        tmp_path / "a", two_steps(PARTITION, table="dask_local"), connections=conns
    )
    assert local.status == "ok", local.error
    manifest = write_manifest(tmp_path / "build-to-pg", two_steps(PARTITION))
    proc = oml_run(manifest, tmp_path, "--engine", "dask", "--scheduler", address)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "ok"
    assert pg_summary(pg_db, "dask_dst") == pg_summary(pg_db, "dask_local")
    parts = [e for e in read_events(run_dir_of(tmp_path)) if e["event"] == "partition_finished"]
    assert {p["worker"] for p in parts} <= set(workers) and len(parts) == 4
    assert pg_tables(pg_db) == ["dask_dst", "dask_local"]

    # PostgreSQL -> MariaDB, by a date column, against the local engine's result
    back = {"source": ("postgres.extractor", "@postgres.p"), "sink": ("mysql.writer", "@mysql.m")}
    by_date = {"column": "created", "count": 3}
    extract = {"table": "dask_local"}
    local, _ = run_steps(
        tmp_path / "b", two_steps(by_date, table="dask_back_local", extract=extract, **back),
        connections=conns,
    )  # fmt: skip
    assert local.status == "ok", local.error
    manifest = write_manifest(
        tmp_path / "build-to-my", two_steps(by_date, table="dask_back", extract=extract, **back)
    )
    (tmp_path / "c").mkdir()
    proc = oml_run(manifest, tmp_path / "c", "--engine", "dask", "--scheduler", address,
                   "--connections", str(conns))  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert mysql_summary(mysql_db, "dask_back") == mysql_summary(mysql_db, "dask_back_local")
    assert mysql_summary(mysql_db, "dask_back")[0] == 3000
    assert mysql_tables(mysql_db) == ["dask_back", "dask_back_local", "dask_src"]


def test_scheduler_and_two_workers_mysql_to_parquet(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Each partition writes its Parquet file on a worker; the client publishes one file, or
    the dataset directory of 4 files: both equal the local engine's result."""
    address, workers = scheduler
    mysql_source(mysql_db, table="pq_orders")
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    local, _ = run_steps(
        tmp_path / "local", parquet_steps(PQ_PARTITION, "local.parquet"), connections=conns
    )
    assert local.status == "ok", local.error
    expected = parquet_summary(tmp_path / "local" / "local.parquet")
    assert expected[0] == 3000
    lake = tmp_path / "lake"
    for layout, path, glob in (
        ("file", "lake/orders.parquet", ""),
        ("dataset", "lake/orders", "*.parquet"),
    ):
        steps = parquet_steps(PQ_PARTITION, path, layout=layout)  # relative to the project
        manifest = write_manifest(tmp_path / f"build-{layout}", steps)
        proc = oml_run(manifest, tmp_path, "--engine", "dask", "--scheduler", address)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        summary = json.loads(out)
        assert summary["status"] == "ok"
        assert parquet_summary(tmp_path / path / glob) == expected, layout
        events = read_events(tmp_path / "runs" / summary["run_id"])
        parts = [e for e in events if e["event"] == "partition_finished"]
        assert [p["partition"] for p in parts] == [0, 1, 2, 3]
        assert all(p["worker"] in workers and p["status"] == "ok" for p in parts), parts
        assert sum(p["rows"] for p in parts) == 3000
        assert hidden(lake) == []
    assert sorted(p.name for p in (lake / "orders").iterdir()) == [
        f"part-0000{i}.parquet" for i in range(4)
    ]
    # a partition failing on a worker: the dataset is left as it was, its staging dir removed
    before = snapshot(lake / "orders")
    steps = parquet_steps(
        PQ_PARTITION, "lake/orders", {"where": PQ_FAILING_WHERE}, layout="dataset"
    )
    manifest = write_manifest(tmp_path / "build-failing", steps)
    proc = oml_run(manifest, tmp_path, "--engine", "dask", "--scheduler", address)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 4, err
    assert "partition 3 of 4 failed" in json.loads(out)["error"]
    assert snapshot(lake / "orders") == before
    assert hidden(lake) == [] and no_ledger(tmp_path)


def test_a_failing_partition_on_the_cluster_leaves_the_target(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    address, _ = scheduler
    mysql_source(mysql_db)
    _connections(tmp_path, mysql_db, pg_db)
    with pg_connect(pg_db) as c:
        c.execute(
            "CREATE TABLE dask_dst (id int PRIMARY KEY, v int CHECK (v <> 4800), name text, "
            "amount numeric(12,2), created date)"
        )
        c.execute("INSERT INTO dask_dst VALUES (1, 1, 'before', 1.00, '2020-01-01')")
    before = pg_summary(pg_db, "dask_dst")
    manifest = write_manifest(tmp_path / "build", two_steps(PARTITION, write_mode="append"))
    proc = oml_run(manifest, tmp_path, "--engine", "dask", "--scheduler", address)
    out, err = proc.communicate(timeout=300)
    summary = json.loads(out)
    assert proc.returncode == 4, err
    assert "partition 4 of 4 failed" in summary["error"]
    assert pg_summary(pg_db, "dask_dst") == before
    assert pg_tables(pg_db) == ["dask_dst"]


def test_ctrl_c_cancels_the_tasks_and_leaves_the_target(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    address, _ = scheduler
    _connections(tmp_path, mysql_db, pg_db)
    with pg_connect(pg_db) as c:
        c.execute("CREATE TABLE dask_dst (id int PRIMARY KEY)")
        c.execute("INSERT INTO dask_dst VALUES (7)")
    slow = {
        "query": "SELECT i AS id FROM generate_series(1, 4000) i WHERE pg_sleep(0.005) IS NOT NULL"
    }
    steps = two_steps(
        {"column": "id", "count": 4, "lower": 1, "upper": 4000},
        source=("postgres.extractor", "@postgres.p"),
        extract=slow,
    )
    manifest = write_manifest(tmp_path / "build", steps)
    proc = oml_run(manifest, tmp_path, "--engine", "dask", "--scheduler", address)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = tmp_path / "runs"
        events = runs.exists() and any(
            '"step_started"' in p.read_text() for p in runs.glob("*/events.jsonl")
        )
        if events:
            break
        time.sleep(0.2)
    time.sleep(2)  # the partitions are running on the workers now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert json.loads(out)["status"] == "cancelled"
    with pg_connect(pg_db) as c:
        assert c.execute("SELECT array_agg(id) FROM dask_dst").fetchone() == ([7],)
    assert pg_tables(pg_db) == ["dask_dst"]


def test_engine_flags_are_checked(tmp_path: Path) -> None:
    from runtime_helpers import run_cli, step

    (tmp_path / "in.csv").write_text("a\n1\n", encoding="utf-8")
    manifest = write_manifest(
        tmp_path / "build",
        [
            step("src", "filesystem.csv_extractor", "extractor", {"path": "in.csv"}),
            step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
        ],
    )
    workers = run_cli([str(manifest), "--engine", "dask", "--workers", "0"], cwd=tmp_path)
    assert workers.returncode == 2 and "--workers must be at least 1" in workers.stderr
    local = run_cli([str(manifest), "--scheduler", "tcp://127.0.0.1:1"], cwd=tmp_path)
    assert local.returncode == 5, local.stderr
    assert "--scheduler and --workers apply to --engine dask only" in local.stdout + local.stderr
    nowhere = run_cli(
        [str(manifest), "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1", "--format", "json"],
        cwd=tmp_path,
    )
    assert nowhere.returncode == 5, nowhere.stderr
    assert (
        "cannot reach the Dask scheduler tcp://127.0.0.1:1" in json.loads(nowhere.stdout)["error"]
    )
    assert not (tmp_path / "out.csv").exists()


def test_an_unpartitioned_stream_runs_as_one_task(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db, rows=500)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    local, _ = run_steps(tmp_path / "a", two_steps(None, table="dask_local"), connections=conns)
    assert local.status == "ok", local.error
    outcome, run_dir = run_steps(
        tmp_path / "b",
        two_steps(None),
        connections=conns,
        engine="dask",
        engine_options=EngineOptions(workers=1),
        atomic=True,
    )
    assert outcome.status == "ok", outcome.error
    assert pg_summary(pg_db, "dask_dst") == pg_summary(pg_db, "dask_local")
    assert run_dir is not None
    (part,) = [e for e in read_events(run_dir) if e["event"] == "partition_finished"]
    assert part["worker"].startswith("tcp://") and part["rows"] == 500
    assert pg_tables(pg_db) == ["dask_dst", "dask_local"]


def test_workers_report_progress_while_they_run(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    _connections(tmp_path, mysql_db, pg_db)
    slow = (
        "SELECT i AS id, repeat('x', 4000) AS pad FROM generate_series(1, 2000) i "
        "WHERE pg_sleep(0.004) IS NOT NULL"
    )
    steps = two_steps(
        {"column": "id", "count": 2, "lower": 1, "upper": 2000},
        source=("postgres.extractor", "@postgres.p"),
        extract={"query": slow, "batch_size": 100},
    )
    outcome, run_dir = run_steps(
        tmp_path / "run",
        steps,
        connections=tmp_path / "osiris_connections.yaml",
        engine="dask",
        engine_options=EngineOptions(workers=2),
    )
    assert outcome.status == "ok", outcome.error
    assert run_dir is not None
    lines = (run_dir / "progress.jsonl").read_text(encoding="utf-8").splitlines()
    totals = [json.loads(line)["rows"] for line in lines if json.loads(line)["step"] == "dst"]
    assert max(totals) <= 2000 and any(t % 1000 for t in totals), totals  # partway, from workers


def test_secrets_reach_workers_but_no_record(pg_db: dict[str, Any], tmp_path: Path) -> None:
    """The password travels with each task (PostgreSQL trusts this client, so any password
    connects): it is in no key and no record of the run."""
    secret = "s3cret-dask-" + "9f2c" * 4
    with pg_connect(pg_db) as c:
        c.execute("CREATE TABLE dask_src AS SELECT i AS id FROM generate_series(1, 500) i")
    fields = {k: pg_db[k] for k in ("host", "port", "user", "database")}
    (tmp_path / "osiris_connections.yaml").write_text(
        json.dumps({"connections": {"postgres": {"p": {**fields, "password": "${DASK_PG_PW}"}}}}),
        encoding="utf-8",
    )
    steps = two_steps(
        {"column": "id", "count": 2},
        source=("postgres.extractor", "@postgres.p"),
        extract={"table": "dask_src"},
    )
    outcome, run_dir = run_steps(
        tmp_path / "run",
        steps,
        connections=tmp_path / "osiris_connections.yaml",
        environ={"DASK_PG_PW": secret},
        engine="dask",
        engine_options=EngineOptions(workers=1),
    )
    assert outcome.status == "ok", outcome.error
    assert run_dir is not None
    parts = [e for e in read_events(run_dir) if e["event"] == "partition_finished"]
    assert len(parts) == 2 and sum(p["rows"] for p in parts) == 500
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(encoding="utf-8", errors="replace"), path


# --- every unit on the cluster (steps as tasks; tables travel worker to worker) -------------

ORDERS_CSV = "id,region,amount\n1,eu,10.5\n2,us,20\n3,eu,30\n4,apac,7.25\n5,us,1\n"


CALC = "SELECT id, v * 2 AS v, upper(name) AS name, amount, created FROM src WHERE id % 3 <> 0"


def _steps_and_files(project: Path, table: str, calc: str = CALC) -> list[dict[str, Any]]:
    """MariaDB -> processor -> PostgreSQL, and a CSV file -> processor -> CSV + Parquet."""
    from runtime_helpers import step

    (project / "orders_dk.csv").write_text(ORDERS_CSV, encoding="utf-8")
    by_region = (
        "SELECT region, sum(amount) AS total, count(*) > 1 AS many FROM orders GROUP BY region"
    )
    return [
        step("src", "mysql.extractor", "extractor", {"table": "dask_src"}, connection="@mysql.m"),
        step("calc", "duckdb.processor", "processor", {"query": calc}, needs=["src"]),
        step(
            "dst",
            "postgres.writer",
            "writer",
            {"table": table, "write_mode": "replace"},
            connection="@postgres.p",
            needs=["calc"],
        ),
        step("orders", "filesystem.csv_extractor", "extractor", {"path": "orders_dk.csv"}),
        step("regions", "duckdb.processor", "processor", {"query": by_region}, needs=["orders"]),
        step(
            "out_csv",
            "filesystem.csv_writer",
            "writer",
            {"path": "regions_dk.csv"},
            needs=["regions"],
        ),
        step(
            "out_pq",
            "filesystem.parquet_writer",
            "writer",
            {"path": "regions_dk.parquet"},
            needs=["regions"],
        ),
    ]


def _regions(project: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    import pyarrow.parquet as pq

    rows = (project / "regions_dk.csv").read_text(encoding="utf-8").splitlines()
    table = pq.read_table(project / "regions_dk.parquet").sort_by("region")
    return sorted(rows), [tuple(r.values()) for r in table.to_pylist()]


def test_every_step_runs_on_a_worker_as_locally(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db, rows=300)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    local, _ = run_steps(
        tmp_path / "a", _steps_and_files(tmp_path / "a", "dk_local"), connections=conns
    )
    assert local.status == "ok", local.error
    outcome, run_dir = run_steps(
        tmp_path / "b",
        _steps_and_files(tmp_path / "b", "dk_dst"),
        connections=conns,
        engine="dask",
        engine_options=EngineOptions(workers=2),
    )
    assert outcome.status == "ok", outcome.error
    assert pg_summary(pg_db, "dk_dst") == pg_summary(pg_db, "dk_local")
    assert pg_summary(pg_db, "dk_dst")[0] == 200
    assert _regions(tmp_path / "b") == _regions(tmp_path / "a")
    assert [(s.step_id, s.rows_in, s.rows_out) for s in outcome.steps] == [
        (s.step_id, s.rows_in, s.rows_out) for s in local.steps
    ]
    assert run_dir is not None
    events = read_events(run_dir)
    units = next(e for e in events if e["event"] == "run_started")["units"]
    assert {u["kind"] for u in units} == {"step"}  # no views over the client's run.duckdb
    tasks = {e["step"]: e for e in events if e["event"] == "step_task_finished"}
    assert sorted(tasks) == sorted(s.step_id for s in outcome.steps)
    assert all(t["status"] == "ok" for t in tasks.values())
    assert all(t["worker"].startswith("tcp://127.0.0.1:") for t in tasks.values())
    # the client never held a step's rows: it never even opened its run database
    assert not (run_dir / "run.duckdb").exists()
    assert pg_tables(pg_db) == ["dk_dst", "dk_local"]


def test_a_failing_processor_on_the_cluster_fails_as_locally(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    address, workers = scheduler
    mysql_source(mysql_db, rows=50)
    _connections(tmp_path, mysql_db, pg_db)
    with pg_connect(pg_db) as c:
        c.execute("CREATE TABLE dk_dst (id int, v int, name text, amount numeric, created date)")
        c.execute("INSERT INTO dk_dst VALUES (1, 1, 'before', 1.00, '2020-01-01')")
    before = pg_summary(pg_db, "dk_dst")
    bad = "SELECT id, CAST('x' || name AS INTEGER) AS v, name, amount, created FROM src"
    steps = _steps_and_files(tmp_path, "dk_dst", bad)
    # the local plan of the same shape (a view chain would fail the writer with the processor)
    local, _ = run_steps(tmp_path, steps, materialize="all")
    outcome, run_dir = run_steps(
        tmp_path, steps, engine="dask", engine_options=EngineOptions(scheduler=address)
    )
    assert outcome.exit_code == local.exit_code == 4, outcome.error
    summary, expected = outcome.summary(), local.summary()
    assert summary["failed_step"] == expected["failed_step"] == "calc"
    assert "Could not convert string 'xname--20' to INT32" in summary["error"]
    assert summary["error"] == expected["error"]
    statuses = {s["id"]: s["status"] for s in summary["steps"]}
    assert statuses == {s["id"]: s["status"] for s in expected["steps"]}
    assert statuses["dst"] == "skipped" and statuses["out_csv"] == "ok"
    assert pg_summary(pg_db, "dk_dst") == before
    assert pg_tables(pg_db) == ["dk_dst"]
    assert run_dir is not None
    failed = next(e for e in read_events(run_dir) if e["event"] == "step_task_finished"
                  and e["step"] == "calc")  # fmt: skip
    assert failed["status"] == "failed" and failed["worker"] in workers
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert f"(on worker {failed['worker']})" in log  # the worker's traceback, in the client's log


def _events(db: dict[str, Any], table: str, rows: int) -> None:
    """A MariaDB table of events whose updated_at grows with the id (day by day)."""
    from runtime_helpers import mysql_rows

    values = ", ".join(
        f"({i}, '{chr(96 + i)}', '2024-01-0{i} 00:00:00')" for i in range(1, rows + 1)
    )
    mysql_rows(
        db,
        f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(20), updated_at DATETIME)",
        f"INSERT INTO {table} VALUES {values}",
    )


def test_partitioned_incremental_on_workers_reads_the_window_and_advances(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Each partition's task gets the step's state, and the highest value any of them read
    comes back to the client as the new state."""
    from runtime_helpers import mysql_rows, step

    from osiris.runtime.records.state import state_path

    address, workers = scheduler
    _connections(tmp_path, mysql_db, pg_db)
    _events(mysql_db, "dk_pevents", 3)
    read = {"table": "dk_pevents", "incremental": {"cursor_column": "updated_at"}}
    steps = [
        step("src", "mysql.extractor", "extractor", read, connection="@mysql.m",
             partition={"column": "id", "count": 2, "lower": 1, "upper": 4}),
        step("dst", "postgres.writer", "writer", {"table": "dk_pcopy", "write_mode": "append"},
             connection="@postgres.p", needs=["src"]),
    ]  # fmt: skip
    state = state_path(tmp_path, "test-pipeline", "src")
    for expected, last in ((3, "2024-01-03"), (1, "2024-01-04")):
        outcome, run_dir = run_steps(
            tmp_path, steps, engine="dask", engine_options=EngineOptions(scheduler=address)
        )
        assert outcome.exit_code == 0, outcome.error
        assert [s.rows_in for s in outcome.steps if s.step_id == "dst"] == [expected]
        assert json.loads(state.read_text())["last_value"].startswith(last)
        parts = [e for e in read_events(run_dir) if e["event"] == "partition_finished"]
        assert len(parts) == 2 and {p["worker"] for p in parts} <= set(workers)
        if expected == 3:
            mysql_rows(mysql_db, "INSERT INTO dk_pevents VALUES (4, 'd', '2024-01-04 00:00:00')")
    with pg_connect(pg_db) as c:
        assert c.execute("SELECT id FROM dk_pcopy ORDER BY id").fetchall() == [
            (1,), (2,), (3,), (4,)
        ]  # fmt: skip


def test_incremental_state_held_on_a_worker_advances_only_on_success(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    from runtime_helpers import mysql_rows, step

    from osiris.runtime.records.state import state_path

    address, _ = scheduler
    _connections(tmp_path, mysql_db, pg_db)
    _events(mysql_db, "dk_events", 2)
    read = {"table": "dk_events", "incremental": {"cursor_column": "updated_at"}}
    load = {"table": "dk_copy", "write_mode": "append"}

    def run(query: str | None) -> int:
        """MariaDB -> PostgreSQL (a stream), or with a processor between them."""
        calc = [step("calc", "duckdb.processor", "processor", {"query": query}, needs=["src"])]
        steps = [
            step("src", "mysql.extractor", "extractor", read, connection="@mysql.m"),
            *(calc if query else []),
            step("dst", "postgres.writer", "writer", load, connection="@postgres.p",
                 needs=["calc" if query else "src"]),
        ]  # fmt: skip
        outcome, _ = run_steps(
            tmp_path, steps, engine="dask", engine_options=EngineOptions(scheduler=address)
        )
        return int(outcome.exit_code)

    state = state_path(tmp_path, "test-pipeline", "src")
    assert run(None) == 0
    assert json.loads(state.read_text())["last_value"].startswith("2024-01-02")
    mysql_rows(mysql_db, "INSERT INTO dk_events VALUES (3, 'c', '2024-01-03 00:00:00')")
    assert run("SELECT id, CAST(name AS INTEGER) AS name FROM src") == 4
    assert json.loads(state.read_text())["last_value"].startswith("2024-01-02")
    assert run("SELECT id, name FROM src") == 0
    assert json.loads(state.read_text())["last_value"].startswith("2024-01-03")
    with pg_connect(pg_db) as c:
        assert c.execute("SELECT id, name FROM dk_copy ORDER BY id").fetchall() == [
            (1, "a"), (2, "b"), (3, "c"),
        ]  # fmt: skip


def test_a_writer_task_lists_its_temp_file_in_the_clients_ledger_before_it_exists(
    scheduler: tuple[str, list[str]], tmp_path: Path
) -> None:
    """A CSV writer on a worker writes a hidden sibling of its target, then renames it into
    place; while it exists, the client's run ledger lists it (asked for by the task, answered
    by the client), so a worker killed mid-write leaves nothing the next sweep misses."""
    from runtime_helpers import step

    from osiris.runtime.debris import read_ledger

    address, _ = scheduler
    (tmp_path / "seed.csv").write_text("a\n1\n", encoding="utf-8")
    many = "SELECT r.range AS i, repeat('x', 60) AS pad FROM seed, range(1500000) AS r"
    steps = [
        step("seed", "filesystem.csv_extractor", "extractor", {"path": "seed.csv"}),
        step("many", "duckdb.processor", "processor", {"query": many}, needs=["seed"]),
        step("out", "filesystem.csv_writer", "writer", {"path": "out/big.csv"}, needs=["many"]),
    ]
    (tmp_path / "out").mkdir()
    seen: list[tuple[str, set[str]]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for temp in (tmp_path / "out").glob(".big.csv.osiris-*"):
                ledgers = list((tmp_path / "runs").glob("*/debris.jsonl"))
                listed = {e.path for ledger in ledgers for e in read_ledger(ledger) if e.path}
                seen.append((str(temp), {str(p) for p in listed}))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcome, run_dir = run_steps(
            tmp_path, steps, engine="dask", engine_options=EngineOptions(scheduler=address)
        )
    finally:
        done.set()
        watcher.join()
    assert outcome.status == "ok", outcome.error
    assert seen, "the writer's temp file was never seen"
    assert all(hidden in listed for hidden, listed in seen)
    assert (tmp_path / "out/big.csv").stat().st_size > 1_500_000 * 60
    assert list((tmp_path / "out").glob(".*")) == []
    assert not (run_dir / "debris.jsonl").exists()  # every entry done: the ledger is gone


def test_ctrl_c_cancels_a_processor_task(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    address, _ = scheduler
    mysql_source(mysql_db, rows=20)
    _connections(tmp_path, mysql_db, pg_db)
    with pg_connect(pg_db) as c:
        c.execute("CREATE TABLE dk_dst (id int)")
        c.execute("INSERT INTO dk_dst VALUES (7)")
    endless = "SELECT sum(a.range % 7)::INTEGER AS id FROM range(1000000000000) a, src"
    manifest = write_manifest(tmp_path / "build", _steps_and_files(tmp_path, "dk_dst", endless))
    proc = oml_run(manifest, tmp_path, "--engine", "dask", "--scheduler", address)
    deadline = time.monotonic() + 60
    started = False
    while not started and time.monotonic() < deadline:
        runs = tmp_path / "runs"
        started = runs.exists() and any(
            '"step_started", "run_id"' in line and '"step": "calc"' in line
            for path in runs.glob("*/events.jsonl")
            for line in path.read_text().splitlines()
        )
        time.sleep(0.2)
    time.sleep(2)  # the processor's query is running on a worker now
    stopped = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - stopped < 30  # the query was interrupted, not waited for
    summary = json.loads(out)
    assert summary["status"] == "cancelled"
    assert {s["id"]: s["status"] for s in summary["steps"]}["calc"] == "cancelled"
    events = read_events(run_dir_of(tmp_path))
    task = next(e for e in events if e["event"] == "step_task_finished" and e["step"] == "calc")
    assert task["status"] == "failed"  # the task ended: its query was interrupted on the worker
    with pg_connect(pg_db) as c:
        assert c.execute("SELECT array_agg(id) FROM dk_dst").fetchone() == ([7],)
    assert pg_tables(pg_db) == ["dk_dst"]


def test_atomic_stages_on_workers_and_runs_the_csv_writer_in_the_client(
    scheduler: tuple[str, list[str]],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    address, workers = scheduler
    mysql_source(mysql_db, rows=60)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    local, _ = run_steps(
        tmp_path / "a", _steps_and_files(tmp_path / "a", "dk_local"), connections=conns
    )
    assert local.status == "ok", local.error
    manifest = write_manifest(tmp_path / "build", _steps_and_files(tmp_path / "b", "dk_dst"))
    proc = oml_run(manifest, tmp_path / "b", "--engine", "dask", "--scheduler", address,
                   "--connections", str(conns), "--atomic", "--materialize", "all",
                   "--format", "text")  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (out, err)
    lines = [line for line in out.splitlines() if line.startswith("task ")]
    on_workers = ["calc", "dst", "orders", "out_pq", "regions", "src"]  # Parquet stages there
    assert sorted(line.split()[1] for line in lines) == on_workers
    assert all(" on tcp://127.0.0.1:" in line and ": ok, " in line for line in lines), out
    assert pg_summary(pg_db, "dk_dst") == pg_summary(pg_db, "dk_local")
    assert _regions(tmp_path / "b") == _regions(tmp_path / "a")
    run_dir = run_dir_of(tmp_path / "b")
    events = read_events(run_dir)
    tasks = {e["step"]: e["worker"] for e in events if e["event"] == "step_task_finished"}
    assert sorted(tasks) == on_workers
    assert set(tasks.values()) <= set(workers)
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    # the CSV writer cannot hand a pending publication back from a worker
    assert "[out_csv] runs in the client: with --atomic" in log, log
    assert "[out_pq] runs in the client" not in log
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["published_steps"] == ["dst", "out_csv", "out_pq"]
    assert any("run.duckdb keeps none of them" in w for w in status["warnings"])
    assert pg_tables(pg_db) == ["dk_dst", "dk_local"]


def test_step_tasks_carry_secrets_to_workers_but_into_no_record(
    scheduler: tuple[str, list[str]], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    from runtime_helpers import step

    address, workers = scheduler
    secret = "s3cret-dk-step-" + "7a1e" * 4
    with pg_connect(pg_db) as c:
        c.execute("CREATE TABLE dk_src AS SELECT i AS id FROM generate_series(1, 40) i")
    fields = {k: pg_db[k] for k in ("host", "port", "user", "database")}
    (tmp_path / "osiris_connections.yaml").write_text(
        json.dumps({"connections": {"postgres": {"p": {**fields, "password": "${DK_PG_PW}"}}}}),
        encoding="utf-8",
    )
    steps = [
        step("src", "postgres.extractor", "extractor", {"table": "dk_src"}, connection="@postgres.p"),
        step("calc", "duckdb.processor", "processor", {"query": "SELECT id * 2 AS id FROM src"},
             needs=["src"]),
        step("dst", "postgres.writer", "writer", {"table": "dk_dst", "write_mode": "replace"},
             connection="@postgres.p", needs=["calc"]),
    ]  # fmt: skip
    outcome, run_dir = run_steps(
        tmp_path / "run",
        steps,
        connections=tmp_path / "osiris_connections.yaml",
        environ={"DK_PG_PW": secret},
        engine="dask",
        engine_options=EngineOptions(scheduler=address),
    )
    assert outcome.status == "ok", outcome.error
    assert run_dir is not None
    tasks = [e for e in read_events(run_dir) if e["event"] == "step_task_finished"]
    assert sorted(t["step"] for t in tasks) == ["calc", "dst", "src"]
    assert {t["worker"] for t in tasks} <= set(workers)
    with pg_connect(pg_db) as c:
        assert c.execute("SELECT count(*), sum(id) FROM dk_dst").fetchone() == (40, 1640)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(encoding="utf-8", errors="replace"), path
