"""Cancelling a run with real signals: a real oml-run process, stopped mid-load by SIGINT or
SIGTERM, exits 130/143 within seconds, leaves every target as it was and says so in its records."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pymysql
import pytest
from runtime_helpers import step, write_manifest

from osiris.runtime.cancel import CancelToken, RunCancelled

ROWS = 20_000_000  # far more than any load gets through before the signal
# Targets start with ids -1000..-1, so a load of the source (ids 1..ROWS) never hits their key.
SOURCE = f"SELECT id, md5(id::text) AS payload FROM (SELECT generate_series(1, {ROWS}) AS id) AS s"
EXIT_SECONDS = 5.0  # from the signal to the process's exit


# ---- running oml-run and stopping it -----------------------------------------------------------


class Run:
    """`oml-run build` started in a project; stopped with a signal once `ready()` holds."""

    def __init__(self, project: Path, steps: list[dict[str, Any]]) -> None:
        self.project = project
        write_manifest(project / "build", steps)
        self.tmp = project / "tmp"
        self.tmp.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
        if "OSIRIS_CACHE_DIR" in os.environ:
            env["OSIRIS_CACHE_DIR"] = os.environ["OSIRIS_CACHE_DIR"]
        env["TMPDIR"] = str(self.tmp)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "osiris.runtime.cli", "build"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_dir(self) -> Path | None:
        runs = self.project / "runs"
        found = sorted(runs.iterdir()) if runs.is_dir() else []
        return found[0] if found else None

    def events(self) -> list[dict[str, Any]]:
        run_dir = self.run_dir()
        if run_dir is None or not (run_dir / "events.jsonl").exists():
            return []
        lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def started(self, step_id: str) -> bool:
        return any(e["event"] == "step_started" and e["step"] == step_id for e in self.events())

    def wait_until(self, ready: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"oml-run ended before the signal ({self.proc.returncode}): {out}{err}")
            assert time.monotonic() < deadline, "the load never started"
            time.sleep(0.05)

    def stop(self, signum: int, *, repeat: int = 0) -> tuple[int, str]:
        """Send signum (then `repeat` more, 50 ms apart); (exit code, stderr) once it exited."""
        sent = time.monotonic()
        self.proc.send_signal(signum)
        for _ in range(repeat):
            time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.send_signal(signum)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("oml-run did not stop within 30 s of the signal")
        elapsed = time.monotonic() - sent
        assert elapsed < EXIT_SECONDS, f"took {elapsed:.1f} s to stop"
        assert "Fatal Python error" not in err and "Traceback" not in err, err
        return self.proc.returncode, err

    def assert_cancelled(self, code: int, signum: int, writer: str) -> None:
        assert code == (130 if signum == signal.SIGINT else 143)
        run_dir = self.run_dir()
        assert run_dir is not None
        status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
        assert status["status"] == "cancelled" and status["exit_code"] == code
        assert writer in status["cancelled_steps"]
        assert json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["steps"]
        events = self.events()
        last = events[-1]
        assert last["event"] == "run_finished", last
        assert last["status"] == "cancelled" and last["exit_code"] == code
        assert any(e["event"] == "step_cancelled" and e["step"] == writer for e in events)
        assert not any(e["event"] == "step_failed" for e in events)
        assert "run finished: cancelled" in (run_dir / "run.log").read_text(encoding="utf-8")
        leftovers = [p.name for p in self.tmp.rglob("osiris-load-*")]
        assert leftovers == []


def _pg_connect(db: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], dbname=db["database"], autocommit=True
    )


def _my_connect(db: dict[str, Any]) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=db["host"],
        port=db["port"],
        user=db["user"],
        password=db.get("password") or "",
        database=db["database"],
        autocommit=True,
    )


def _connections(project: Path, **families: dict[str, Any]) -> None:
    keys = ("host", "port", "user", "password", "database")
    connections = {
        family: {"t": {k: db[k] for k in keys if db.get(k) is not None}}
        for family, db in families.items()
    }
    text = json.dumps({"connections": connections})
    (project / "osiris_connections.yaml").write_text(text, encoding="utf-8")


def _source() -> dict[str, Any]:
    return step(
        "src", "postgres.extractor", "extractor", {"query": SOURCE}, connection="@postgres.t"
    )


def _writer(driver: str, config: dict[str, Any], connection: str | None = None) -> dict[str, Any]:
    return step("load", driver, "writer", config, needs=["src"], connection=connection)


def _pg_busy(admin: psycopg.Connection[Any], statement: str) -> Callable[[], bool]:
    """True while a statement starting with `statement` runs in admin's database."""

    def busy() -> bool:
        found = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
            [statement + "%"],
        ).fetchone()
        return bool(found and found[0])

    return busy


