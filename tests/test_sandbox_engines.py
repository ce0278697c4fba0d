"""--engine local-sandbox and e2b: the same runtime in a separate venv (or an e2b sandbox through the
real SDK against a local stand-in), parity with the local engine, secrets only as environment,
cancel, and the SDK calls bound to the installed SDK's signatures."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest
from http_api import serve
from runtime_helpers import step, write_connections, write_manifest

from osiris.runtime.cancel import CancelToken
from osiris.runtime.engines.local_sandbox import LocalSandbox, ensure_venv, venv_python
from osiris.runtime.engines.port import Limits
from osiris.runtime.engines.sandboxed import SandboxOptions, run_sandboxed
from osiris.runtime.engines.wheel import runtime_wheel, wheel_tag
from osiris.runtime.runner import run_manifest

# The venvs outlive the session (a cold build installs duckdb and pyarrow: about a minute);
# only the one for the current runtime sources is kept.
SANDBOX_CACHE = Path(
    os.environ.get("OSIRIS_TEST_SANDBOX_CACHE") or Path.home() / ".cache" / "osiris-test-sandbox"
)
ORDERS = "id,customer,amount\n1,ann,10.5\n2,bob,3\n3,ann,7.25\n4,cy,1\n"


@pytest.fixture(scope="session")
def venvs() -> Path:
    """The sandbox venv cache, with the current runtime wheel installed (built once)."""
    root = SANDBOX_CACHE / "sandbox" / "venvs"  # where cache_dir() = SANDBOX_CACHE puts them
    wheel = runtime_wheel()
    if root.is_dir():
        for old in root.iterdir():
            if not old.name.startswith((wheel_tag(wheel), f".{wheel_tag(wheel)}")):
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    ensure_venv(wheel, (), root)
    return root


class Spy(LocalSandbox):
    """A LocalSandbox that keeps its directory and records what went into and out of it."""

    def __init__(self, venvs: Path, **kwargs: Any) -> None:
        super().__init__(keep=True, venvs=venvs, **kwargs)
        self.env: dict[str, str] = {}
        self.output: list[str] = []
        self.pids: list[int] = []

    def start(self, argv: list[str], env: Mapping[str, str], on_stdout: Any, on_stderr: Any) -> Any:
        self.env = self.environment(env)

        def out(chunk: str) -> None:
            self.output.append(chunk)
            on_stdout(chunk)

        def err(chunk: str) -> None:
            self.output.append(chunk)
            on_stderr(chunk)

        process = super().start(argv, env, out, err)
        self.pids.append(process.pid)
        return process


def _files_steps() -> list[dict[str, Any]]:
    return [
        step("orders", "filesystem.csv_extractor", "extractor", {"path": "data/orders.csv"}),
        step(
            "totals",
            "duckdb.processor",
            "processor",
            {
                "query": "SELECT customer, sum(amount) AS total, count(*) AS n FROM orders "
                "GROUP BY customer ORDER BY customer"
            },
            needs=["orders"],
        ),
        step(
            "csv", "filesystem.csv_writer", "writer", {"path": "out/totals.csv"}, needs=["totals"]
        ),
        step(
            "parquet",
            "filesystem.parquet_writer",
            "writer",
            {"path": "out/totals.parquet"},
            needs=["totals"],
        ),
        step(
            "warehouse",
            "duckdb.writer",
            "writer",
            {"table": "totals"},
            needs=["totals"],
            connection="@duckdb.wh",
        ),
    ]


def _files_project(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "data" / "orders.csv").write_text(ORDERS, encoding="utf-8")
    write_connections(
        root, "version: 1\nconnections:\n  duckdb:\n    wh:\n      path: out/warehouse.duckdb\n"
    )
    write_manifest(root / "build", _files_steps())
    return root


def _sequence(run_dir: Path) -> list[tuple[str, str | None]]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [(e["event"], e["step"]) for e in map(json.loads, lines)]


def _rows(sql: str, database: Path | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(database) if database else ":memory:", read_only=bool(database))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _outputs(project: Path) -> dict[str, Any]:
    out = project / "out"
    return {
        "csv": (out / "totals.csv").read_bytes(),
        "parquet": _rows(f"SELECT * FROM read_parquet('{out / 'totals.parquet'}')"),
        "duckdb": _rows("SELECT * FROM totals ORDER BY ALL", out / "warehouse.duckdb"),
    }


def test_files_and_duckdb_parity_with_the_local_engine(tmp_path: Path, venvs: Path) -> None:
    local = _files_project(tmp_path / "local")
    boxed = _files_project(tmp_path / "boxed")
    here = run_manifest(local / "build", project_dir=local, environ={}, max_parallel=1)
    spy = Spy(venvs)
    there = run_sandboxed(
        spy, boxed / "build", SandboxOptions(project_dir=boxed, max_parallel=1), environ={}
    )
    shutil.rmtree(spy.root or "")
    assert (here.status, here.exit_code) == ("ok", 0), here.error
    assert (there.status, there.exit_code) == ("ok", 0), there.error
    assert there.run_dir is not None and there.run_dir.parent == boxed / "runs"
    assert there.run_dir.name == there.run_id
    assert _outputs(boxed) == _outputs(local)
    assert _rows("SELECT count(*) FROM totals", boxed / "out" / "warehouse.duckdb") == [(3,)]
    assert _sequence(there.run_dir) == _sequence(here.run_dir)
    assert [(s.step_id, s.status, s.rows_out) for s in there.steps] == [
        (s.step_id, s.status, s.rows_out) for s in here.steps
    ]
    started = json.loads((there.run_dir / "events.jsonl").read_text().splitlines()[0])
    assert started["engine"] == "local-sandbox"
    for record in ("status.json", "metrics.json", "run.log", "manifest.yaml"):
        assert (there.run_dir / record).is_file(), record
    assert json.loads((there.run_dir / "status.json").read_text())["status"] == "ok"


def test_postgres_writer_parity_and_the_canary_password(
    tmp_path: Path, venvs: Path, pg_db: dict[str, Any]
) -> None:
    import psycopg

    canary = f"canary-{uuid.uuid4().hex}"
    table = f"e2b_parity_{uuid.uuid4().hex[:8]}"
    steps = [
        step("orders", "filesystem.csv_extractor", "extractor", {"path": "data/orders.csv"}),
        step(
            "load",
            "postgres.writer",
            "writer",
            {"table": table, "write_mode": "replace"},
            needs=["orders"],
            connection="@postgres.wh",
        ),
    ]
    connections = (
        "version: 1\nconnections:\n  postgres:\n    wh:\n"
        f"      host: {pg_db['host']}\n      port: {pg_db['port']}\n"
        f"      database: {pg_db['database']}\n      user: {pg_db['user']}\n"
        "      password: ${PG_CANARY}\n"
    )
    runs: list[tuple[Any, list[tuple[Any, ...]]]] = []
    spy = Spy(venvs)
    for engine in ("local", "local-sandbox"):
        project = tmp_path / engine
        (project / "data").mkdir(parents=True)
        (project / "data" / "orders.csv").write_text(ORDERS, encoding="utf-8")
        write_connections(project, connections)
        (project / "secrets.env").write_text(f"PG_CANARY={canary}\n", encoding="utf-8")
        write_manifest(project / "build", steps)
        environ = {"UNRELATED_SECRET": f"{canary}-unrelated"}
        if engine == "local":
            outcome = run_manifest(
                project / "build",
                project_dir=project,
                secrets_file=project / "secrets.env",
                environ=environ,
            )
        else:
            options = SandboxOptions(project_dir=project, secrets_file=project / "secrets.env")
            outcome = run_sandboxed(spy, project / "build", options, environ=environ)
        assert outcome.exit_code == 0, outcome.error
        with psycopg.connect(
            host=pg_db["host"], port=pg_db["port"], user=pg_db["user"], dbname=pg_db["database"]
        ) as con:
            rows = con.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
            con.execute(f'DROP TABLE "{table}"')
        runs.append((outcome, rows))
    (local, local_rows), (boxed, boxed_rows) = runs
    assert boxed_rows == local_rows and len(boxed_rows) == 4
    assert _sequence(boxed.run_dir) == _sequence(local.run_dir)
    # The password reached the sandboxed process only through its environment ...
    assert spy.env["PG_CANARY"] == canary
    assert not any(canary in value for k, value in spy.env.items() if k != "PG_CANARY")
    assert set(spy.env) == {
        "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONDONTWRITEBYTECODE", "OSIRIS_CACHE_DIR",
        "PG_CANARY",
    }  # fmt: skip
    # ... and is in no file of the sandbox, no record, no output.
    assert spy.root is not None
    scanned = [p for p in spy.root.rglob("*") if p.is_file()]
    scanned += [p for p in (tmp_path / "local-sandbox" / "runs").rglob("*") if p.is_file()]
    assert len(scanned) > 10
    try:
        for path in scanned:
            assert canary.encode() not in path.read_bytes(), path
        assert canary not in "".join(spy.output)
        assert "${PG_CANARY}" in (spy.root / "project" / "osiris_connections.yaml").read_text()
    finally:
        shutil.rmtree(spy.root)


def test_an_api_schema_widened_mid_stream_restarts_the_same_way_in_the_sandbox(
    tmp_path: Path, venvs: Path
) -> None:
    server = serve()
    base, api = next(server)
    try:  # page 3 of 4 brings a field: one restart, replaying pages 1-2
        api.pages = [[{"id": p * 2 + k} | ({"late": p} if p >= 2 else {}) for k in range(2)]
                     for p in range(4)]  # fmt: skip
        config = {
            "path": "/paged",
            "data_selector": "data",
            "paginator": {"type": "page_number", "total_path": "meta.total_pages"},
            "batch_size": 2,
        }
        steps = [
            step("src", "rest.extractor", "extractor", config, connection="@http.api"),
            step(
                "out", "filesystem.parquet_writer", "writer", {"path": "o.parquet"}, needs=["src"]
            ),
        ]
        outcomes = []
        for engine in ("local", "local-sandbox"):
            project = tmp_path / engine
            project.mkdir()
            write_connections(
                project, f"version: 1\nconnections:\n  http:\n    api: {{base_url: {base}}}\n"
            )
            write_manifest(project / "build", steps)
            if engine == "local":
                outcome = run_manifest(project / "build", project_dir=project, environ={})
            else:
                spy = Spy(venvs)
                outcome = run_sandboxed(
                    spy, project / "build", SandboxOptions(project_dir=project), environ={}
                )
                shutil.rmtree(spy.root or "")
            assert outcome.exit_code == 0, outcome.error
            assert outcome.run_dir is not None
            log = (outcome.run_dir / "run.log").read_text(encoding="utf-8")
            rows = _rows(f"SELECT * FROM read_parquet('{project / 'o.parquet'}') ORDER BY id")
            outcomes.append((rows, [s.rows_out for s in outcome.steps]))
            assert "page 3 brought field 'late'; restarting the load" in log
            assert "replaying 4 record(s) of 2 page(s)" in log
        assert outcomes[0] == outcomes[1]
        assert outcomes[0] == (
            [(i, None) for i in range(4)] + [(i, i // 2) for i in range(4, 8)],
            [8, 8],
        )
        assert [s.query.get("page", "1") for s in api.seen] == ["1", "2", "3", "4"] * 2
    finally:
        server.close()


def test_cancel_kills_the_sandboxed_run_and_reports_cancelled(tmp_path: Path, venvs: Path) -> None:
    project = tmp_path
    (project / "data").mkdir()
    (project / "data" / "orders.csv").write_text(ORDERS, encoding="utf-8")
    slow = "SELECT sum(hash(a.range * b.range)) AS h FROM range(100000) a, range(100000) b"
    steps = [
        step("orders", "filesystem.csv_extractor", "extractor", {"path": "data/orders.csv"}),
        step("slow", "duckdb.processor", "processor", {"query": slow}, needs=["orders"]),
        step("out", "filesystem.csv_writer", "writer", {"path": "out/h.csv"}, needs=["slow"]),
    ]
    write_manifest(project / "build", steps)
    cancel = CancelToken()

    class Observer:
        def on_event(self, event: dict[str, Any]) -> None:
            if event["event"] == "step_started" and event["step"] == "slow":
                threading.Timer(0.5, cancel.cancel).start()

        def on_progress(self, step_id: str, rows: int) -> None: ...

        def on_warning(self, message: str) -> None: ...

    spy = Spy(venvs)
    spy.keep = False
    outcome = run_sandboxed(
        spy, project / "build", SandboxOptions(project_dir=project), observer=Observer(),
        cancel=cancel, environ={},
    )  # fmt: skip
    assert (outcome.status, outcome.exit_code) == ("cancelled", 130), outcome.error
    assert spy.root is not None and not spy.root.exists()  # the sandbox is gone
    with pytest.raises(ProcessLookupError):
        os.kill(spy.pids[0], 0)
    assert outcome.run_dir is not None
    status = json.loads((outcome.run_dir / "status.json").read_text())
    assert status["status"] == "cancelled"
    assert _sequence(outcome.run_dir)[-1] == ("run_finished", None)
    assert not (project / "out" / "h.csv").exists()


def test_a_path_outside_the_project_is_refused_at_start(tmp_path: Path, venvs: Path) -> None:
    write_manifest(
        tmp_path / "build",
        [step("orders", "filesystem.csv_extractor", "extractor", {"path": "/etc/hostname"})],
    )
    spy = Spy(venvs)
    outcome = run_sandboxed(spy, tmp_path / "build", SandboxOptions(project_dir=tmp_path))
    assert outcome.exit_code == 5
    assert "not inside the project" in (outcome.error or "")
    assert spy.root is None  # no sandbox was made


def test_the_runtime_wheel_holds_only_the_runtime_and_is_cached() -> None:
    wheel = runtime_wheel()
    assert runtime_wheel() == wheel
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = next(n for n in names if n.endswith("METADATA"))
        metadata = archive.read(meta).decode()
    packages = {n.split("/")[1] for n in names if n.startswith("osiris/")}
    assert packages == {"runtime", "specs"}
    assert "osiris/runtime/engines/remote.py" in names
    assert "osiris/specs/manifest.schema.json" in names
    assert not any("compiler" in n or "/oml/" in n for n in names)
    assert f"Requires-Dist: duckdb=={duckdb.__version__}" in metadata
    assert 'extra == "postgres"' in metadata


def test_osiris_run_passes_engine_local_sandbox_through(tmp_path: Path, venvs: Path) -> None:
    project = tmp_path / "demo"
    init = subprocess.run(
        [sys.executable, "-c", "from osiris.compiler.cli import osiris_main; osiris_main()",
         "init", str(project)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    env["OSIRIS_CACHE_DIR"] = str(SANDBOX_CACHE)  # the session's venv
    done = subprocess.run(
        [sys.executable, "-c", "from osiris.compiler.cli import osiris_main; osiris_main()",
         "run", "pipeline.oml", "--engine", "local-sandbox", "--format", "json"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "ok"
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == project / "runs"
    assert json.loads((run_dir / "events.jsonl").read_text().splitlines()[0])["engine"] == (
        "local-sandbox"
    )
    assert (project / "output" / "revenue.parquet").is_file()


# ---- e2b, through the real SDK ------------------------------------------------------------


@pytest.fixture
def stand_in(tmp_path: Path, venvs: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    pytest.importorskip("e2b")
    from e2b_standin import StandIn

    home = tmp_path / "sandbox-home"
    home.mkdir()
    venv = venvs / wheel_tag(runtime_wheel())
    with StandIn("e2b_good_key", home, venv_python(venv).parent) as server:
        for name, value in server.environ().items():
            monkeypatch.setenv(name, value)
        yield server


def _e2b_cli(
    project: Path, server: Any, key: str | None, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSIRIS_", "E2B_"))}
    env.update(server.environ())
    if key is not None:
        env["E2B_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "osiris.runtime.cli", str(project / "build"), "--engine", "e2b",
         "--project-dir", str(project), *extra],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_e2b_rejected_key_is_exit_5_in_one_line_without_the_key(
    tmp_path: Path, stand_in: Any
) -> None:
    project = _files_project(tmp_path)
    done = _e2b_cli(project, stand_in, "e2b_wrong_key_4f1d")
    assert done.returncode == 5, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "rejected E2B_API_KEY" in done.stderr
    assert "e2b_wrong_key_4f1d" not in done.stderr + done.stdout
    assert stand_in.record.api_keys == ["e2b_wrong_key_4f1d"]  # the SDK did ask the API
    assert not (project / "runs").exists()
    missing = _e2b_cli(project, stand_in, None)
    assert missing.returncode == 5
    assert missing.stderr.strip().count("\n") == 0 and "E2B_API_KEY" in missing.stderr


def test_e2b_refuses_localhost_connections_before_creating_a_sandbox(
    tmp_path: Path, stand_in: Any
) -> None:
    write_connections(
        tmp_path,
        "version: 1\nconnections:\n  postgres:\n    wh:\n      host: 127.0.0.1\n"
        "      database: d\n      user: u\n      password: ${PW:-x}\n",
    )
    write_manifest(
        tmp_path / "build",
        [step("e", "postgres.extractor", "extractor", {"table": "t"}, connection="@postgres.wh")],
    )
    done = _e2b_cli(tmp_path, stand_in, "e2b_good_key")
    assert done.returncode == 5
    assert done.stderr.strip().count("\n") == 0
    assert "localhost" in done.stderr and "@postgres.wh" in done.stderr
    assert stand_in.record.created == []


def test_e2b_whole_run_through_the_sdk_and_the_stand_in(
    tmp_path: Path, stand_in: Any, venvs: Path
) -> None:
    from osiris.runtime.engines.e2b_sandbox import E2BSandbox

    local = _files_project(tmp_path / "local")
    boxed = _files_project(tmp_path / "boxed")
    here = run_manifest(local / "build", project_dir=local, environ={}, max_parallel=1)
    port = E2BSandbox(
        "e2b_good_key",
        Limits(timeout_s=300, template="osiris-test"),
        workdir=str(stand_in.home / "osiris"),
        wheel_dir=str(stand_in.home / "wheel"),
        venv_dir=str(venvs / wheel_tag(runtime_wheel())),
    )
    events: list[str] = []

    class Observer:
        def on_event(self, event: dict[str, Any]) -> None:
            events.append(event["event"])

        def on_progress(self, step_id: str, rows: int) -> None: ...

        def on_warning(self, message: str) -> None: ...

    options = SandboxOptions(project_dir=boxed, max_parallel=1)
    there = run_sandboxed(port, boxed / "build", options, observer=Observer(), environ={})
    assert (there.status, there.exit_code) == ("ok", 0), there.error
    assert _outputs(boxed) == _outputs(local)
    assert there.run_dir is not None and _sequence(there.run_dir) == _sequence(here.run_dir)
    assert events[0] == "run_started" and events[-1] == "run_finished"  # streamed live
    created = stand_in.record.created
    assert len(created) == 1 and created[0]["templateID"] == "osiris-test"
    assert created[0]["metadata"]["osiris_pipeline"] == "test-pipeline"
    assert stand_in.record.killed == ["standin-sandbox"]
    run = stand_in.record.commands[-1]
    assert run["envs"] == {}  # no connection, no secret
    assert run["cwd"] == str(stand_in.home / "osiris")


def test_every_e2b_sdk_call_binds_to_the_installed_sdk() -> None:
    """The calls runtime/engines/e2b_sandbox.py makes, with the same arguments."""
    e2b = pytest.importorskip("e2b")
    from e2b.sandbox_sync.commands.command import Commands
    from e2b.sandbox_sync.commands.command_handle import CommandHandle
    from e2b.sandbox_sync.filesystem.filesystem import Filesystem

    inspect.signature(e2b.Sandbox.create).bind(
        template="t", timeout=60, metadata={"a": "b"}, api_key="k"
    )
    inspect.signature(Filesystem.write).bind(None, "/p", b"data", use_octet_stream=True)
    inspect.signature(Filesystem.read).bind(None, "/p", format="bytes")
    run = inspect.signature(Commands.run)
    run.bind(None, "cmd", timeout=900)
    run.bind(None, "cmd", background=True, envs={}, cwd="/w", timeout=0, retain_output=False)
    inspect.signature(CommandHandle.wait).bind(None, on_stdout=print, on_stderr=print)
    assert isinstance(inspect.getattr_static(CommandHandle, "pid"), property)
    inspect.signature(e2b.Sandbox.kill).bind(None)
    for name in (
        "AuthenticationException", "CommandExitException", "NotFoundException",
        "InvalidArgumentException", "RateLimitException",
    ):  # fmt: skip
        assert issubclass(getattr(e2b, name), Exception), name
    assert issubclass(e2b.CommandExitException, e2b.SandboxException)
    assert {"exit_code", "stderr"} <= set(vars(e2b.CommandExitException("", "", 3, None)))


def _slow_project(project: Path) -> Path:
    (project / "data").mkdir(parents=True, exist_ok=True)
    (project / "data" / "orders.csv").write_text(ORDERS, encoding="utf-8")
    slow = "SELECT sum(hash(a.range * b.range)) AS h FROM range(100000) a, range(100000) b"
    return write_manifest(
        project / "build",
        [
            step("orders", "filesystem.csv_extractor", "extractor", {"path": "data/orders.csv"}),
            step("slow", "duckdb.processor", "processor", {"query": slow}, needs=["orders"]),
            step("out", "filesystem.csv_writer", "writer", {"path": "out/h.csv"}, needs=["slow"]),
        ],
    )


def test_ctrl_c_on_oml_run_cancels_the_sandboxed_run(tmp_path: Path, venvs: Path) -> None:
    import signal

    project = tmp_path / "p"
    _slow_project(project)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    env.update(OSIRIS_CACHE_DIR=str(SANDBOX_CACHE), TMPDIR=str(temp), OSIRIS_PROGRESS_INTERVAL="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "osiris.runtime.cli", "build", "--engine", "local-sandbox"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("start") and "slow" in line:
            break
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "cancel" in err
    assert [p.name for p in temp.iterdir() if p.name.startswith("osiris-sandbox-")] == []
    (run_dir,) = (project / "runs").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "cancelled"


def test_the_time_limit_stops_the_sandboxed_run(tmp_path: Path, venvs: Path) -> None:
    _slow_project(tmp_path)
    spy = Spy(venvs)
    spy.keep = False
    options = SandboxOptions(project_dir=tmp_path, limits=Limits(timeout_s=2))
    outcome = run_sandboxed(spy, tmp_path / "build", options, environ={})
    assert (outcome.status, outcome.exit_code) == ("failed", 4)
    assert "did not finish within 2 s" in (outcome.error or "")
    assert spy.root is not None and not spy.root.exists()


def test_e2b_cancel_interrupts_the_run_and_kills_the_sandbox(
    tmp_path: Path, stand_in: Any, venvs: Path
) -> None:
    from osiris.runtime.engines.e2b_sandbox import E2BSandbox

    _slow_project(tmp_path)
    cancel = CancelToken()

    class Observer:
        def on_event(self, event: dict[str, Any]) -> None:
            if event["event"] == "step_started" and event["step"] == "slow":
                threading.Timer(0.5, cancel.cancel).start()

        def on_progress(self, step_id: str, rows: int) -> None: ...

        def on_warning(self, message: str) -> None: ...

    port = E2BSandbox(
        "e2b_good_key",
        workdir=str(stand_in.home / "osiris"),
        wheel_dir=str(stand_in.home / "wheel"),
        venv_dir=str(venvs / wheel_tag(runtime_wheel())),
    )
    outcome = run_sandboxed(
        port, tmp_path / "build", SandboxOptions(project_dir=tmp_path), observer=Observer(),
        cancel=cancel, environ={},
    )  # fmt: skip
    assert (outcome.status, outcome.exit_code) == ("cancelled", 130), outcome.error
    assert any("kill -INT" in " ".join(c["args"]) for c in stand_in.record.commands)
    assert stand_in.record.killed == ["standin-sandbox"]
    assert outcome.run_dir is not None
    assert json.loads((outcome.run_dir / "status.json").read_text())["status"] == "cancelled"


def test_sandbox_connections_send_references_and_only_the_used_aliases(tmp_path: Path) -> None:
    from osiris.runtime.connections import ConnectionResolver, local_hosts, sandbox_connections
    from osiris.runtime.secrets import Redactor

    path = write_connections(
        tmp_path,
        "version: 1\nconnections:\n  postgres:\n    wh:\n      host: db.example.com\n"
        "      database: d\n      user: ${PGUSER:-osiris}\n      password: literal-secret-1\n"
        "    other:\n      host: x\n      database: d\n      user: u\n      password: ${OTHER}\n",
    )
    resolver = ConnectionResolver(
        path, redactor=Redactor(), environ={"OTHER": "other-secret", "PGUSER": "alice"}
    )
    sent = sandbox_connections(resolver, ["@postgres.wh"])
    assert "literal-secret-1" not in sent.text and "other" not in sent.text
    assert "${PGUSER:-osiris}" in sent.text
    assert sent.environ == {
        "PGUSER": "alice",
        "OSIRIS_SECRET_POSTGRES_WH_PASSWORD": "literal-secret-1",
    }
    (tmp_path / "api").mkdir()
    api = write_connections(
        tmp_path / "api",
        "version: 1\nconnections:\n  http:\n    shop:\n      base_url: https://api.example.com\n"
        "      auth: {type: bearer, token: literal-token-77}\n",
    )
    sent = sandbox_connections(ConnectionResolver(api, redactor=Redactor()), ["@http.shop"])
    assert "literal-token-77" not in sent.text  # a member of an object field travels as a variable
    assert sent.environ == {"OSIRIS_SECRET_HTTP_SHOP_AUTH_TOKEN": "literal-token-77"}
    assert "${OSIRIS_SECRET_HTTP_SHOP_AUTH_TOKEN}" in sent.text
    assert local_hosts({"host": "localhost"}) == ["host"]
    assert local_hosts({"dsn": "postgresql://u:p@127.0.0.1:5432/d"}) == ["dsn"]
    assert local_hosts({"dsn": "host=db.example.com dbname=d", "host": "db.example.com"}) == []


def test_a_cancel_during_the_venv_build_stops_it_at_once(tmp_path: Path) -> None:
    import time

    project = _files_project(tmp_path / "p")
    cancel = CancelToken()
    port = LocalSandbox(venvs=tmp_path / "venvs")  # cold: python -m venv, then pip
    threading.Timer(1.0, cancel.cancel).start()
    started = time.monotonic()
    outcome = run_sandboxed(
        port, project / "build", SandboxOptions(project_dir=project), cancel=cancel, environ={}
    )
    assert (outcome.status, outcome.exit_code) == ("cancelled", 130), outcome.error
    assert time.monotonic() - started < 20
    assert port.installer is not None and port.installer.returncode is not None
    assert [p.name for p in (tmp_path / "venvs").iterdir() if not p.name.endswith(".lock")] == []
    assert port.root is not None and not port.root.exists()
    assert not (project / "runs").exists()


def test_pip_killed_mid_install_leaves_its_temp_files_in_the_build_scratch(
    tmp_path: Path,
) -> None:
    """pip extracts certifi's cacert.pem into $TMPDIR and removes it at exit; a cancel kills it
    first. The installer's children get a scratch $TMPDIR of their own, removed by the caller."""
    import tempfile

    from osiris.runtime.engines.local_sandbox import SandboxError, _pip

    before = set(os.listdir(tempfile.gettempdir()))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    killed_pip = (
        "import os, signal, tempfile; tempfile.mkstemp(suffix='cacert.pem'); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    with pytest.raises(SandboxError):
        _pip([sys.executable, "-c", killed_pip], None, scratch)
    assert [p.name.endswith("cacert.pem") for p in scratch.iterdir()] == [True]
    assert set(os.listdir(tempfile.gettempdir())) == before


def test_the_memory_limit_applies_to_the_sandboxed_process(tmp_path: Path, venvs: Path) -> None:
    project = _files_project(tmp_path)
    spy = Spy(venvs, limits=Limits(memory_mib=64))  # too little for Python with DuckDB
    spy.keep = False
    outcome = run_sandboxed(spy, project / "build", SandboxOptions(project_dir=project), environ={})
    # DuckDB cannot even be loaded ("failed to map segment from shared object")
    assert outcome.exit_code in (1, 4) and outcome.status == "failed", outcome.error
    roomy = Spy(venvs, limits=Limits(memory_mib=4096))
    roomy.keep = False
    assert (
        run_sandboxed(roomy, project / "build", SandboxOptions(project_dir=project)).exit_code == 0
    )


def test_venvs_of_other_runtime_versions_unused_for_30_days_are_removed(venvs: Path) -> None:
    old, recent = venvs / "0000000000000000", venvs / "0000000000000001"
    for venv in (old, recent):
        (venv / "bin").mkdir(parents=True)
        (venv / ".osiris-extras").write_text("runtime\n")
    os.utime(old / ".osiris-extras", (0, 0))
    try:
        current = ensure_venv(runtime_wheel(), (), venvs)
        assert not old.exists() and recent.is_dir() and current.is_dir()
    finally:
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(recent, ignore_errors=True)
