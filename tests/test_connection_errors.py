"""Connection failures on real servers: classified by SQLSTATE / errno, the server's own words kept,
configuration problems exit 5 end to end."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml
from conftest import MYSQL
from drivers_ctx import make_ctx
from runtime_helpers import only_run_dir, read_events, run_cli, step, write_manifest

from osiris.runtime.drivers.base import ConnectionFailure, DriverError
from osiris.runtime.drivers.mysql import MySQLExtractor
from osiris.runtime.drivers.postgres import PostgresExtractor
from osiris.runtime.errors import ConfigurationError

SECRET = "s3cr3t-Osiris-pw"


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a connect timeout)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def pg_password_server() -> Iterator[dict[str, Any]]:
    """A throwaway PostgreSQL cluster that asks for passwords (scram-sha-256): the shared test
    server trusts every local connection, so it never rejects a password."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bindirs or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root, runuser and PostgreSQL's initdb to start a password cluster")
    bindir = Path(bindirs[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="osiris-pgpw-"))
    password = "osiris-right-pw"
    (root / "pw").write_text(password + "\n")
    shutil.chown(root, "postgres")
    shutil.chown(root / "pw", "postgres")
    port = _free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        as_postgres(
            str(bindir / "initdb"), "-D", str(root / "data"), "-A", "scram-sha-256",
            "-U", "postgres", f"--pwfile={root / 'pw'}", "--no-sync",
        )  # fmt: skip
        as_postgres(
            str(bindir / "pg_ctl"), "-D", str(root / "data"), "-o", options,
            "-l", str(root / "log"), "-w", "start",
        )  # fmt: skip
        yield {
            "host": "127.0.0.1",
            "port": port,
            "user": "postgres",
            "password": password,
            "database": "postgres",
        }
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(root / "data"),
             "-m", "immediate", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mysql_password_user(mysql_db: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A MariaDB user with a password and access to the test database."""
    name = f"osiris_u_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(**MYSQL, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'osiris-right-pw'")
        cur.execute(f"GRANT ALL ON `{mysql_db['database']}`.* TO '{name}'@'%'")
    try:
        yield {**mysql_db, "user": name, "password": "osiris-right-pw"}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        admin.close()


# case -> (connection changes, reason, words of our sentence, words of the server's message)
PG_CASES = {
    "wrong password": (
        {"password": SECRET},
        "authentication",
        "password authentication failed for user 'postgres'",
        'server: FATAL: password authentication failed for user "postgres"',
    ),
    "no password": (
        {"password": ""},
        "authentication",
        "wants a password for user 'postgres'",
        "no password supplied",
    ),
    "unknown database": (
        {"database": "osiris_no_such_db"},
        "unknown_database",
        "database 'osiris_no_such_db' does not exist",
        'FATAL: database "osiris_no_such_db" does not exist',
    ),
    "unknown role": (
        {"user": "osiris_no_such_role"},
        "unknown_user",
        "user (role) 'osiris_no_such_role' does not exist",
        'FATAL: role "osiris_no_such_role" does not exist',
    ),
    "refused": ({"port": 1}, "refused", "connection refused", "Connection refused"),
    "unresolvable host": (
        {"host": "osiris-no-such-host.invalid"},
        "unreachable",
        "host name 'osiris-no-such-host.invalid' cannot be resolved",
        "failed to resolve host",
    ),
    "timeout": (
        {"port": "SILENT", "connect_timeout": 1},
        "unreachable",
        "within 1 s (connect_timeout)",
        "timeout expired",
    ),
}
PASSWORD_SERVER_CASES = ("wrong password", "no password")

MYSQL_CASES = {
    "wrong password": (
        {"password": SECRET},
        "authentication",
        "access denied for user 'USER': wrong password, or no such user",
        "server: 1045 Access denied for user 'USER'",
    ),
    "unknown user": (  # MySQL answers an unknown user exactly like a wrong password
        {"user": "osiris_no_such_user", "password": SECRET},
        "authentication",
        "access denied for user 'osiris_no_such_user'",
        "server: 1045 Access denied",
    ),
    "unknown database": (  # as a user who may see every database
        {"user": MYSQL["user"], "password": MYSQL["password"], "database": "osiris_no_such_db"},
        "unknown_database",
        "database 'osiris_no_such_db' does not exist",
        "server: 1049 Unknown database 'osiris_no_such_db'",
    ),
    "database without access": (  # MySQL does not tell such a user whether it exists
        {"database": "osiris_no_such_db"},
        "unknown_database",
        "user 'USER' has no access to database 'osiris_no_such_db', or it does not exist",
        "server: 1044 Access denied for user 'USER'",
    ),
    "refused": ({"port": 1}, "refused", "connection refused", "Connection refused"),
    "unresolvable host": (
        {"host": "osiris-no-such-host.invalid"},
        "unreachable",
        "host name 'osiris-no-such-host.invalid' cannot be resolved",
        "Name or service not known",
    ),
    "timeout": (
        {"port": "SILENT", "connect_timeout": 1},
        "unreachable",
        "within 1 s (connect_timeout)",
        "Lost connection to MySQL server during query (timed out)",
    ),
}


def _pg_fields(request: pytest.FixtureRequest, case: str, silent: int) -> dict[str, Any]:
    if case in PASSWORD_SERVER_CASES:
        base = request.getfixturevalue("pg_password_server")
    else:
        base = {**request.getfixturevalue("pg_db"), "password": SECRET}
    fields = {**base, **PG_CASES[case][0]}
    return {**fields, "port": silent} if fields["port"] == "SILENT" else fields


def _mysql_fields(request: pytest.FixtureRequest, case: str, silent: int) -> dict[str, Any]:
    base = request.getfixturevalue("mysql_password_user")
    fields = {**base, **MYSQL_CASES[case][0]}
    return {**fields, "port": silent} if fields["port"] == "SILENT" else fields


def _run_extract(
    tmp_path: Path, family: str, fields: dict[str, Any]
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """oml-run of `extract -> CSV file` with this connection; (process, run directory)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    connections = {"version": 1, "connections": {family: {"main": fields}}}
    (tmp_path / "osiris_connections.yaml").write_text(yaml.safe_dump(connections))
    manifest = write_manifest(
        tmp_path / "build",
        [
            step("src", f"{family}.extractor", "extractor", {"table": "t"}, connection=f"@{family}.main"),
            step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
        ],
    )  # fmt: skip
    result = run_cli([str(manifest)], cwd=tmp_path)
    return result, only_run_dir(tmp_path)


def _assert_reported(
    result: subprocess.CompletedProcess[str], run_dir: Path, sentence: str, server: str
) -> None:
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "step 'src' (" in line and sentence in line and server in line, line
    assert line.index(sentence) < line.index(server)  # our sentence first, then the server's
    words = server.removeprefix("server: ")  # the detail: what the driver said, unabridged

    def spaced(text: str) -> str:
        return " ".join(text.split())

    log = (run_dir / "run.log").read_text()
    assert words in spaced(log)
    failed = [e for e in read_events(run_dir) if e["event"] == "step_failed"]
    assert failed and words in spaced(failed[0]["detail"])
    status = json.loads((run_dir / "status.json").read_text())
    assert status["exit_code"] == 5 and words in spaced(status["error_detail"])
    everything = result.stdout + result.stderr + log + (run_dir / "events.jsonl").read_text()
    assert SECRET not in everything


@pytest.mark.postgres
@pytest.mark.parametrize("case", list(PG_CASES))
def test_pg_connection_failure_is_classified(
    request: pytest.FixtureRequest, tmp_path: Path, silent_port: int, case: str
) -> None:
    fields = _pg_fields(request, case, silent_port)
    _, reason, sentence, server = PG_CASES[case]
    with pytest.raises(ConnectionFailure) as info:
        PostgresExtractor().extract(make_ctx(tmp_path, "e", {"table": "t"}, fields))
    message = str(info.value)
    assert info.value.reason == reason, message
    assert sentence in message and server in message and "\n" not in message
    assert SECRET not in message and SECRET not in (info.value.detail or "")
    result, run_dir = _run_extract(tmp_path / "project", "postgres", fields)
    _assert_reported(result, run_dir, sentence, server)


@pytest.mark.mysql
@pytest.mark.parametrize("case", list(MYSQL_CASES))
def test_mysql_connection_failure_is_classified(
    request: pytest.FixtureRequest, tmp_path: Path, silent_port: int, case: str
) -> None:
    fields = _mysql_fields(request, case, silent_port)
    _, reason, sentence, server = MYSQL_CASES[case]
    sentence, server = (text.replace("USER", fields["user"]) for text in (sentence, server))
    with pytest.raises(ConnectionFailure) as info:
        MySQLExtractor().extract(make_ctx(tmp_path, "e", {"table": "t"}, fields))
    message = str(info.value)
    assert info.value.reason == reason, message
    assert sentence in message and server in message and "\n" not in message
    assert SECRET not in message and SECRET not in (info.value.detail or "")
    result, run_dir = _run_extract(tmp_path / "project", "mysql", fields)
    _assert_reported(result, run_dir, sentence, server)


@pytest.mark.postgres
def test_pg_right_password_connects(pg_password_server: dict[str, Any], tmp_path: Path) -> None:
    """The password cluster itself works: the failures above are the wrong password's."""
    query = {"query": "SELECT 1 AS one"}
    reader = PostgresExtractor().extract(make_ctx(tmp_path, "e", query, pg_password_server))
    assert reader.read_all().to_pylist() == [{"one": 1}]


@pytest.mark.postgres
def test_pg_invalid_dsn_option_is_a_configuration_error(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    dsn = f"host=127.0.0.1 port={pg_db['port']} user=postgres password={SECRET} bogus_option=1"
    with pytest.raises(DriverError) as info:
        PostgresExtractor().extract(make_ctx(tmp_path, "e", {"table": "t"}, {"dsn": dsn}))
    assert isinstance(info.value, ConfigurationError)
    message = str(info.value)
    assert 'invalid connection option "bogus_option"' in message and "timed out" not in message
    result, run_dir = _run_extract(tmp_path / "project", "postgres", {"dsn": dsn})
    assert result.returncode == 5, result.stderr
    assert 'invalid connection option "bogus_option"' in result.stderr
    assert SECRET not in result.stderr + (run_dir / "run.log").read_text()
