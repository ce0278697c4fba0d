"""Secrets in run records (structural redaction, short secrets) and secrets that rotate during a run.

Real oml-run subprocesses and in-process runs against real MariaDB users created by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from runtime_helpers import read_events, run_cli, step, write_connections, write_manifest

from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.runner import run_manifest
from osiris.runtime.secrets import Redactor

RECORDS = ("status.json", "metrics.json", "events.jsonl", "run.log")


@pytest.fixture
def mysql_user(mysql_db: dict[str, Any]) -> Iterator[Any]:
    """make(password) -> a MariaDB user with that password and every right on the test database
    (dropped afterwards); yields make, and make.admin / make.db for the test."""
    admin = pymysql.connect(**mysql_db, autocommit=True)
    users: list[str] = []

    def make(password: str) -> str:
        name = f"osiris_u_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cur:
            cur.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL ON `{mysql_db['database']}`.* TO '{name}'@'%'")
        users.append(name)
        return name

    make.admin = admin  # type: ignore[attr-defined]
    make.db = mysql_db  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        with admin.cursor() as cur:
            for name in users:
                cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        admin.close()


def set_password(admin: Any, user: str, password: str) -> None:
    with admin.cursor() as cur:
        cur.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", (password,))


def connections_yaml(db: dict[str, Any], user: str, pg: dict[str, Any] | None = None) -> str:
    text = (
        "version: 1\nconnections:\n  mysql:\n"
        f"    app: {{host: '{db['host']}', port: {db['port']}, database: '{db['database']}', "
        f"user: '{user}', password: '${{APP_PASSWORD}}'}}\n"
        f"    admin: {{host: '{db['host']}', port: {db['port']}, database: '{db['database']}', "
        f"user: '{db['user']}', password: '{db['password']}'}}\n"
    )
    if pg is not None:  # trust-authenticated here: the password is only there to be redacted
        text += (
            "  postgres:\n"
            f"    app: {{host: '{pg['host']}', port: {pg['port']}, database: '{pg['database']}', "
            f"user: '{pg['user']}', password: '${{APP_PASSWORD}}'}}\n"
        )
    return text


def check_records(run_dir: Path) -> dict[str, Any]:
    """Every record is valid JSON with intact keys; returns status.json."""
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        assert {"event", "run_id", "step", "ts"} <= set(event), event
    json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    status: dict[str, Any] = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    return status


# ---------------------------------------------------------------- structural redaction


@pytest.mark.parametrize("password", ["ok", "postgres", "1", "e"])
def test_records_stay_intact_whatever_the_password(
    tmp_path: Path, mysql_user: Any, pg_db: dict[str, Any], password: str
) -> None:
    """The four reproductions: 'ok' masked statuses, 'postgres' masked (and so disclosed) driver
    names, '1' broke metrics.json, 'e' plus a failing step crashed the run (KeyError 'event')."""
    db = mysql_user.db
    user = mysql_user(password)
    with mysql_user.admin.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20))")
        cur.execute("INSERT INTO orders VALUES (1, 'ok'), (2, 'e'), (11, 'postgres')")
    write_connections(tmp_path, connections_yaml(db, user, pg_db))
    (tmp_path / "team.env").write_text(f"APP_PASSWORD={password}\n")
    steps = [
        step("my", "mysql.extractor", "extractor", {"table": "orders"}, connection="@mysql.app"),
        step("my-out", "filesystem.csv_writer", "writer", {"path": "my.csv"}, inputs={"df": "my"}),
        step(
            "pg",
            "postgres.extractor",
            "extractor",
            {"query": "SELECT 1 AS one, 'ok' AS status"},
            connection="@postgres.app",
        ),
        step("pg-out", "filesystem.csv_writer", "writer", {"path": "pg.csv"}, inputs={"df": "pg"}),
    ]
    failing = step(
        "broken",
        "mysql.extractor",
        "extractor",
        {"table": "no_such_table"},
        connection="@mysql.app",
    )
    for fails in (False, True):
        project = tmp_path / ("failing" if fails else "passing")
        project.mkdir()
        for name in ("osiris_connections.yaml", "team.env"):
            (project / name).write_bytes((tmp_path / name).read_bytes())
        write_manifest(project / "build", steps + ([failing] if fails else []))
        result = run_cli(["build", "--secrets-file", "team.env"], cwd=project)
        assert result.returncode == (ExitCode.RUN_FAILED if fails else ExitCode.OK), result.stderr
        assert "internal error" not in result.stdout + result.stderr
        (run_dir,) = (project / "runs").iterdir()
        status = check_records(run_dir)
        assert status["status"] == ("failed" if fails else "ok")
        assert status["pipeline"] == "test-pipeline" and status["exit_code"] == result.returncode
        events = read_events(run_dir)
        started = {e["step"]: e["driver"] for e in events if e["event"] == "step_started"}
        assert started["my"] == "mysql.extractor" and started["pg"] == "postgres.extractor"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for step_id in ("my", "my-out", "pg", "pg-out"):
            assert metrics["steps"][step_id]["status"] == "ok"
        assert metrics["steps"]["my"]["rows_out"] == 3
        assert (project / "my.csv").read_text().splitlines()[1:] == ["1,ok", "2,e", "11,postgres"]
        # the short password warned about, never printed (a whole word: 'e' in 'secret' stays)
        warnings = [w for w in status["warnings"] if "shorter than" in w]
        if len(password) < 8:
            assert warnings and "@mysql.app" in warnings[0] and "password" in warnings[0]
            assert f" {password} " not in f" {warnings[0]} "
        if fails:
            assert status["failed_step"] == "broken"
            assert "no_such_table" in status["error"]
            assert events[-1]["event"] == "run_finished" and events[-1]["status"] == "failed"
            assert "doesn't exist" in result.stderr
        else:
            # nothing in a successful run is free text that holds the password
            for name in RECORDS:
                assert "***" not in (run_dir / name).read_text(), name
            assert "***" not in result.stdout + result.stderr


def test_long_password_in_an_error_message_is_masked_everywhere(
    tmp_path: Path, mysql_user: Any
) -> None:
    """A server message quoting the password (a bad value in a load) is masked in every record and
    on stdout/stderr; everything else in the message stays readable."""
    password = f"Rot-{uuid.uuid4().hex[:12]}"
    db = mysql_user.db
    user = mysql_user(password)
    with mysql_user.admin.cursor() as cur:
        cur.execute("CREATE TABLE amounts (n INT NOT NULL)")
    write_connections(tmp_path, connections_yaml(db, user))
    (tmp_path / "team.env").write_text(f"APP_PASSWORD={password}\n")
    (tmp_path / "in.csv").write_text(f"n\n{password}\n")
    write_manifest(
        tmp_path / "build",
        [
            step("src", "filesystem.csv_extractor", "extractor", {"path": "in.csv"}),
            step(
                "load",
                "mysql.writer",
                "writer",
                {"table": "amounts"},
                inputs={"df": "src"},
                connection="@mysql.app",
            ),
        ],
    )
    outputs = ""
    for fmt in ("text", "json"):
        result = run_cli(["build", "--secrets-file", "team.env", "--format", fmt], cwd=tmp_path)
        assert result.returncode == ExitCode.RUN_FAILED, result.stderr
        outputs += result.stdout + result.stderr
    assert password not in outputs and "***" in outputs and "amounts" in outputs
    for run_dir in (tmp_path / "runs").iterdir():
        status = check_records(run_dir)
        assert status["failed_step"] == "load" and "***" in status["error"]
        for name in RECORDS:
            text = (run_dir / name).read_text()
            assert password not in text, name
            assert "***" in text or name == "metrics.json", name


def test_short_secrets_are_masked_only_as_whole_words() -> None:
    redactor = Redactor()
    redactor.register("ok")
    redactor.register("postgres-long-enough")
    redactor.register("9876")
    text = '{"status": "ok"} token ok; ok. pin=9876 19876 postgres-long-enough.extractor'
    assert redactor.redact(text) == '{"status": "***"} token ***; ***. pin=*** 19876 ***.extractor'
    redactor.register("postgres")  # 8 characters: long enough to be masked anywhere
    assert redactor.redact("postgres.extractor") == "***.extractor"


# ---------------------------------------------------------------- secrets that rotate


def rotation_steps(*, needs_lock: bool = False) -> list[dict[str, Any]]:
    """Two extracts as the rotating user, the second after the first is written (needs)."""
    steps = [
        step("first", "mysql.extractor", "extractor", {"table": "src"}, connection="@mysql.app"),
        step(
            "first-out",
            "filesystem.csv_writer",
            "writer",
            {"path": "first.csv"},
            inputs={"df": "first"},
        ),
        step(
            "second",
            "mysql.extractor",
            "extractor",
            {"query": "SELECT CURRENT_USER() AS who, COUNT(*) AS n FROM src"},
            connection="@mysql.app",
            needs=["gate" if needs_lock else "first-out"],
        ),
        step(
            "second-out",
            "filesystem.csv_writer",
            "writer",
            {"path": "second.csv"},
            inputs={"df": "second"},
        ),
    ]
    if needs_lock:  # a load the test holds back with a table lock until it has rotated
        steps.insert(
            2,
            step(
                "gate",
                "mysql.writer",
                "writer",
                {"table": "gate"},
                inputs={"df": "first"},
                connection="@mysql.admin",
            ),
        )
    return steps


def rotation_project(tmp_path: Path, mysql_user: Any, password: str) -> str:
    user = mysql_user(password)
    with mysql_user.admin.cursor() as cur:
        cur.execute("CREATE TABLE src (id INT)")
        cur.execute("INSERT INTO src VALUES (1), (2), (3)")
    write_connections(tmp_path, connections_yaml(mysql_user.db, user))
    (tmp_path / "team.env").write_text(f"APP_PASSWORD={password}\n")
    return user


class Rotate:
    """RunObserver that rotates the user's password when step `after` has finished."""

    def __init__(self, admin: Any, user: str, secrets: Path, new: str, after: str) -> None:
        self.admin, self.user, self.secrets, self.new, self.after = admin, user, secrets, new, after
        self.rotated = False
        self.keep_timestamps = False

    def on_event(self, event: dict[str, Any]) -> None:
        if event["event"] == "step_finished" and event["step"] == self.after:
            before = self.secrets.stat()
            set_password(self.admin, self.user, self.new)
            self.secrets.write_text(f"APP_PASSWORD={self.new}\n")
            if self.keep_timestamps:  # a rewrite the file's size and mtime do not show
                os.utime(self.secrets, ns=(before.st_atime_ns, before.st_mtime_ns))
            self.rotated = True

    def on_progress(self, step_id: str, rows: int) -> None:
        pass

    def on_warning(self, message: str) -> None:
        pass


