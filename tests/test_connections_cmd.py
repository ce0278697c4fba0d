"""`osiris connections list|doctor` against the real MariaDB/PostgreSQL, DuckDB and folders: no secret ever printed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osiris.runtime.catalog.doctor import doctor
from osiris.runtime.catalog.ping import ping, preload
from osiris.runtime.drivers.base import ConnectionFailure

CANARY = "Canary-Pw-7f3e91c2-conns"  # a password that must never be printed


def osiris(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`osiris ARGS` in this process (as fast as a unit test), with the environment of a user
    who set no OSIRIS_* variable but env."""
    from osiris.compiler.cli import osiris_main

    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        for key in [k for k in os.environ if k.startswith("OSIRIS_") and k != "OSIRIS_CACHE_DIR"]:
            del os.environ[key]
        os.environ.update(env or {})
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = osiris_main(list(args))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["osiris", *args], code, out.getvalue(), err.getvalue())


def osiris_process(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`osiris ARGS` as its own process: for what only a process shows (it exits on time)."""
    code = "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _yaml(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML


def write_connections(folder: Path, families: dict[str, dict[str, dict[str, Any]]]) -> Path:
    lines = ["version: 1", "connections:"]
    for family, aliases in families.items():
        lines.append(f"  {family}:")
        for alias, fields in aliases.items():
            lines.append(f"    {alias}:")
            lines += [f"      {k}: {_yaml(v)}" for k, v in fields.items()]
    path = folder / "osiris_connections.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _mysql(db: dict[str, Any], **more: Any) -> dict[str, Any]:
    fields = {k: db[k] for k in ("host", "port", "database", "user")}
    return {**fields, "password": "${CONNS_MYSQL_PW:-}", **more}


def _pg(db: dict[str, Any], **more: Any) -> dict[str, Any]:
    fields = {k: db[k] for k in ("host", "port", "database", "user")}
    return {**fields, "password": "${CONNS_PG_PW:-}", "sslmode": "disable", **more}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (in the backlog) but never says a word."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


# -- list -------------------------------------------------------------------------------------


def test_list_shows_public_fields_variables_and_defaults_never_a_secret(tmp_path: Path) -> None:
    write_connections(
        tmp_path,
        {
            "mysql": {
                "shop": {
                    "host": "${CONNS_HOST}",
                    "database": "shop",
                    "user": "app",
                    "password": "${CONNS_SHOP_PW}",
                },
                "legacy": {"host": "db", "database": "old", "user": "root", "password": CANARY},
            },
            "postgres": {
                "wh": {"default": True, "dsn": f"postgresql://u:{CANARY}@h/db"},
                "other": {
                    "host": "h",
                    "database": "d",
                    "user": "u",
                    "password": f"${{CONNS_UNSET_PW:-{CANARY}}}",
                    "application_name": f"x password={CANARY}",
                },
            },
            "supabase": {"api": {"url": f"https://svc:{CANARY}@abc.supabase.co"}},
        },
    )
    (tmp_path / ".env").write_text("CONNS_SHOP_PW=from-dotenv-secret\n")
    env = {"CONNS_HOST": "db.internal"}
    text = osiris("connections", "list", cwd=tmp_path, env=env)
    report = osiris("connections", "list", "--format", "json", cwd=tmp_path, env=env)
    for proc in (text, report):
        assert proc.returncode == 0, proc.stderr
        assert CANARY not in proc.stdout + proc.stderr
        assert "from-dotenv-secret" not in proc.stdout + proc.stderr
        assert "db.internal" not in proc.stdout  # a variable's value is never shown either
    assert "@mysql.shop" in text.stdout and "host=${CONNS_HOST}" in text.stdout
    assert "@postgres.wh (default)" in text.stdout
    assert "CONNS_HOST set (environment)" in text.stdout
    assert "CONNS_SHOP_PW set (.env)" in text.stdout
    assert "password=<secret: literal>" in text.stdout
    assert "warning[OML101]" in text.stderr and "********" in text.stderr
    data = json.loads(report.stdout)
    families = {f["family"]: f for f in data["families"]}
    assert families["postgres"]["default_alias"] == "wh"
    assert families["mysql"]["default_alias"] is None  # two aliases, none marked
    shop, legacy = families["mysql"]["aliases"]
    assert shop["fields"] == {"host": "${CONNS_HOST}", "database": "shop", "user": "app"}
    assert shop["secret_fields"] == {"password": "variable"}
    assert [(v["name"], v["set"], v["source"], v["secret"]) for v in shop["variables"]] == [
        ("CONNS_HOST", True, "environment", False),
        ("CONNS_SHOP_PW", True, ".env", True),
    ]
    assert legacy["secret_fields"] == {"password": "literal"} and legacy["variables"] == []
    wh, other = families["postgres"]["aliases"]
    assert (
        wh["default"] is True and wh["fields"] == {} and wh["secret_fields"] == {"dsn": "literal"}
    )
    assert other["fields"]["application_name"] == "x password=***"
    (unset,) = other["variables"]
    assert unset == {
        "name": "CONNS_UNSET_PW",
        "fields": ["password"],
        "has_default": True,
        "secret": True,
        "set": False,
        "source": None,
    }
    assert families["supabase"]["aliases"][0]["fields"] == {"url": "https://***@abc.supabase.co"}
    assert [d["code"] for d in data["diagnostics"]] == ["OML101", "OML101"]


def test_list_without_a_connections_file_is_a_clear_configuration_error(tmp_path: Path) -> None:
    proc = osiris("connections", "list", cwd=tmp_path)
    assert proc.returncode == 5
    assert "no connections file" in proc.stderr and "Traceback" not in proc.stderr
    proc = osiris(
        "connections", "list", "--connections", "nope.yaml", "--format", "json", cwd=tmp_path
    )
    assert proc.returncode == 5
    error = json.loads(proc.stdout)
    assert error["exit_code"] == 5 and "nope.yaml does not exist" in error["error"]
    env = {"OSIRIS_CONNECTIONS": str(tmp_path / "gone.yaml")}
    proc = osiris("connections", "doctor", cwd=tmp_path, env=env)
    assert proc.returncode == 5 and "gone.yaml does not exist" in proc.stderr


def test_list_of_a_malformed_file_reports_the_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "osiris_connections.yaml").write_text("connections:\n  mysql: [1, 2\n")
    proc = osiris("connections", "list", cwd=tmp_path)
    assert proc.returncode == 5 and "error[OML040]" in proc.stderr
    report = json.loads(osiris("connections", "list", "--format", "json", cwd=tmp_path).stdout)
    assert report["exit_code"] == 5 and report["diagnostics"][0]["code"] == "OML040"
    (tmp_path / "osiris_connections.yaml").write_bytes(b"connections: \xff\n")
    proc = osiris("connections", "list", cwd=tmp_path)
    assert proc.returncode == 5 and "UTF-8" in proc.stderr
    write_connections(
        tmp_path,
        {
            "duckdb": {
                "a": {"default": True, "path": "a.db"},
                "b": {"default": True, "path": "b.db"},
            }
        },
    )
    proc = osiris("connections", "doctor", cwd=tmp_path)
    assert proc.returncode == 5 and "error[OML103]" in proc.stderr


def test_list_follows_the_validation_switch(tmp_path: Path) -> None:
    write_connections(
        tmp_path,
        {
            "mysql": {
                "m": {"host": "h", "user": "u", "database": "d", "password": CANARY, "prot": 1}
            }
        },
    )
    warn = osiris("connections", "list", "--format", "json", cwd=tmp_path)
    strict = osiris("connections", "list", "--validation", "strict", cwd=tmp_path)
    off = osiris(
        "connections", "list", "--format", "json", cwd=tmp_path, env={"OSIRIS_VALIDATION": "off"}
    )
    assert warn.returncode == 0 and off.returncode == 0 and strict.returncode == 5
    assert {d["code"]: d["severity"] for d in json.loads(warn.stdout)["diagnostics"]} == {
        "OML101": "warning",
        "OML104": "warning",
    }
    assert "error[OML101]" in strict.stderr and "error[OML104]" in strict.stderr
    assert json.loads(off.stdout)["diagnostics"] == []
    for proc in (warn, strict, off):
        assert CANARY not in proc.stdout + proc.stderr
    bad = osiris("connections", "list", cwd=tmp_path, env={"OSIRIS_VALIDATION": "loud"})
    assert bad.returncode == 5 and "not one of warn, strict, off" in bad.stderr


# -- doctor, on the real servers ----------------------------------------------------------------


def test_doctor_passes_for_every_family(
    tmp_path: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]
) -> None:
    import duckdb

    duckdb.connect(str(tmp_path / "conns.duckdb")).close()
    (tmp_path / "data").mkdir()
    write_connections(
        tmp_path,
        {
            "mysql": {"shop": _mysql(mysql_db)},
            "postgres": {"wh": _pg(pg_db)},
            "supabase": {"db": _pg(pg_db)},
            "duckdb": {"local": {"path": "conns.duckdb"}, "new": {"path": "new.duckdb"}},
            "filesystem": {"data": {"base_dir": "data"}},
        },
    )
    env = {"CONNS_MYSQL_PW": mysql_db["password"], "CONNS_PG_PW": CANARY}  # trust auth: ignored
    proc = osiris("connections", "doctor", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("ok ") for line in lines), proc.stdout
    assert "MariaDB" in proc.stdout and "ms round trip" in proc.stdout
    report = json.loads(
        osiris("connections", "doctor", "--format", "json", cwd=tmp_path, env=env).stdout
    )
    assert report["exit_code"] == 0
    by_ref = {a["ref"]: a for a in report["aliases"]}
    assert set(by_ref) == {
        "@mysql.shop",
        "@postgres.wh",
        "@supabase.db",
        "@duckdb.local",
        "@duckdb.new",
        "@filesystem.data",
    }
    for ref in ("@mysql.shop", "@postgres.wh", "@supabase.db", "@duckdb.local"):
        assert by_ref[ref]["status"] == "ok" and by_ref[ref]["server_version"], ref
        assert 0 <= by_ref[ref]["latency_ms"] < 5000
    assert by_ref["@postgres.wh"]["server_version"][:2].isdigit()
    assert "does not exist yet" in by_ref["@duckdb.new"]["note"]
    assert not (tmp_path / "new.duckdb").exists()  # doctor never creates a database
    assert CANARY not in proc.stdout + proc.stderr + json.dumps(report)
    only = osiris("connections", "doctor", "@postgres.wh", "@mysql", cwd=tmp_path, env=env)
    assert only.returncode == 0 and len(only.stdout.splitlines()) == 2


def test_doctor_wrong_password_is_an_auth_failure_without_the_password(
    tmp_path: Path, mysql_db: dict[str, Any]
) -> None:
    if mysql_db["password"] == CANARY:  # pragma: no cover - the canary is never the real one
        pytest.skip("the canary is the server's password")
    write_connections(tmp_path, {"mysql": {"shop": _mysql(mysql_db)}})
    env = {"CONNS_MYSQL_PW": CANARY}
    text = osiris("connections", "doctor", cwd=tmp_path, env=env)
    report = osiris("connections", "doctor", "--format", "json", cwd=tmp_path, env=env)
    assert text.returncode == 5 and report.returncode == 5
    assert text.stdout.startswith("FAIL @mysql.shop  [authentication] cannot connect to MySQL")
    assert "1 of 1 connections failed" in text.stderr
    (alias,) = json.loads(report.stdout)["aliases"]
    assert alias["status"] == "failed" and alias["reason"] == "authentication"
    for proc in (text, report):
        assert CANARY not in proc.stdout + proc.stderr


def test_doctor_names_unknown_users_and_databases(tmp_path: Path, pg_db: dict[str, Any]) -> None:
    write_connections(
        tmp_path,
        {
            "postgres": {
                "nobody": _pg(pg_db, user="conns_no_such_role"),
                "nodb": _pg(pg_db, database="conns_no_such_db"),
                "good": _pg(pg_db),
            }
        },
    )
    report = json.loads(osiris("connections", "doctor", "--format", "json", cwd=tmp_path).stdout)
    assert report["exit_code"] == 5
    assert [(a["ref"], a["status"], a["reason"]) for a in report["aliases"]] == [
        ("@postgres.nobody", "failed", "unknown_user"),
        ("@postgres.nodb", "failed", "unknown_database"),
        ("@postgres.good", "ok", None),
    ]


def test_doctor_unreachable_port_fails_fast(tmp_path: Path) -> None:
    port = _closed_port()
    write_connections(
        tmp_path,
        {
            "mysql": {"m": {"host": "127.0.0.1", "port": port, "database": "d", "user": "u"}},
            "postgres": {"p": {"host": "127.0.0.1", "port": port, "database": "d", "user": "u"}},
        },
    )
    started = time.monotonic()
    proc = osiris("connections", "doctor", "--format", "json", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 5
    assert [a["reason"] for a in json.loads(proc.stdout)["aliases"]] == ["refused", "refused"]
    assert elapsed < 3, elapsed  # no connect timeout waited for


def test_doctor_checks_aliases_concurrently_within_the_timeout(
    tmp_path: Path, silent_port: int
) -> None:
    """Three aliases on a host that never answers take one timeout, not three; the command
    exits without waiting for the drivers' threads."""
    silent = {"host": "127.0.0.1", "port": silent_port, "database": "d", "user": "u"}
    path = write_connections(
        tmp_path,
        {
            "mysql": {"a": silent, "b": silent},
            "postgres": {"c": silent},
            "filesystem": {"here": {"base_dir": "."}},
        },
    )
    preload("mysql")  # the first import of a driver is not what this measures
    preload("postgres")
    started = time.monotonic()
    reports = doctor(
        ["@mysql.a", "@mysql.b", "@postgres.c", "@filesystem.here"],
        connections=path,
        root=tmp_path,
        environ={},
        timeout=1.0,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, elapsed  # one after the other: at least 3 s
    assert [r.status for r in reports] == ["failed", "failed", "failed", "ok"]
    assert {r.reason for r in reports[:3]} <= {"unreachable", "timeout"}
    started = time.monotonic()
    proc = osiris_process("connections", "doctor", "--timeout", "1", cwd=tmp_path)
    assert proc.returncode == 5 and proc.stdout.count("FAIL") == 3
    assert time.monotonic() - started < 8  # the process does not wait for the stuck drivers


def test_doctor_follows_the_validation_switch(tmp_path: Path, mysql_db: dict[str, Any]) -> None:
    write_connections(tmp_path, {"mysql": {"shop": {**_mysql(mysql_db), "password": CANARY}}})
    warn = osiris("connections", "doctor", "--format", "json", cwd=tmp_path)
    strict = osiris("connections", "doctor", "--validation", "strict", cwd=tmp_path)
    off = osiris("connections", "doctor", "--validation", "off", "--format", "json", cwd=tmp_path)
    (alias,) = json.loads(warn.stdout)["aliases"]
    assert alias["reason"] == "authentication" and "written literally" in alias["warnings"][0]
    assert strict.returncode == 5
    assert "[configuration]" in strict.stdout and "written literally" in strict.stdout
    (alias,) = json.loads(off.stdout)["aliases"]
    assert alias["reason"] == "authentication" and alias["warnings"] == []
    for proc in (warn, strict, off):
        assert CANARY not in proc.stdout + proc.stderr


def test_doctor_reports_configuration_problems_per_alias(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    write_connections(
        tmp_path,
        {
            "mysql": {
                "m": {"host": "h", "database": "d", "user": "u", "password": "${CONNS_NEVER_SET}"}
            },
            "filesystem": {"gone": {"base_dir": "missing"}, "file": {"base_dir": "file.txt"}},
            "supabase": {
                "rest": {"url": "https://abc.supabase.co", "key": "${CONNS_NEVER_SET:-x}"}
            },
        },
    )
    proc = osiris("connections", "doctor", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 5
    got = {a["ref"]: (a["reason"], a["message"]) for a in json.loads(proc.stdout)["aliases"]}
    assert (
        got["@mysql.m"][0] == "configuration" and "CONNS_NEVER_SET is not set" in got["@mysql.m"][1]
    )
    assert got["@filesystem.gone"][0] == "unknown_database"
    assert "does not exist" in got["@filesystem.gone"][1]
    assert "is not a folder" in got["@filesystem.file"][1]
    assert got["@supabase.rest"][0] == "configuration" and "REST" in got["@supabase.rest"][1]
    unknown = osiris("connections", "doctor", "@mysql.nope", cwd=tmp_path)
    assert unknown.returncode == 5 and "alias 'nope' is not defined" in unknown.stdout
    usage = osiris("connections", "doctor", "mysql.m", cwd=tmp_path)
    assert usage.returncode == 2 and "write @family.alias" in usage.stderr
    for timeout in ("0", "-1", "inf", "nan"):
        usage = osiris(
            "connections", "doctor", "--timeout", timeout, "--format", "json", cwd=tmp_path
        )
        assert usage.returncode == 2 and "--timeout" in json.loads(usage.stdout)["error"]
    usage = osiris("connections", cwd=tmp_path)
    assert usage.returncode == 2 and "connections list" in usage.stderr


def test_ping_reports_version_and_latency(tmp_path: Path, mysql_db: dict[str, Any]) -> None:
    result = ping("mysql", mysql_db, 5)
    assert "MariaDB" in (result.server_version or "") or result.server_version
    assert result.latency_ms >= 0 and result.connect_ms > 0
    with pytest.raises(ConnectionFailure) as failure:
        ping("mysql", {**mysql_db, "database": "conns_no_such_db"}, 5)
    assert failure.value.reason == "unknown_database"
    (tmp_path / "d").mkdir()
    assert ping("filesystem", {"base_dir": "d"}, 1, root=tmp_path).note == "0 entries"
    with pytest.raises(ConnectionFailure, match="no connection check"):
        ping("ftp", {}, 1)


def test_list_says_when_a_variable_file_cannot_be_read(tmp_path: Path) -> None:
    write_connections(tmp_path, {"duckdb": {"d": {"path": "${CONNS_DB_PATH}"}}})
    (tmp_path / ".env").write_text(f"CONNS_DB_PATH=x.duckdb\nnot a line {CANARY}\n")
    proc = osiris("connections", "list", cwd=tmp_path)
    assert proc.returncode == 5 and ".env:2: expected KEY=VALUE" in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
    secrets = tmp_path / "s.env"
    secrets.write_text("CONNS_DB_PATH=y.duckdb\n")
    (tmp_path / ".env").unlink()
    report = osiris(
        "connections", "list", "--secrets-file", str(secrets), "--format", "json", cwd=tmp_path
    )
    (variable,) = json.loads(report.stdout)["families"][0]["aliases"][0]["variables"]
    assert variable["set"] is True and variable["source"] == "secrets file"