# ---- PostgreSQL -------------------------------------------------------------------------------


def _pg_state(db: dict[str, Any]) -> tuple[Any, ...]:
    with _pg_connect(db) as conn:
        oid = conn.execute("SELECT 'target'::regclass::oid").fetchone()
        rows = conn.execute("SELECT count(*), sum(id), max(payload) FROM target").fetchone()
        definition = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'target'::regclass ORDER BY 1"
        ).fetchall()
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema') ORDER BY 1"
        ).fetchall()
    return oid, rows, definition, tables


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("mode", "signum"),
    [("append", signal.SIGINT), ("replace", signal.SIGTERM), ("upsert", signal.SIGINT)],
)
def test_postgres_writer_cancelled_mid_copy(
    pg_db: dict[str, Any], tmp_path: Path, mode: str, signum: int
) -> None:
    with _pg_connect(pg_db) as conn:
        conn.execute("CREATE TABLE target (id bigint PRIMARY KEY, payload text NOT NULL)")
        conn.execute("INSERT INTO target SELECT -g, 'before' FROM generate_series(1, 1000) g")
    before = _pg_state(pg_db)
    _connections(tmp_path, postgres=pg_db)
    config = {"table": "target", "write_mode": mode, "primary_key": ["id"]}
    run = Run(tmp_path, [_source(), _writer("postgres.writer", config, "@postgres.t")])
    with _pg_connect(pg_db) as admin:
        # the writer's COPY "<target or staging table>" FROM STDIN (the extractor's is COPY (...))
        run.wait_until(lambda: run.started("load") and _pg_busy(admin, 'COPY "')())
        time.sleep(0.3)
        code, _ = run.stop(signum)
        assert not _pg_busy(admin, "")()  # nothing left running on the server
    run.assert_cancelled(code, signum, "load")
    assert _pg_state(pg_db) == before


# ---- MySQL / MariaDB --------------------------------------------------------------------------


def _my_state(db: dict[str, Any]) -> tuple[Any, ...]:
    with _my_connect(db) as conn, conn.cursor() as cur:
        cur.execute("SHOW CREATE TABLE target")
        definition = cur.fetchone()
        cur.execute("SELECT count(*), sum(id), max(payload) FROM target")
        rows = cur.fetchone()
        cur.execute("SHOW TABLES")
        tables = cur.fetchall()
    return definition, rows, tables


def _my_busy(admin: pymysql.Connection[Any], statement: str) -> Callable[[], bool]:
    """True while a statement starting with `statement` runs in admin's database."""

    def busy() -> bool:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                "AND INFO LIKE %s AND ID <> CONNECTION_ID()",
                (statement + "%",),
            )
            found = cur.fetchone()
        return bool(found and found[0])

    return busy


def _start_mysql_load(
    admin: pymysql.Connection[Any],
    pg_db: dict[str, Any],
    mysql_db: dict[str, Any],
    tmp_path: Path,
    mode: str,
) -> tuple[Run, tuple[Any, ...]]:
    """oml-run loading PostgreSQL rows into a MySQL table, mid-LOAD DATA; the table's state before."""
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE target (id bigint PRIMARY KEY, payload varchar(64) NOT NULL)")
        cur.execute(
            "INSERT INTO target WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < 1000) SELECT -i, 'before' FROM n"
        )
    before = _my_state(mysql_db)
    _connections(tmp_path, postgres=pg_db, mysql=mysql_db)
    config = {"table": "target", "write_mode": mode, "primary_key": ["id"]}
    run = Run(tmp_path, [_source(), _writer("mysql.writer", config, "@mysql.t")])
    run.wait_until(lambda: run.started("load") and _my_busy(admin, "LOAD DATA")())
    return run, before


@pytest.mark.mysql
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("mode", "signum"),
    [("append", signal.SIGTERM), ("replace", signal.SIGINT), ("upsert", signal.SIGTERM)],
)
def test_mysql_writer_cancelled_mid_load(
    pg_db: dict[str, Any], mysql_db: dict[str, Any], tmp_path: Path, mode: str, signum: int
) -> None:
    with _my_connect(mysql_db) as admin:
        run, before = _start_mysql_load(admin, pg_db, mysql_db, tmp_path, mode)
        time.sleep(0.2)
        code, _ = run.stop(signum)
        assert not _my_busy(admin, "")()  # nothing left running on the server
    run.assert_cancelled(code, signum, "load")
    assert _my_state(mysql_db) == before  # same definition, rows and tables: no staging table