def test_a_connection_opened_after_rotation_uses_the_new_secret(
    tmp_path: Path, mysql_user: Any
) -> None:
    old, new = "first-password-1", "second-password-22"
    user = rotation_project(tmp_path, mysql_user, old)
    rotate = Rotate(mysql_user.admin, user, tmp_path / "team.env", new, after="first")
    outcome = run_manifest(
        write_manifest(tmp_path / "build", rotation_steps()),
        project_dir=tmp_path,
        secrets_file=tmp_path / "team.env",
        environ={},
        observer=rotate,
    )
    assert rotate.rotated
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert [s.status for s in outcome.steps] == ["ok"] * 4
    assert (tmp_path / "second.csv").read_text().splitlines()[1] == f"{user}@%,3"
    assert outcome.run_dir is not None
    # no retry was needed: the changed file was read when the second step connected
    assert "read again" not in (outcome.run_dir / "run.log").read_text()


def test_rejected_credentials_are_read_again_once(tmp_path: Path, mysql_user: Any) -> None:
    """The secrets file was rewritten keeping its size and mtime: the cached value is rejected,
    reading the file again finds the new one, and the step connects."""
    old, new = "password-one-1", "password-two-2"  # same length: same size
    user = rotation_project(tmp_path, mysql_user, old)
    rotate = Rotate(mysql_user.admin, user, tmp_path / "team.env", new, after="first")
    rotate.keep_timestamps = True
    outcome = run_manifest(
        write_manifest(tmp_path / "build", rotation_steps()),
        project_dir=tmp_path,
        secrets_file=tmp_path / "team.env",
        environ={},
        observer=rotate,
    )
    assert rotate.rotated
    assert outcome.exit_code == ExitCode.OK, outcome.error
    assert (tmp_path / "second.csv").read_text().splitlines()[1] == f"{user}@%,3"
    assert outcome.run_dir is not None
    log = (outcome.run_dir / "run.log").read_text()
    assert (
        "[second] connection @mysql.app: credentials rejected; connecting with its secrets " in log
    )
    for name in RECORDS:
        text = (outcome.run_dir / name).read_text()
        assert old not in text and new not in text, name


