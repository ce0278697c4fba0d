"""Partitions leave nothing the run's ledger does not list: a killed run (local threads, or a
client of a real scheduler whose tasks outlive it), a worker killed mid-load, a part whose DROP
is refused after the publish; the next run sweeps what is left, on MariaDB and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from runtime_helpers import mysql_rows, pg_rows, step, write_manifest
from test_partitions import _connections, pg_connect, two_steps

from osiris.runtime.debris import read_ledger

pytest.importorskip("distributed")

from test_dask_engine import dask_cluster

ROWS = 2000
# 16 KiB rows, a COPY chunk (1 MiB) every ~1.3 s: the first partition at once, the other three
# in ~10 s each, so some parts are complete while others are being loaded
SLOW = (
    f"SELECT i AS id, repeat('x', 16000) AS pad FROM generate_series(1, {ROWS}) i "
    "WHERE i <= 500 OR pg_sleep(0.02) IS NOT NULL"
)
FAST = f"SELECT i AS id, repeat('x', 16000) AS pad FROM generate_series(1, {ROWS}) i"
PARTITION = {"column": "id", "count": 4, "lower": 1, "upper": ROWS}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A scheduler and two workers whose temp dir is a folder of their own (to see what a
    worker leaves there): yields the scheduler's address and that folder."""
    folder = tmp_path_factory.mktemp("lg_dask")
    temp = folder / "tmp"
    temp.mkdir()
    # 4 threads each: the 8 partitions of two units run at once
    with dask_cluster(folder, {"TMPDIR": str(temp)}, nthreads=4) as (address, _):
        yield address, temp


def _units(**sinks: tuple[str, str]) -> list[dict[str, Any]]:
    """One partitioned unit per sink, each reading SLOW from PostgreSQL into table lg_dst."""
    steps: list[dict[str, Any]] = []
    for name, sink in sinks.items():
        src, dst = two_steps(
            PARTITION,
            source=("postgres.extractor", "@postgres.p"),
            sink=sink,
            table="lg_dst",
            extract={"query": SLOW, "batch_size": 100},
        )
        steps += [{**src, "id": f"src_{name}"}, {**dst, "id": name, "needs": [f"src_{name}"]}]
    return steps