@pytest.mark.mysql
@pytest.mark.postgres
def test_second_sigint_during_cleanup_does_not_crash(
    pg_db: dict[str, Any], mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    with _my_connect(mysql_db) as admin:
        run, before = _start_mysql_load(admin, pg_db, mysql_db, tmp_path, "replace")
    code, err = run.stop(signal.SIGINT, repeat=3)
    run.assert_cancelled(code, signal.SIGINT, "load")
    assert "already cancelling" in err
    assert _my_state(mysql_db) == before


# ---- DuckDB and files -------------------------------------------------------------------------


def _duckdb_state(path: Path) -> tuple[Any, ...]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT table_name, sql FROM duckdb_tables() ORDER BY 1").fetchall()
        rows = con.execute("SELECT count(*), sum(id), max(payload) FROM target").fetchone()
    return tables, rows


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("mode", "signum"), [("replace", signal.SIGTERM), ("append", signal.SIGINT)]
)
def test_duckdb_writer_cancelled_mid_load(
    pg_db: dict[str, Any], tmp_path: Path, mode: str, signum: int
) -> None:
    warehouse = tmp_path / "wh.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE target (id BIGINT PRIMARY KEY, payload VARCHAR NOT NULL)")
        con.execute("INSERT INTO target SELECT -1 - range, 'before' FROM range(1000)")
    before = _duckdb_state(warehouse)
    _connections(tmp_path, postgres=pg_db)
    config = {"path": "wh.duckdb", "table": "target", "write_mode": mode}
    run = Run(tmp_path, [_source(), _writer("duckdb.writer", config)])
    with _pg_connect(pg_db) as admin:
        run.wait_until(lambda: run.started("load") and _pg_busy(admin, "COPY (")())
        time.sleep(0.5)
        code, _ = run.stop(signum)
        assert not _pg_busy(admin, "")()
    run.assert_cancelled(code, signum, "load")
    assert _duckdb_state(warehouse) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("wh.")) == ["wh.duckdb"]


