"""Reaching a connection: connect and authenticate with the driver's own connect(), then one trivial query."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osiris.runtime.drivers.base import ConnectionFailure

PING_FAMILIES = ("mysql", "postgres", "supabase", "duckdb", "filesystem", "http")


@dataclass(frozen=True, slots=True)
class PingResult:
    """What answered: its version, the trivial query's round trip and the time to connect."""

    server_version: str | None
    latency_ms: float  # the trivial query's round trip
    connect_ms: float = 0.0  # connecting and authenticating
    note: str | None = None  # e.g. "the file does not exist yet"


def ping(
    family: str, fields: Mapping[str, Any], timeout: float = 10.0, *, root: Path | None = None
) -> PingResult:
    """Connect to a resolved connection of family, authenticate and run a trivial query, each
    bounded by timeout seconds where the driver allows it. root: the project root that relative
    paths (duckdb path, filesystem base_dir) resolve against (default: the current directory).
    Raises the drivers' ConnectionFailure (with its reason) or DriverError."""
    base = root or Path.cwd()
    if family == "mysql":
        return _mysql(fields, timeout)
    if family in ("postgres", "supabase"):
        return _postgres(fields, timeout)
    if family == "duckdb":
        return _duckdb(fields, base)
    if family == "filesystem":
        return _filesystem(fields, base)
    if family == "http":
        return _http(fields, timeout)
    raise ConnectionFailure(f"no connection check for family {family!r}", "other")


def preload(family: str) -> None:
    """Import family's driver now (a second or so, the first time), so that the import is not
    counted against a timeout."""
    if family == "mysql":
        import osiris.runtime.drivers.mysql
    elif family in ("postgres", "supabase"):
        import osiris.runtime.drivers.postgres
    elif family == "duckdb":
        import osiris.runtime.duckdb_settings  # noqa: F401


class _Alone:
    """The little of a StepContext an HTTP request needs, outside a run."""

    def on_cancel(self, callback: Any) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def raise_if_cancelled(self) -> None:
        pass

    def log(self, message: str) -> None:
        pass


def _http(fields: Mapping[str, Any], timeout: float) -> PingResult:
    """GET base_url once with the connection's auth: any answer but 401/403 (or 5xx) means the
    API is there and takes the credentials."""
    from dataclasses import replace

    from osiris.runtime.drivers.base import DriverError
    from osiris.runtime.drivers.http_client import HttpClient, HttpSettings

    settings = HttpSettings.from_connection(fields)
    settings = replace(settings, max_retries=0, timeout=min(settings.timeout, timeout))
    client = HttpClient(_Alone(), settings, "")  # type: ignore[arg-type]
    started = time.perf_counter()
    note = None
    server = None
    try:
        response = client.request(settings.base_url)
        server = response.headers.get("server")
    except ConnectionFailure:
        raise
    except DriverError as err:
        if " returned 5" in str(err):
            raise ConnectionFailure(str(err), "other") from None
        note = str(err)  # e.g. 404 at the root: the server answered
    return PingResult(server, _ms(time.perf_counter() - started), note=note)


def _bounded(fields: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """fields with connect_timeout no longer than timeout (whole seconds, at least 1)."""
    limit = max(1, math.ceil(timeout))
    current = fields.get("connect_timeout")
    try:
        value = min(int(current), limit) if current not in (None, "") else limit
    except (TypeError, ValueError):
        value = limit
    return {**fields, "connect_timeout": value}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _mysql(fields: Mapping[str, Any], timeout: float) -> PingResult:
    import pymysql

    from osiris.runtime.drivers import mysql
    from osiris.runtime.drivers.sql_common import scrub

    s = _bounded(fields, timeout)
    started = time.perf_counter()
    conn = mysql.connect(s, read_timeout=s["connect_timeout"])
    connected = time.perf_counter()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
        answered = time.perf_counter()
    except pymysql.MySQLError as err:
        said = scrub(str(err), str(s.get("password") or ""))
        raise ConnectionFailure(
            f"MySQL {mysql.describe(s)}: the trivial query failed: {said}", "other"
        ) from None
    finally:
        conn.close()
    version = _text(row[0]) if row else None
    return PingResult(version, _ms(answered - connected), _ms(connected - started))


def _postgres(fields: Mapping[str, Any], timeout: float) -> PingResult:
    import psycopg

    from osiris.runtime.drivers import postgres
    from osiris.runtime.drivers.sql_common import scrub

    s = _bounded(fields, timeout)
    started = time.perf_counter()
    conn = postgres.connect(s)
    connected = time.perf_counter()
    try:
        row = conn.execute("SHOW server_version").fetchone()
        answered = time.perf_counter()
    except psycopg.Error as err:
        said = scrub(str(err), str(s.get("password") or ""), str(s.get("dsn") or ""))
        raise ConnectionFailure(
            f"PostgreSQL {postgres.describe(s)}: the trivial query failed: {said}", "other"
        ) from None
    finally:
        conn.close()
    version = _text(row[0]) if row else None
    return PingResult(version, _ms(answered - connected), _ms(connected - started))


def _duckdb(fields: Mapping[str, Any], root: Path) -> PingResult:
    """The database file opened read-only (never created, never locked for writing)."""
    import duckdb

    from osiris.runtime.duckdb_settings import open_duckdb
    from osiris.runtime.sql import quote_literal

    path = _path(fields.get("path") or fields.get("database"), root, "path")
    started = time.perf_counter()
    con = open_duckdb()
    try:
        if not path.exists():
            if not path.parent.is_dir():
                raise ConnectionFailure(
                    f"DuckDB {path}: the folder {path.parent} does not exist", "unknown_database"
                )
            opened = time.perf_counter()
            row = con.execute("SELECT version()").fetchone()
            return PingResult(
                _text(row[0]) if row else None,
                _ms(time.perf_counter() - opened),
                _ms(opened - started),
                note="the file does not exist yet; a writer creates it",
            )
        try:
            con.execute(f"ATTACH {quote_literal(str(path))} AS osiris_ping (READ_ONLY)")
        except duckdb.Error as err:
            said = " ".join(str(err).split())
            why = "it is locked by another process" if "lock" in said.lower() else said
            raise ConnectionFailure(
                f"DuckDB {path}: cannot open the file: {why}", "other"
            ) from None
        connected = time.perf_counter()
        version = con.execute(
            "SELECT version(), (SELECT count(*) FROM duckdb_tables() "
            "WHERE database_name = 'osiris_ping')"
        ).fetchone()
        answered = time.perf_counter()
    finally:
        con.close()
    return PingResult(
        _text(version[0]) if version else None, _ms(answered - connected), _ms(connected - started)
    )


def _filesystem(fields: Mapping[str, Any], root: Path) -> PingResult:
    """base_dir exists, is a folder, and can be listed."""
    path = _path(fields.get("base_dir"), root, "base_dir")
    started = time.perf_counter()
    if not path.exists():
        raise ConnectionFailure(f"folder {path} does not exist", "unknown_database")
    if not path.is_dir():
        raise ConnectionFailure(f"{path} is not a folder", "unknown_database")
    try:
        with os.scandir(path) as entries:
            count = sum(1 for _ in entries)
    except OSError as err:
        raise ConnectionFailure(
            f"folder {path} cannot be read: {err.strerror or err}", "other"
        ) from None
    return PingResult(None, _ms(time.perf_counter() - started), note=f"{count} entries")


def _path(raw: Any, root: Path, field: str) -> Path:
    if not isinstance(raw, str) or not raw:
        raise ConnectionFailure(f"the connection has no {field}", "other")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else root / path


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