def _env(temp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    if "OSIRIS_CACHE_DIR" in os.environ:
        env["OSIRIS_CACHE_DIR"] = os.environ["OSIRIS_CACHE_DIR"]
    env["TMPDIR"] = str(temp)
    return env


def _start(project: Path, manifest: Path, temp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "osiris.runtime.cli", str(manifest), "--project-dir",
         str(project), "--format", "json", *args],
        cwd=project, env=_env(temp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=300)
    assert out.strip(), err
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def _wait_for(proc: subprocess.Popen[str], what: str, found: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 90
    while not found():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended before {what}: {out} {err}")
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def my_parts(db: dict[str, Any]) -> list[str]:
    return sorted(
        name
        for (name,) in mysql_rows(
            db,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME LIKE '%\\_osiris\\_part\\_%'",
        )
    )


def pg_parts(db: dict[str, Any]) -> list[str]:
    return sorted(
        name
        for (name,) in pg_rows(
            db,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_name LIKE '%\\_osiris\\_part\\_%'",
        )
    )


def _load_files(temp: Path) -> list[Path]:
    """The LOAD DATA files of the partitions loading into MariaDB now."""
    return list(temp.rglob("osiris-load-*.csv"))


def _listed(run_dir: Path) -> set[str]:
    return {e.name for e in read_ledger(run_dir / "debris.jsonl") if e.kind == "table" and e.name}


def _run_dir(project: Path) -> Path:
    (found,) = list((project / "runs").iterdir())
    return found


def _idle(address: str) -> float:
    """Wait until no worker runs a task (an abandoned one included); the seconds it took."""
    from distributed import Client

    def busy(dask_worker: Any) -> int:
        return sum(
            ts.state in ("executing", "cancelled") for ts in dask_worker.state.tasks.values()
        )

    started = time.monotonic()
    with Client(address, timeout=30) as client:
        while sum(client.run(busy).values()):
            assert time.monotonic() < started + 60, "the killed client's tasks kept running"
            time.sleep(0.1)
    return time.monotonic() - started


ENGINES = {
    "local": ["--max-parallel", "4"],  # both units, each with its 4 partitions at once
    "dask": ["--engine", "dask", "--scheduler"],  # + the address of the cluster fixture
    "dask-local": ["--engine", "dask", "--workers", "2"],  # a LocalCluster, killed with the run
}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_a_killed_run_leaves_only_listed_parts_and_the_next_run_sweeps_them(
    engine: str,
    cluster: tuple[str, Path],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
) -> None:
    address, worker_temp = cluster
    temp = worker_temp if engine == "dask" else tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    project = tmp_path / "proj"
    project.mkdir()
    _connections(project, mysql_db, pg_db)
    mysql_rows(mysql_db, "CREATE TABLE lg_dst (id INT PRIMARY KEY, pad TEXT)")
    pg_rows(pg_db, "CREATE TABLE lg_dst (id int PRIMARY KEY, pad text)")
    steps = _units(to_my=("mysql.writer", "@mysql.m"), to_pg=("postgres.writer", "@postgres.p"))
    manifest = write_manifest(tmp_path / "build", steps)
    engine_args = [*ENGINES[engine], address] if engine == "dask" else ENGINES[engine]
    proc = _start(project, manifest, temp, *engine_args)
    # a PostgreSQL part is committed (the others still loading; a LocalCluster's two slots
    # run one unit's partitions after the other's), MariaDB parts exist, and rows are being
    # loaded into MariaDB through a partition's temp file
    both = engine != "dask-local"
    _wait_for(proc, "parts", lambda: bool((pg_parts(pg_db) or not both) and my_parts(mysql_db)))
    _wait_for(proc, "a LOAD DATA file", lambda: bool(_load_files(temp)))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    dead = _run_dir(project)
    listed = _listed(dead)
    seen = set(my_parts(mysql_db)) | set(pg_parts(pg_db))
    assert seen and seen <= listed  # every part was in the client's ledger before it existed
    assert all(dead.name.replace("-", "_") in name for name in listed)
    if engine == "dask":
        # the tasks saw their client go and stopped (cleaning up after themselves) long before
        # their partitions' ~10 s: none of them commits a part after the next run's sweep
        assert _idle(address) < 5

    # the next run (a fast one, same targets) sweeps the dead run's parts and temp files first
    fast = _units(to_my=("mysql.writer", "@mysql.m"), to_pg=("postgres.writer", "@postgres.p"))
    for s in fast:
        if s["id"].startswith("src_"):
            s["config"] = {**s["config"], "query": FAST}
    summary = _finish(_start(project, write_manifest(tmp_path / "fast", fast), temp, *engine_args))
    assert summary["status"] == "ok", summary
    assert my_parts(mysql_db) == [] and pg_parts(pg_db) == []
    assert mysql_rows(mysql_db, "SELECT COUNT(*) FROM lg_dst") == [(ROWS,)]
    assert pg_rows(pg_db, "SELECT count(*) FROM lg_dst") == [(ROWS,)]
    assert list(temp.iterdir()) == []
    assert not (dead / "debris.jsonl").exists()
    log = (Path(summary["run_dir"]) / "run.log").read_text(encoding="utf-8")
    for name in seen:
        assert f"removed leftover of run {dead.name}: staging table" in log and name in log
    if engine != "dask":  # the killed processes' partition scratch directories
        assert (
            f"removed leftover of run {dead.name}: scratch directory {temp}/osiris-{dead.name}-part"
            in log
        )


def test_a_worker_killed_mid_load_is_run_again_and_leaves_nothing(
    cluster: tuple[str, Path], mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    from distributed import Client

    address, temp = cluster
    project = tmp_path / "proj"
    project.mkdir()
    _connections(project, mysql_db, pg_db)
    steps = _units(to_my=("mysql.writer", "@mysql.m"), to_pg=("postgres.writer", "@postgres.p"))
    manifest = write_manifest(tmp_path / "build", steps)
    proc = _start(project, manifest, temp, "--engine", "dask", "--scheduler", address)
    _wait_for(proc, "a LOAD DATA file", lambda: bool(_load_files(temp)))
    with Client(address, timeout=30) as client:
        pids = client.run(os.getpid)
        busy = [w for w, keys in client.processing().items() if keys]
        os.kill(pids[busy[0]], signal.SIGKILL)  # its nanny starts a new worker process
    summary = _finish(proc)
    assert summary["status"] == "ok", summary
    whole = [(ROWS, 1, ROWS)]
    assert mysql_rows(mysql_db, "SELECT COUNT(*), MIN(id), MAX(id) FROM lg_dst") == whole
    assert pg_rows(pg_db, "SELECT count(*), min(id), max(id) FROM lg_dst") == whole
    assert my_parts(mysql_db) == [] and pg_parts(pg_db) == []
    # the dead worker's partition scratch directory went with the next task's sweep
    assert list(temp.iterdir()) == []
    assert not list((project / "runs").glob("*/debris.jsonl"))


@pytest.fixture
def lg_writer(mysql_db: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The test database's fields for user lg_writer@127.0.0.1, which may create, insert,
    select, alter and index, but not drop."""
    admin = pymysql.connect(**mysql_db, autocommit=True)
    password = "lg-" + os.urandom(6).hex()
    try:
        with admin.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'lg_writer'@'127.0.0.1'")
            cur.execute("CREATE USER 'lg_writer'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cur.execute(
                f"GRANT CREATE, INSERT, SELECT, ALTER, INDEX ON `{mysql_db['database']}`.* "
                "TO 'lg_writer'@'127.0.0.1'"
            )
        yield {**mysql_db, "host": "127.0.0.1", "user": "lg_writer", "password": password}
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'lg_writer'@'127.0.0.1'")
        admin.close()


def test_parts_whose_drop_is_refused_stay_listed_and_the_next_run_sweeps_them(
    lg_writer: dict[str, Any], mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    from runtime_helpers import run_steps

    with pg_connect(pg_db) as c:
        c.execute(
            "CREATE TABLE lg_src AS SELECT i AS id, 'r' || i AS pad FROM generate_series(1, 500) i"
        )
    mysql_rows(mysql_db, "CREATE TABLE lg_dst (id INT PRIMARY KEY, pad TEXT)",
               "INSERT INTO lg_dst VALUES (0, 'before')")  # fmt: skip
    project = tmp_path / "proj"
    project.mkdir()
    _connections(project, lg_writer, pg_db)
    steps = two_steps(
        PARTITION,
        source=("postgres.extractor", "@postgres.p"),
        sink=("mysql.writer", "@mysql.m"),
        table="lg_dst",
        write_mode="append",
        extract={"table": "lg_src"},
    )
    outcome, run_dir = run_steps(project, steps, connections=project / "osiris_connections.yaml")
    assert outcome.status == "ok", outcome.error
    assert mysql_rows(mysql_db, "SELECT COUNT(*), MIN(id), MAX(id) FROM lg_dst") == [(501, 0, 500)]
    parts = my_parts(mysql_db)
    assert len(parts) == 4  # published, but lg_writer may not drop them
    assert run_dir is not None and _listed(run_dir) == set(parts)
    assert any("could not remove 4" in w for w in outcome.warnings), outcome.warnings

    # the next run, as root, sweeps them: the pipeline itself does not matter
    _connections(project, mysql_db, pg_db)
    (project / "one.csv").write_text("a\n1\n", encoding="utf-8")
    nothing = [
        step("src", "filesystem.csv_extractor", "extractor", {"path": "one.csv"}),
        step("out", "filesystem.csv_writer", "writer", {"path": "copy.csv"}, needs=["src"]),
    ]
    outcome, _ = run_steps(project, nothing, connections=project / "osiris_connections.yaml")
    assert outcome.status == "ok", outcome.error
    assert my_parts(mysql_db) == []
    assert not (run_dir / "debris.jsonl").exists()
    assert mysql_rows(mysql_db, "SELECT COUNT(*) FROM lg_dst") == [(501,)]


def test_a_partition_context_lists_nothing_and_keeps_its_files_in_its_own_scratch(
    tmp_path: Path,
) -> None:
    from osiris.runtime.context import LocalStepContext, RunDatabase
    from osiris.runtime.contract.scratch import sweep_scratch
    from osiris.runtime.debris import PartScratch
    from osiris.runtime.drivers.base import DriverError

    side = PartScratch("20260101T000000Z-abc123", 2, tmp_path)
    ctx = LocalStepContext(
        step_id="dst",
        config={},
        connection=None,
        inputs={},
        upstream=(),
        artifacts_dir=side.scratch_dir / "artifacts",
        project_dir=tmp_path,
        database=RunDatabase(side.scratch_dir / "unused.duckdb"),
        debris=side,
    )
    assert ctx.run_tag == "20260101T000000Z_abc123"
    assert ctx.scratch_dir.parent == tmp_path
    assert ctx.scratch_dir.name.startswith("osiris-20260101T000000Z-abc123-part2-")
    with pytest.raises(DriverError, match="the client names and lists it"):
        ctx.track_table("db", "t_osiris_stg_x")
    with pytest.raises(DriverError, match="the client names and lists it"):
        ctx.track_path(tmp_path / "x.part")
    with pytest.raises(DriverError, match="cannot change the run's ledger"):
        ctx.untrack(1)
    assert sweep_scratch(tmp_path) == []  # held by this process
    side.close()
    assert list(tmp_path.iterdir()) == []
