"""Shared fixtures: project paths and real MariaDB/PostgreSQL databases (one fresh database per test)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_DBS = os.environ.get("OSIRIS_REQUIRE_DBS") == "1"

# The test servers; CI and a fresh machine use the defaults (README: Development).
MYSQL = {
    "host": os.environ.get("OSIRIS_TEST_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("OSIRIS_TEST_MYSQL_PORT", "3306")),
    "user": os.environ.get("OSIRIS_TEST_MYSQL_USER", "root"),
    "password": os.environ.get("OSIRIS_TEST_MYSQL_PASSWORD", ""),
}
POSTGRES = {
    "host": os.environ.get("OSIRIS_TEST_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("OSIRIS_TEST_PG_PORT", "5432")),
    "user": os.environ.get("OSIRIS_TEST_PG_USER", "postgres"),
    "password": os.environ.get("OSIRIS_TEST_PG_PASSWORD", ""),
}

# -- Ctrl-C: the tests send SIGINT to the processes they start ----------------------------------
# A suite started as a background job (`cmd &` in a script, nohup) inherits SIGINT ignored, and
# so would every process it starts: oml-run then rightly keeps ignoring it, as a background job
# should, and every Ctrl-C test fails. The suite itself takes SIGINT back; a handled signal is
# reset to its default in the children it executes.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# -- the temp dir: the tests leave nothing behind in it ------------------------------------------
# The session (and every subprocess it starts) gets a private, empty TMPDIR; what is left in it
# when the session ends was left by our code or our tests, never by another process on the
# machine, and fails the session. It sits in the system temp dir, not under pytest's basetemp
# (mode 0700), so that a server a test starts as another user (initdb) can reach its directory.
_SESSION_TMPDIR = "pytest-session-tmpdir-"


def pytest_sessionstart(session: pytest.Session) -> None:
    # pytest's own basetemp first, where it always is (it keeps the last few sessions')
    basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    # The spec-registry cache of test runs (and their subprocesses), out of the user's home.
    os.environ.setdefault("OSIRIS_CACHE_DIR", str(basetemp / "osiris-cache"))
    private = Path(tempfile.mkdtemp(prefix=_SESSION_TMPDIR))
    private.chmod(0o711)
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    private = Path(os.environ.get("TMPDIR", ""))
    if not private.name.startswith(_SESSION_TMPDIR) or not private.is_dir():
        return
    left = sorted(p.name for p in private.iterdir())
    shutil.rmtree(private, ignore_errors=True)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = (
        f"the tests left {len(left)} entr{'y' if len(left) == 1 else 'ies'} in the temp dir "
        f"({private}): {', '.join(left[:20])}{' ...' if len(left) > 20 else ''}"
    )
    if reporter is not None:
        reporter.write_line(f"ERROR: {message}", red=True, bold=True)
    else:
        print(f"ERROR: {message}")
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _unavailable(what: str, err: Exception) -> None:
    msg = f"{what} is not reachable ({type(err).__name__}: {err})"
    if REQUIRE_DBS:
        pytest.fail(f"{msg}; OSIRIS_REQUIRE_DBS=1 makes this a failure", pytrace=False)
    pytest.skip(f"{msg}; start it (README: Development) to run these tests")


@pytest.fixture
def mysql_db() -> Iterator[dict[str, Any]]:
    """A fresh MariaDB/MySQL database; yields connection fields (host, port, user, password, database)."""
    import pymysql

    try:
        admin = pymysql.connect(**MYSQL, autocommit=True, connect_timeout=3)
    except Exception as err:  # pragma: no cover - depends on the machine
        _unavailable("MariaDB/MySQL at 127.0.0.1:3306", err)
    name = f"osiris_t_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield {**MYSQL, "database": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def pg_db() -> Iterator[dict[str, Any]]:
    """A fresh PostgreSQL database; yields connection fields (host, port, user, password, database)."""
    import psycopg

    try:
        admin = psycopg.connect(**POSTGRES, dbname="postgres", autocommit=True, connect_timeout=3)
    except Exception as err:  # pragma: no cover - depends on the machine
        _unavailable("PostgreSQL at 127.0.0.1:5432", err)
    name = f"osiris_t_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**POSTGRES, "database": name}
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
