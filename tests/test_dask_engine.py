"""`--engine dask`: partitions as tasks on a LocalCluster and on real `dask scheduler` / `dask
worker` processes, giving exactly the local engine's result; failures and Ctrl-C leave the target."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
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