def test_rejected_credentials_that_did_not_change_fail_clearly(
    tmp_path: Path, mysql_user: Any
) -> None:
    old, new = "first-password-1", "second-password-22"
    user = rotation_project(tmp_path, mysql_user, old)
    with mysql_user.admin.cursor() as cur:
        cur.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", (new,))  # the file still has old
    write_manifest(tmp_path / "build", rotation_steps())
    result = run_cli(["build", "--secrets-file", "team.env"], cwd=tmp_path)
    assert result.returncode == ExitCode.CONFIGURATION, result.stderr  # rejected credentials
    assert "connection @mysql.app" in result.stderr and "access denied" in result.stderr
    assert "read again" in result.stderr and "Traceback" not in result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    status = check_records(run_dir)
    assert status["failed_step"] == "first" and "connection @mysql.app" in status["error"]
    for text in [result.stdout, result.stderr, *((run_dir / n).read_text() for n in RECORDS)]:
        assert old not in text and new not in text


def test_rotation_between_steps_of_an_oml_run_process(tmp_path: Path, mysql_user: Any) -> None:
    """oml-run in a subprocess: the test holds a load back with a table lock, rotates the password
    (server and --secrets-file) after the first extract finished, then lets the run go on."""
    old, new = "first-password-1", "second-password-22"
    user = rotation_project(tmp_path, mysql_user, old)
    admin = mysql_user.admin
    locker = pymysql.connect(**mysql_user.db, autocommit=True)
    with locker.cursor() as cur:
        cur.execute("CREATE TABLE gate (id INT)")
        cur.execute("LOCK TABLES gate WRITE")
    write_manifest(tmp_path / "build", rotation_steps(needs_lock=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    env["OSIRIS_CACHE_DIR"] = os.environ.get("OSIRIS_CACHE_DIR", "")
    command = [sys.executable, "-m", "osiris.runtime.cli", "build", "--secrets-file", "team.env"]
    proc = subprocess.Popen(
        [*command, "--materialize", "all"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _finished(tmp_path, "first"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        set_password(admin, user, new)
        (tmp_path / "team.env").write_text(f"APP_PASSWORD={new}\n")
    finally:
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        locker.close()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.OK, stderr
    assert (tmp_path / "second.csv").read_text().splitlines()[1] == f"{user}@%,3"
    assert old not in stdout + stderr and new not in stdout + stderr


def _finished(project: Path, step_id: str) -> bool:
    runs = project / "runs"
    for events in runs.glob("*/events.jsonl") if runs.is_dir() else ():
        for line in events.read_text().splitlines():
            if line.endswith("}"):
                event = json.loads(line)
                if event["event"] == "step_finished" and event["step"] == step_id:
                    return True
    return False


def test_dotenv_and_secrets_file_are_read_again_when_they_change(tmp_path: Path) -> None:
    from osiris.runtime.connections import ConnectionResolver

    connections = write_connections(
        tmp_path,
        "version: 1\nconnections:\n  mysql:\n"
        "    a: {host: h, database: d, user: u, password: '${A_PW}'}\n"
        "    b: {host: h, database: d, user: u, password: '${B_PW}'}\n",
    )
    (tmp_path / ".env").write_text("A_PW=dotenv-value-1\n")
    secrets = tmp_path / "team.env"
    secrets.write_text("B_PW=secrets-value-1\n")
    redactor = Redactor()
    resolver = ConnectionResolver(
        connections,
        redactor=redactor,
        secrets_file=secrets,
        dotenv=tmp_path / ".env",
        environ={},
        validation="off",
    )
    assert resolver.resolve("@mysql.a").fields["password"] == "dotenv-value-1"
    assert resolver.resolve("@mysql.b").fields["password"] == "secrets-value-1"
    (tmp_path / ".env").write_text("A_PW=dotenv-value-22\n")
    secrets.write_text("B_PW=secrets-value-22\n")
    assert resolver.resolve("@mysql.a").fields["password"] == "dotenv-value-22"
    assert resolver.resolve("@mysql.b").fields["password"] == "secrets-value-22"
    masked = redactor.redact("dotenv-value-1 dotenv-value-22 secrets-value-1 secrets-value-22")
    assert masked == "*** *** *** ***"
