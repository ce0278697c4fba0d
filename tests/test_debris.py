"""Leftovers of runs that die (SIGKILL, a server-side KILL) are swept by the next run of the project.

Every run here is a real `oml-run` process with TMPDIR pointed at the test's own directory, so
nothing on the machine outside it is touched (and a sweep never sees another test's runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pymysql
import pytest
from runtime_helpers import step, write_manifest

from osiris.runtime.contract.scratch import ScratchDir, sweep_scratch

CSV = "filesystem.csv_extractor"
SRC = "data/src.csv"


def _project(tmp_path: Path, mysql_db: dict[str, Any] | None = None) -> Path:
    project = tmp_path / "proj"
    (project / "data").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    fields = {k: mysql_db[k] for k in ("host", "port", "user", "database")} if mysql_db else {}
    connections = {"connections": {"mysql": {"t": fields}}} if mysql_db else {"connections": {}}
    (project / "osiris_connections.yaml").write_text(json.dumps(connections), encoding="utf-8")
    return project


def _source(project: Path, rows: int) -> None:
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT i AS id, 'row ' || i || repeat('x', 40) AS payload FROM range({rows}) "
            f"t(i)) TO '{project / SRC}' (HEADER)"
        )


def _manifest(project: Path, name: str, writer: dict[str, Any]) -> Path:
    steps = [step("src", CSV, "extractor", {"path": SRC}), {**writer, "needs": ["src"]}]
    return write_manifest(project / name, steps)


def _mysql_replace(batch_size: int = 2_000) -> dict[str, Any]:
    config = {"table": "target", "write_mode": "replace", "batch_size": batch_size}
    return step("load", "mysql.writer", "writer", config, connection="@mysql.t")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    if "OSIRIS_CACHE_DIR" in os.environ:
        env["OSIRIS_CACHE_DIR"] = os.environ["OSIRIS_CACHE_DIR"]
    env["TMPDIR"] = str(tmp_path / "tmp")
    return env


def _start(tmp_path: Path, project: Path, manifest: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "osiris.runtime.cli", str(manifest), "--format", "json"],
        cwd=project,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(tmp_path: Path, project: Path, manifest: Path) -> dict[str, Any]:
    proc = _start(tmp_path, project, manifest)
    out, err = proc.communicate(timeout=120)
    assert out.strip(), err
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def _wait_for(proc: subprocess.Popen[str], what: str, found: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not found():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended before {what} appeared: {out} {err}")
        assert time.monotonic() < deadline, f"{what} never appeared"
        time.sleep(0.005)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def _my(db: dict[str, Any]) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=db["host"], port=db["port"], user=db["user"], database=db["database"], autocommit=True
    )


def _tables(db: dict[str, Any]) -> list[str]:
    with _my(db) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        return sorted(row[0] for row in cur.fetchall())


def _staging(db: dict[str, Any]) -> list[str]:
    return [t for t in _tables(db) if "_osiris_" in t]


def _load_csvs(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "tmp").glob("osiris-*/osiris-load-*.csv"))


def _run_dir(project: Path, run_id: str) -> Path:
    return project / "runs" / run_id


def _started_run_id(project: Path, before: set[str]) -> str:
    new = {p.name for p in (project / "runs").iterdir()} - before
    assert len(new) == 1, new
    return new.pop()


def _runs(project: Path) -> set[str]:
    runs = project / "runs"
    return {p.name for p in runs.iterdir()} if runs.exists() else set()


def _seed_target(db: dict[str, Any]) -> None:
    with _my(db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE target (id BIGINT PRIMARY KEY, payload TEXT)")
        cur.execute("INSERT INTO target VALUES (-1, 'before')")


def _target(db: dict[str, Any]) -> list[tuple[Any, ...]]:
    with _my(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, payload FROM target ORDER BY id LIMIT 2")
        return list(cur.fetchall())


@pytest.mark.mysql
def test_killed_runs_leave_debris_that_the_next_run_sweeps(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    project = _project(tmp_path, mysql_db)
    _source(project, 300_000)
    _seed_target(mysql_db)

    # 1. SIGKILL mid MySQL replace: a staging table, and the rows being loaded in a temp CSV
    before = _runs(project)
    killed = _start(tmp_path, project, _manifest(project, "to_mysql", _mysql_replace()))
    _wait_for(killed, "the staging table and load file", lambda: bool(_load_csvs(tmp_path)))
    _wait_for(killed, "the staging table", lambda: bool(_staging(mysql_db)))
    _kill(killed)
    first = _started_run_id(project, before)
    staging = _staging(mysql_db)
    assert len(staging) == 1 and first.replace("-", "_") in staging[0]  # carries the run id
    assert len(staging[0]) <= 64
    scratch = tmp_path / "tmp" / f"osiris-{first}"
    assert [p.parent for p in _load_csvs(tmp_path)] == [scratch]
    assert (_run_dir(project, first) / "debris.jsonl").is_file()
    assert _target(mysql_db) == [(-1, "before")]

    # 2. SIGKILL mid Parquet write: a hidden temp file beside the target. This run, starting,
    # already sweeps what the first one left.
    before = _runs(project)
    parquet = {"path": "out/result.parquet"}
    writer = step("write", "filesystem.parquet_writer", "writer", parquet)
    killed = _start(tmp_path, project, _manifest(project, "to_parquet", writer))
    temp_files = lambda: list((project / "out").glob(".result.parquet.*"))  # noqa: E731
    _wait_for(killed, "the parquet temp file", lambda: bool(temp_files()))
    _kill(killed)
    second = _started_run_id(project, before)
    assert next(p.name for p in temp_files()).startswith(
        f".result.parquet.osiris-{second.replace('-', '_')}"
    )
    assert _staging(mysql_db) == [] and not scratch.exists()
    assert not (_run_dir(project, first) / "debris.jsonl").exists()
    log = (_run_dir(project, second) / "run.log").read_text(encoding="utf-8")
    assert f"removed leftover of run {first}: staging table" in log and staging[0] in log
    assert f"removed leftover of run {first}: scratch directory {scratch}" in log

    # 3. A normal run sweeps the second one's file and reports it
    small = project / "data" / "small.csv"
    small.write_text("id\n1\n", encoding="utf-8")
    writer = step("write", "filesystem.csv_writer", "writer", {"path": "out/small.csv"})
    manifest = write_manifest(
        project / "small",
        [step("src", CSV, "extractor", {"path": "data/small.csv"}), {**writer, "needs": ["src"]}],
    )
    summary = _run(tmp_path, project, manifest)
    assert summary["status"] == "ok", summary
    assert temp_files() == [] and not (project / "out" / "result.parquet").exists()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not list((project / "runs").glob("*/debris.jsonl"))
    third = _run_dir(project, summary["run_id"])
    log = (third / "run.log").read_text(encoding="utf-8")
    assert f"removed leftover of run {second}: file {project / 'out'}/.result.parquet." in log
    status = json.loads((third / "status.json").read_text(encoding="utf-8"))
    assert any(w.startswith(f"removed 2 leftover(s) of run {second}") for w in status["warnings"])
    assert _target(mysql_db) == [(-1, "before")]


@pytest.mark.mysql
def test_a_live_run_is_never_swept(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    project = _project(tmp_path, mysql_db)
    _source(project, 100_000)
    _seed_target(mysql_db)
    before = _runs(project)
    live = _start(tmp_path, project, _manifest(project, "to_mysql", _mysql_replace()))
    _wait_for(live, "the staging table", lambda: bool(_staging(mysql_db) and _load_csvs(tmp_path)))
    live.send_signal(signal.SIGSTOP)  # alive, holding its locks, doing nothing
    try:
        live_id = _started_run_id(project, before)
        staging, load_csvs = _staging(mysql_db), _load_csvs(tmp_path)
        small = project / "data" / "small.csv"
        small.write_text("id\n1\n", encoding="utf-8")
        writer = step("write", "filesystem.csv_writer", "writer", {"path": "out/small.csv"})
        manifest = write_manifest(
            project / "small",
            [
                step("src", CSV, "extractor", {"path": "data/small.csv"}),
                {**writer, "needs": ["src"]},
            ],
        )
        summary = _run(tmp_path, project, manifest)
        assert summary["status"] == "ok", summary
        assert _staging(mysql_db) == staging and _load_csvs(tmp_path) == load_csvs
        assert (_run_dir(project, live_id) / "debris.jsonl").is_file()
        assert "leftover" not in (_run_dir(project, summary["run_id"]) / "run.log").read_text()
    finally:
        live.send_signal(signal.SIGCONT)
    out, err = live.communicate(timeout=120)
    assert json.loads(out.strip().splitlines()[-1])["status"] == "ok", err
    assert _staging(mysql_db) == [] and list((tmp_path / "tmp").iterdir()) == []
    assert not (_run_dir(project, live_id) / "debris.jsonl").exists()
    assert len(_target(mysql_db)) == 2 and _target(mysql_db)[0] == (0, "row 0" + "x" * 40)


@pytest.mark.mysql
def test_server_side_kill_mid_replace_leaves_no_staging_table(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    project = _project(tmp_path, mysql_db)
    _source(project, 300_000)
    _seed_target(mysql_db)
    proc = _start(tmp_path, project, _manifest(project, "to_mysql", _mysql_replace()))
    _wait_for(proc, "the staging table", lambda: bool(_staging(mysql_db)))
    with _my(mysql_db) as admin, admin.cursor() as cur:
        for _ in range(1000):
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> "
                "CONNECTION_ID() AND INFO LIKE 'LOAD DATA%%'",
                (mysql_db["database"],),
            )
            found = cur.fetchone()
            if found:
                cur.execute(f"KILL {int(found[0])}")
                break
            time.sleep(0.005)
        else:
            pytest.fail("no LOAD DATA seen")
    out, err = proc.communicate(timeout=120)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "failed" and summary["exit_code"] == 4, err
    assert _staging(mysql_db) == []
    assert _target(mysql_db) == [(-1, "before")]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (Path(summary["run_dir"]) / "debris.jsonl").exists()


@pytest.mark.mysql
def test_a_normal_run_leaves_nothing(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    project = _project(tmp_path, mysql_db)
    _source(project, 20_000)
    _seed_target(mysql_db)
    summary = _run(tmp_path, project, _manifest(project, "to_mysql", _mysql_replace()))
    assert summary["status"] == "ok", summary
    writer = step("write", "filesystem.parquet_writer", "writer", {"path": "out/r.parquet"})
    summary = _run(tmp_path, project, _manifest(project, "to_parquet", writer))
    assert summary["status"] == "ok", summary
    assert list((tmp_path / "tmp").iterdir()) == []
    assert _staging(mysql_db) == [] and [p.name for p in (project / "out").iterdir()] == [
        "r.parquet"
    ]
    assert not list((project / "runs").glob("*/debris.jsonl"))


def test_osiris_run_leaves_nothing_in_the_temp_dir(tmp_path: Path) -> None:
    env = _env(tmp_path)
    (tmp_path / "tmp").mkdir()
    command = [
        sys.executable,
        "-c",
        "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
    ]
    init = subprocess.run(
        [*command, "init", "proj"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    run = subprocess.run(
        [*command, "run", "pipeline.oml"],
        cwd=tmp_path / "proj",
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


_HOLD = """
import sys, time
from pathlib import Path
from osiris.runtime.contract.scratch import ScratchDir
scratch = ScratchDir(sys.argv[1], Path(sys.argv[2]))
(scratch.path / "work.csv").write_text("rows")
print("ready", flush=True)
time.sleep(600)
"""


def test_scratch_dirs_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    def hold(name: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD, name, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    dead, live = hold("dead"), hold("live")
    dead.kill()
    dead.wait()
    (tmp_path / "osiris-not-ours").mkdir()  # no lock file: being created, or someone else's
    mine = ScratchDir("mine", tmp_path)  # held by this process: live too
    try:
        assert sweep_scratch(tmp_path) == [tmp_path / "osiris-dead"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "osiris-live",
            "osiris-mine",
            "osiris-not-ours",
        ]
        assert (tmp_path / "osiris-live" / "work.csv").is_file()
    finally:
        live.kill()
        live.wait()
        mine.close()
    assert sweep_scratch(tmp_path) == [tmp_path / "osiris-live"]
    assert [p.name for p in tmp_path.iterdir()] == ["osiris-not-ours"]


def test_what_cannot_be_removed_is_a_warning_and_stays_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from runtime_helpers import run_steps

    project = _project(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    dead = project / "runs" / "20260101T000000Z-dead00"
    dead.mkdir(parents=True)
    part = project / "out" / ".r.csv.osiris-20260101T000000Z_dead00-abc123.part"
    part.parent.mkdir()
    part.write_text("half a file", encoding="utf-8")
    table = {"kind": "table", "connection": "@mysql.gone", "driver": "mysql.writer"}
    entries = [
        {"op": "track", "id": 1, "kind": "path", "path": str(part)},
        {"op": "track", "id": 2, **table, "schema": "shop", "name": "t_osiris_stg_x"},
        {"op": "track", "id": 3, **table, "schema": "shop", "name": "t_osiris_old_x"},
        {"op": "done", "id": 3},
    ]
    ledger = dead / "debris.jsonl"
    ledger.write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"op": "tr', "utf-8")
    (project / "data" / "small.csv").write_text("id\n1\n", encoding="utf-8")
    outcome, run_dir = run_steps(
        project,
        [
            step("src", CSV, "extractor", {"path": "data/small.csv"}),
            {
                **step("w", "filesystem.csv_writer", "writer", {"path": "out/r.csv"}),
                "needs": ["src"],
            },
        ],
    )
    assert outcome.status == "ok", outcome.error
    assert not part.exists() and ledger.is_file()  # kept: the table is still to be dropped
    (warning,) = outcome.warnings
    assert warning.startswith("removed 1 leftover(s) of run 20260101T000000Z-dead00: file ")
    assert "could not remove 1: staging table shop.t_osiris_stg_x (@mysql.gone)" in warning
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert "could not remove leftover of run 20260101T000000Z-dead00: staging table" in log
    assert sorted(p.name for p in (project / "out").iterdir()) == ["r.csv"]


def test_a_killed_partitioned_parquet_load_leaves_a_staging_directory_the_next_run_sweeps(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """The hidden directory the partitions write into is in the ledger before it exists."""
    project = _project(tmp_path)
    fields = {k: pg_db[k] for k in ("host", "port", "user", "database")}
    (project / "osiris_connections.yaml").write_text(
        json.dumps({"connections": {"postgres": {"p": fields}}}), encoding="utf-8"
    )
    (project / "out").mkdir()
    (project / "out" / "pq_orders.parquet").write_bytes(b"before")
    slow = "SELECT i AS id FROM generate_series(1, 8000) i WHERE pg_sleep(0.005) IS NOT NULL"
    steps = [
        step(
            "src",
            "postgres.extractor",
            "extractor",
            {"query": slow, "batch_size": 50},
            connection="@postgres.p",
            partition={"column": "id", "count": 4, "lower": 1, "upper": 8000},
        ),
        step(
            "write",
            "filesystem.parquet_writer",
            "writer",
            {"path": "out/pq_orders.parquet"},
            needs=["src"],
        ),
    ]
    before = _runs(project)
    killed = _start(tmp_path, project, write_manifest(project / "parts", steps))
    staging = lambda: list((project / "out").glob(".pq_orders.parquet.*"))  # noqa: E731
    _wait_for(killed, "the partitions' staging directory", lambda: bool(staging()))
    _kill(killed)
    run_id = _started_run_id(project, before)
    (left,) = staging()
    assert left.name.startswith(f".pq_orders.parquet.osiris-{run_id.replace('-', '_')}")
    assert left.name.endswith(".parts") and left.is_dir()
    ledger = (_run_dir(project, run_id) / "debris.jsonl").read_text(encoding="utf-8")
    assert str(left) in ledger
    assert (project / "out" / "pq_orders.parquet").read_bytes() == b"before"

    (project / SRC).write_text("id\n1\n", encoding="utf-8")
    writer = step("write", "filesystem.csv_writer", "writer", {"path": "out/small.csv"})
    summary = _run(tmp_path, project, _manifest(project, "small", writer))
    assert summary["status"] == "ok", summary
    assert staging() == [] and not list((project / "runs").glob("*/debris.jsonl"))
    log = (_run_dir(project, summary["run_id"]) / "run.log").read_text(encoding="utf-8")
    assert f"removed leftover of run {run_id}: file {left}" in log
    assert (project / "out" / "pq_orders.parquet").read_bytes() == b"before"