def _siblings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("driver", "name", "signum"),
    [
        ("filesystem.parquet_writer", "data.parquet", signal.SIGTERM),
        ("filesystem.csv_writer", "data.csv", signal.SIGINT),
    ],
)
def test_file_writer_cancelled_mid_write(
    pg_db: dict[str, Any], tmp_path: Path, driver: str, name: str, signum: int
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if name.endswith(".parquet"):  # an existing target stays byte-identical
        with duckdb.connect() as con:
            con.execute(f"COPY (SELECT range AS id FROM range(10)) TO '{out / name}'")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _connections(tmp_path, postgres=pg_db)
    run = Run(tmp_path, [_source(), _writer(driver, {"path": f"out/{name}"})])
    run.wait_until(lambda: any(p.name.startswith(f".{name}.") for p in out.iterdir()))
    time.sleep(0.3)
    code, _ = run.stop(signum)
    run.assert_cancelled(code, signum, "load")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no .part/.tmp sibling


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_rest_source_cancelled_between_slow_pages_keeps_the_state(
    tmp_path: Path, signum: int
) -> None:
    """A signal while an incremental rest.extractor waits on a slow API: the state file and the
    output stay exactly as the last successful run left them."""
    from runtime_helpers import run_steps, write_connections

    from osiris.runtime.records.state import state_path
    from tests.http_api import records, serve

    servers = serve()
    base, api = next(servers)
    try:
        write_connections(
            tmp_path, f"version: 1\nconnections:\n  http:\n    shop:\n      base_url: {base}\n"
        )
        read = {
            "path": "/cursor",
            "data_selector": "items",
            "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
            "incremental": {"cursor_path": "updated_at", "start_param": "updated_since"},
        }
        steps = [
            step("src", "rest.extractor", "extractor", read, connection="@http.shop"),
            step(
                "load",
                "filesystem.parquet_writer",
                "writer",
                {"path": "out.parquet"},
                needs=["src"],
            ),
        ]
        outcome, _ = run_steps(tmp_path, steps, environ={})
        assert outcome.exit_code == 0, outcome.error
        state = state_path(tmp_path, "test-pipeline", "src")
        before = (
            state.read_bytes(),
            state.stat().st_mtime_ns,
            (tmp_path / "out.parquet").read_bytes(),
        )
        api.records += records(300, start=9, day=2)  # 100 new pages of 3
        api.delay = 0.2
        api.seen.clear()
        shutil.rmtree(tmp_path / "runs")
        run = Run(tmp_path, steps)
        run.wait_until(lambda: len(api.seen) >= 3)
        code, _ = run.stop(signum)
        run.assert_cancelled(code, signum, "load")
        assert 3 <= len(api.seen) < 20  # stopped long before the last page
        after = (
            state.read_bytes(),
            state.stat().st_mtime_ns,
            (tmp_path / "out.parquet").read_bytes(),
        )
        assert after == before
        assert [p.name for p in state.parent.iterdir()] == ["src.json"]  # no temp state file
    finally:
        servers.close()


# ---- the Python API ---------------------------------------------------------------------------


def test_cancel_from_another_thread_interrupts_the_run_database(tmp_path: Path) -> None:
    """run_manifest(cancel=token): a long DuckDB query in the run database is interrupted, the
    step after it never starts, and the outcome says cancelled (exit 130)."""
    from osiris.runtime.runner import run_manifest

    slow = "SELECT count(*) AS n FROM range(1000000000000) a"
    manifest = write_manifest(
        tmp_path / "build",
        [
            step("slow", "duckdb.processor", "processor", {"query": slow}),
            step("after", "duckdb.processor", "processor", {"query": "SELECT 1"}, needs=["slow"]),
        ],
    )
    token = CancelToken()
    timer = threading.Timer(1.0, token.cancel)
    timer.start()
    started = time.monotonic()
    outcome = run_manifest(manifest, project_dir=tmp_path, environ={}, cancel=token)
    assert time.monotonic() - started < 1.0 + EXIT_SECONDS
    assert (outcome.status, outcome.exit_code) == ("cancelled", 130)
    assert [s.status for s in outcome.steps] == ["cancelled", "cancelled"]
    assert not [t for t in threading.enumerate() if t.name.startswith(("osiris-", "Thread-"))]


def test_cancel_token_fires_each_hook_once_off_the_cancelling_thread() -> None:
    token = CancelToken()
    calls: list[tuple[str, str]] = []
    fired = threading.Event()

    def hook(name: str) -> Callable[[], None]:
        def call() -> None:
            calls.append((name, threading.current_thread().name))
            fired.set()

        return call

    with token.on_cancel(hook("left")):
        pass
    with token.on_cancel(hook("inside")):
        assert token.cancel(signal.SIGTERM) is True
        assert fired.wait(5)
        assert token.cancel(signal.SIGINT) is False  # the first signal is the one that counts
    token.join()
    assert calls == [("inside", "osiris-cancel")]
    assert (token.signum, token.exit_code) == (signal.SIGTERM, 143)
    with token.on_cancel(hook("late")):  # already cancelled: called at once, on this thread
        assert calls[-1] == ("late", threading.current_thread().name)
    with pytest.raises(RunCancelled, match="SIGTERM"):
        token.raise_if_cancelled()


@pytest.mark.postgres
def test_cancelled_atomic_run_publishes_nothing(pg_db: dict[str, Any], tmp_path: Path) -> None:
    """--atomic: a writer that finished holds its staged file; cancelling the run while another
    writer loads discards both, so neither target changes."""
    from osiris.runtime.runner import run_manifest

    with _pg_connect(pg_db) as conn:
        conn.execute("CREATE TABLE target (id bigint PRIMARY KEY, payload text NOT NULL)")
        conn.execute("INSERT INTO target SELECT -g, 'before' FROM generate_series(1, 1000) g")
    before = _pg_state(pg_db)
    _connections(tmp_path, postgres=pg_db)
    small = step(
        "small",
        "postgres.extractor",
        "extractor",
        {"query": "SELECT 1 AS id"},
        connection="@postgres.t",
    )
    csv = step("csv", "filesystem.csv_writer", "writer", {"path": "out/small.csv"}, needs=["small"])
    manifest = write_manifest(
        tmp_path / "build",
        [
            small,
            csv,
            _source(),
            _writer("postgres.writer", {"table": "target", "write_mode": "append"}, "@postgres.t"),
        ],
    )
    token = CancelToken()
    csv_finished = threading.Event()

    class CancelMidLoad:
        def on_event(self, event: dict[str, Any]) -> None:
            if event["event"] == "step_finished" and event["step"] == "csv":
                csv_finished.set()

        def on_progress(self, step_id: str, rows: int) -> None:
            if step_id == "load" and rows > 0 and csv_finished.is_set():
                token.cancel(signal.SIGINT)

        def on_warning(self, message: str) -> None:
            return None

    outcome = run_manifest(
        manifest,
        project_dir=tmp_path,
        environ={},
        atomic=True,
        cancel=token,
        observer=CancelMidLoad(),
        max_parallel=2,
    )
    assert csv_finished.is_set()
    assert (outcome.status, outcome.exit_code) == ("cancelled", 130)
    assert {s.step_id: s.status for s in outcome.steps}["csv"] == "ok"
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor its staged sibling
    assert _pg_state(pg_db) == before
    assert outcome.run_dir is not None
    status = json.loads((outcome.run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["status"] == "cancelled" and status["published_steps"] == []
