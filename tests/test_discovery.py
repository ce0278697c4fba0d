"""Discovery through its cache on the real servers: a test per miss reason, unreachable servers,
corrupt entries, concurrent writers, secrets, the lookup for checks, and `osiris discover`."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from osiris.compiler.discovery import cache, service
from osiris.compiler.discovery.lookup import catalog_lookup
from osiris.compiler.discovery.service import DiscoveryError, discover
from osiris.runtime.contract.connections import ConnectionRef

CANARY = "canary-Pw-7f3a9c41"


class Proxy:
    """A TCP forwarder to a real server; stop() makes its port refuse connections, so the same
    connection identity (host, port) becomes unreachable."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for s in self.sockets:
            s.close()


@pytest.fixture
def proxy_mysql(mysql_db: dict[str, Any]) -> Iterator[Proxy]:
    proxy = Proxy(int(mysql_db["port"]))
    yield proxy
    proxy.stop()


def _project(root: Path, connections: dict[str, Any]) -> Path:
    (root / "osiris_connections.yaml").write_text(
        yaml.safe_dump({"version": 1, "connections": connections})
    )
    return root


def _mysql_conn(db: dict[str, Any], **extra: Any) -> dict[str, Any]:
    fields = {k: db[k] for k in ("host", "port", "database", "user")}
    return {"mysql": {"main": {**fields, "password": "${MYSQL_PW:-}", **extra}}}


def _pg_conn(db: dict[str, Any], **extra: Any) -> dict[str, Any]:
    fields = {k: db[k] for k in ("host", "port", "database", "user")}
    return {"postgres": {"main": {**fields, **extra}}}


def _run(root: Path, ref: str, environ: dict[str, str] | None = None, **kw: Any) -> Any:
    return discover(
        ref,
        project_root=root,
        connections_path=root / "osiris_connections.yaml",
        environ=environ or {},
        **kw,
    )


def _mysql(db: dict[str, Any], *statements: str) -> None:
    import pymysql

    conn = pymysql.connect(**db, autocommit=True)
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


def _pg(db: dict[str, Any], *statements: str) -> None:
    import psycopg

    with psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], dbname=db["database"], autocommit=True
    ) as conn:
        for sql in statements:
            conn.execute(sql)


def _status(result: Any) -> tuple[str, str | None, bool]:
    s = result.cache_status
    return s.status, s.reason, s.verified


# ---- miss reasons ----------------------------------------------------------------------------


def test_mysql_reasons_new_hit_options_refresh_catalog_spec_connection(
    mysql_db: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mysql(
        mysql_db, "CREATE TABLE a_catalog (id INT PRIMARY KEY)", "CREATE TABLE b_catalog (x INT)"
    )
    root = _project(tmp_path, _mysql_conn(mysql_db))
    first = _run(root, "@mysql.main")
    assert _status(first) == ("miss", "new", True)
    assert first.connection == "@mysql.main" and first.cache_status.key.startswith("sha256:")
    hit = _run(root, "@mysql")  # the only alias is the default one: the same entry
    assert _status(hit) == ("hit", None, True) and hit.catalog == first.catalog
    assert hit.cache_status.key == first.cache_status.key and hit.cache_status.age_s is not None
    assert _status(_run(root, "@mysql.main", tables=["a_catalog"])) == ("miss", "options", True)
    assert _status(_run(root, "@mysql.main", samples=1)) == ("miss", "options", True)
    assert _status(_run(root, "@mysql.main", refresh=True)) == ("miss", "refresh", True)
    assert _status(_run(root, "@mysql.main")) == ("hit", None, True)
    _mysql(mysql_db, "ALTER TABLE b_catalog ADD COLUMN y VARCHAR(5)")
    changed = _run(root, "@mysql.main")
    assert _status(changed) == ("miss", "catalog", True)
    b = changed.catalog.table("b_catalog")
    assert b is not None and [c.name for c in b.columns] == ["x", "y"]
    # a table outside the selection changes: the selection's entry still holds
    _mysql(mysql_db, "ALTER TABLE b_catalog ADD COLUMN z INT")
    assert _status(_run(root, "@mysql.main", tables=["a_catalog"])) == ("hit", None, True)
    monkeypatch.setattr(service, "spec_fingerprint", lambda family: ("mysql.extractor", "sha256:0"))
    assert _status(_run(root, "@mysql.main")) == ("miss", "spec", True)
    monkeypatch.undo()
    _project(root, _mysql_conn({**mysql_db, "host": "localhost"}))
    assert _status(_run(root, "@mysql.main")) == ("miss", "connection", True)
    # entries of the old identity or spec can never be hit again: they are removed
    left = cache.entries(cache.connection_dir(root, "mysql", "main"))
    assert len(left) == 1 and left[0].parts["connection"]["host"] == "localhost"


def test_postgres_catalog_reason_after_alter(pg_db: dict[str, Any], tmp_path: Path) -> None:
    _pg(pg_db, "CREATE TABLE t_catalog (id int PRIMARY KEY, name text)")
    root = _project(tmp_path, _pg_conn(pg_db))
    assert _status(_run(root, "@postgres.main")) == ("miss", "new", True)
    assert _status(_run(root, "@postgres.main")) == ("hit", None, True)
    _pg(pg_db, "ALTER TABLE t_catalog ALTER COLUMN name TYPE varchar(20)")
    result = _run(root, "@postgres.main")
    assert _status(result) == ("miss", "catalog", True)
    t = result.catalog.table("t_catalog")
    assert t is not None and t.columns[1].db_type == "character varying(20)"
    assert _status(_run(root, "@postgres.main", schema="public")) == ("miss", "options", True)


def test_duckdb_catalog_reason_after_alter(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "data_catalog.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t_catalog (id INTEGER)")
    root = _project(tmp_path, {"duckdb": {"local": {"path": "data_catalog.duckdb"}}})
    assert _status(_run(root, "@duckdb.local")) == ("miss", "new", True)
    assert _status(_run(root, "@duckdb.local")) == ("hit", None, True)
    with duckdb.connect(str(db)) as con:
        con.execute("ALTER TABLE t_catalog ADD COLUMN note VARCHAR")
    assert _status(_run(root, "@duckdb.local")) == ("miss", "catalog", True)


def test_filesystem_alias_relative_base_dir_and_catalog_reason(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a_catalog.csv").write_text("id,name\n1,x\n")
    root = _project(tmp_path, {"filesystem": {"files": {"base_dir": "data"}}})
    first = _run(root, "@filesystem.files")
    assert _status(first) == ("miss", "new", True)
    assert [t.name for t in first.catalog.tables] == ["a_catalog.csv"]
    assert _status(_run(root, "@filesystem.files")) == ("hit", None, True)
    (data / "a_catalog.csv").write_text("id,name,extra\n1,x,y\n")
    assert _status(_run(root, "@filesystem.files")) == ("miss", "catalog", True)
    (data / "b_catalog.csv").write_text("k\n1\n")
    result = _run(root, "@filesystem.files")
    assert _status(result) == ("miss", "catalog", True) and len(result.catalog.tables) == 2


# ---- unreachable servers, TTL --------------------------------------------------------------


def test_unreachable_server_uses_a_young_entry_unverified_and_an_old_one_is_ttl(
    mysql_db: dict[str, Any], proxy_mysql: Proxy, tmp_path: Path
) -> None:
    _mysql(mysql_db, "CREATE TABLE t_catalog (id INT)")
    root = _project(tmp_path, _mysql_conn({**mysql_db, "port": proxy_mysql.port}))
    fresh = _run(root, "@mysql.main")
    assert _status(fresh) == ("miss", "new", True)
    proxy_mysql.stop()
    stale = _run(root, "@mysql.main")
    assert _status(stale) == ("hit", "unreachable", False)
    assert stale.catalog == fresh.catalog and any("not verified" in w for w in stale.warnings)
    with pytest.raises(DiscoveryError) as expired:
        _run(root, "@mysql.main", max_age=0)
    assert expired.value.exit_code == 5 and expired.value.cache_status is not None
    assert expired.value.cache_status.reason == "ttl" and "--max-age" in str(expired.value)
    with pytest.raises(DiscoveryError) as nothing:
        _run(root, "@mysql.main", tables=["t_catalog"])
    assert nothing.value.exit_code == 5 and "nothing is cached" in str(nothing.value)
    assert nothing.value.cache_status is not None
    assert nothing.value.cache_status.reason == "options"


def test_unreachable_server_without_any_entry_is_exit_5(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    conn = {"host": "127.0.0.1", "port": port, "database": "d", "user": "u"}
    root = _project(tmp_path, {"mysql": {"gone": conn}})
    with pytest.raises(DiscoveryError) as err:
        _run(root, "@mysql.gone")
    assert err.value.exit_code == 5 and "refused" in str(err.value).lower()
    assert err.value.cache_status is not None and err.value.cache_status.reason == "new"
    assert not (root / ".osiris").exists() or not any((root / ".osiris").rglob("*.json"))


# ---- cache files ---------------------------------------------------------------------------


def _entry_files(root: Path) -> list[Path]:
    return sorted((root / cache.CACHE_DIR).rglob("*"))


def test_corrupt_entry_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x_catalog.csv").write_text("a\n1\n")
    root = _project(tmp_path, {"filesystem": {"files": {"base_dir": "d"}}})
    first = _run(root, "@filesystem.files")
    path = cache.entry_path(
        cache.connection_dir(root, "filesystem", "files"), first.cache_status.key[7:]
    )
    assert path.is_file()
    for garbage in ("{not json", json.dumps({"version": 1, "key": "x"}), ""):
        path.write_text(garbage)
        assert _status(_run(root, "@filesystem.files")) == ("miss", "corrupt", True)
        assert cache.read_entry(path) is not None
        assert _status(_run(root, "@filesystem.files")) == ("hit", None, True)
    lookup = catalog_lookup(
        "cached", project_root=root, connections_path=None, environ={}
    )  # a corrupt neighbour is ignored
    (path.parent / ("0" * 64 + ".json")).write_text("[]")
    catalog = lookup(ConnectionRef("filesystem", "files"))
    assert catalog is not None and [t.name for t in catalog.tables] == ["x_catalog.csv"]


def test_an_entry_is_parsed_once_per_version_of_its_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x_catalog.csv").write_text("a\n1\n")
    root = _project(tmp_path, {"filesystem": {"files": {"base_dir": "d"}}})
    first = _run(root, "@filesystem.files")
    folder = cache.connection_dir(root, "filesystem", "files")
    path = cache.entry_path(folder, first.cache_status.key[7:])
    assert cache.read_entry(path) is cache.read_entry(path)  # the editor's keystrokes: no re-parse
    (tmp_path / "d" / "y_catalog.csv").write_text("b\n2\n")
    _run(root, "@filesystem.files")  # the folder changed: the entry is replaced
    entry = cache.read_entry(path)
    assert entry is not None
    assert sorted(t.name for t in entry.catalog.tables) == ["x_catalog.csv", "y_catalog.csv"]


WRITER = """
import sys
from pathlib import Path
from osiris.compiler.discovery import cache
from osiris.compiler.discovery.service import discover
root = Path(sys.argv[1])
for _ in range(8):
    r = discover("@filesystem.files", project_root=root,
                 connections_path=root / "osiris_connections.yaml", environ={}, refresh=True)
    path = cache.entry_path(cache.connection_dir(root, "filesystem", "files"), r.cache_status.key[7:])
    if cache.read_entry(path) is None:
        sys.exit("read a broken entry")
"""


def test_concurrent_writers_leave_a_valid_entry_and_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for i in range(20):
        (tmp_path / "d" / f"t{i}_catalog.csv").write_text("a,b\n1,2\n")
    root = _project(tmp_path, {"filesystem": {"files": {"base_dir": "d"}}})
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    files = _entry_files(root)
    assert [p.suffix for p in files if p.is_file()] == [".json"]
    assert _status(_run(root, "@filesystem.files")) == ("hit", None, True)


# ---- secrets -------------------------------------------------------------------------------


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def osiris_in(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`osiris discover ...` in this process (as fast as a function call, same output)."""
    from osiris.compiler.cli import osiris_main

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Ran:
        monkeypatch.chdir(cwd)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = osiris_main(["discover", *args])
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def _osiris(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from osiris.compiler.cli import osiris_main; "
         "sys.exit(osiris_main())", "discover", *args],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip


def test_canary_password_never_in_cache_or_output(pg_db: dict[str, Any], tmp_path: Path) -> None:
    _pg(pg_db, "CREATE TABLE t_catalog (id int)")
    root = _project(tmp_path, _pg_conn(pg_db, password="${PG_CANARY}"))  # trust auth: ignored
    env = {"PG_CANARY": CANARY}
    for args in (("@postgres.main", "--format", "json"), ("@postgres.main", "--samples", "1")):
        proc = _osiris(*args, cwd=root, env=env)
        assert proc.returncode == 0, proc.stderr
        assert CANARY not in proc.stdout + proc.stderr
    files = [p for p in root.joinpath(".osiris").rglob("*") if p.is_file()]
    assert files and all(CANARY not in p.read_text() for p in files)
    entry = cache.read_entry(files[0])
    assert entry is not None and "password" not in entry.parts["connection"]


def test_canary_password_rejected_is_not_in_the_error(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    root = _project(tmp_path, _mysql_conn(mysql_db, user="nobody_catalog"))
    for fmt in ("text", "json"):
        proc = _osiris("@mysql.main", "--format", fmt, cwd=root, env={"MYSQL_PW": CANARY})
        assert proc.returncode == 5, proc.stdout + proc.stderr
        assert CANARY not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
        assert "nobody_catalog" in proc.stdout + proc.stderr


# ---- the command ---------------------------------------------------------------------------


def test_cli_json_document_and_hit(
    mysql_db: dict[str, Any], tmp_path: Path, osiris_in: Any
) -> None:
    _osiris = osiris_in
    _mysql(mysql_db, "CREATE TABLE t_catalog (id INT PRIMARY KEY, email VARCHAR(50))",
           "INSERT INTO t_catalog VALUES (1, 'a@example.com')")  # fmt: skip
    root = _project(tmp_path, _mysql_conn(mysql_db))
    first = _osiris("@mysql.main", "--samples", "1", "--show-samples", "--format", "json", cwd=root)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["connection"] == "@mysql.main"
    assert doc["cache"]["status"] == "miss" and doc["cache"]["reason"] == "new"
    assert doc["cache"]["key"].startswith("sha256:") and doc["cache"]["verified"] is True
    (table,) = doc["tables"]
    assert table["name"] == "t_catalog" and table["primary_key"] == ["id"]
    assert table["columns"][0] == {
        "name": "id", "db_type": "int(11)", "arrow_type": "int32", "nullable": False,
        "default": None, "primary_key_position": 1,
    }  # fmt: skip
    assert table["samples"] == [{"id": 1, "email": "a@example.com"}]
    again = json.loads(
        _osiris("@mysql.main", "--samples", "1", "--format", "json", cwd=root).stdout
    )
    assert again["cache"]["status"] == "hit" and again["cache"]["reason"] is None
    assert again["cache"]["key"] == doc["cache"]["key"] and again["cache"]["age_s"] >= 0
    text = _osiris("@mysql.main", "--tables", "t_catalog,missing_catalog", cwd=root)
    assert text.returncode == 0 and "t_catalog" in text.stdout and "int32" in text.stdout
    assert "no such table(s): missing_catalog" in text.stderr


def test_cli_path_folder(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "d" / "p_catalog.parquet")
    proc = _osiris("--path", "d", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["tables"][0]["name"] == "p_catalog.parquet" and doc["tables"][0]["row_estimate"] == 2
    assert doc["connection"] == f"--path {(tmp_path / 'd').resolve()}"
    (tmp_path / "osiris.yaml").write_text("{}\n")  # a project root above the cwd
    (tmp_path / "sub" / "d").mkdir(parents=True)
    (tmp_path / "sub" / "d" / "near_catalog.csv").write_text("a\n1\n")
    nested = _osiris("--path", "d", "--format", "json", cwd=tmp_path / "sub")
    assert [t["name"] for t in json.loads(nested.stdout)["tables"]] == ["near_catalog.csv"]
    assert (tmp_path / ".osiris" / "cache" / "discovery").is_dir()  # the project's cache


def test_cli_exit_codes_without_tracebacks(tmp_path: Path, osiris_in: Any) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken_catalog.parquet").write_bytes(b"not parquet")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = {"host": "127.0.0.1", "port": port, "database": "d", "user": "u"}
    root = _project(tmp_path, {"mysql": {"gone": conn}, "duckdb": {"a": {"path": "x.duckdb"}},
                               "other": {"x": {"a": 1}}})  # fmt: skip
    cases = [
        ((), 2),
        (("nope",), 2),
        (("@mysql.gone", "--path", "bad"), 2),
        (("@mysql.gone", "--samples", "many"), 2),
        (("@mysql.gone", "--max-age", "-1"), 2),
        (("@mysql.gone", "--validation", "loose"), 2),
        (("@mysql.unknown",), 5),
        (("@mysql.gone",), 5),
        (("@duckdb.a",), 5),
        (("@other.x",), 5),
        (("--path", "missing_dir"), 5),
        (("--path", "bad"), 4),
    ]
    for args, code in cases:
        for fmt in ("text", "json"):
            proc = osiris_in(*args, "--format", fmt, cwd=root)
            assert proc.returncode == code, (args, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stderr + proc.stdout
            if fmt == "json":
                assert json.loads(proc.stdout)["exit_code"] == code
            else:
                assert proc.stderr.strip() and len(proc.stderr.strip().splitlines()) <= 6
    # and as a process of its own
    proc = _osiris("@mysql.gone", cwd=root)
    assert proc.returncode == 5 and "Traceback" not in proc.stderr and "refused" in proc.stderr


def test_validation_switch_reaches_the_resolver(
    pg_db: dict[str, Any], tmp_path: Path, osiris_in: Any
) -> None:
    _osiris = osiris_in
    _pg(pg_db, "CREATE TABLE t_catalog (id int)")
    root = _project(tmp_path, _pg_conn(pg_db, password="literal-catalog-secret"))
    strict = _osiris("@postgres.main", "--validation", "strict", cwd=root)
    assert strict.returncode == 5 and "literally" in strict.stderr
    assert "literal-catalog-secret" not in strict.stdout + strict.stderr
    warn = _osiris("@postgres.main", cwd=root)
    assert warn.returncode == 0 and "literally" in warn.stderr
    off = _osiris("@postgres.main", "--validation", "off", cwd=root)
    assert off.returncode == 0 and "literally" not in off.stderr
    env_strict = _osiris("@postgres.main", cwd=root, env={"OSIRIS_VALIDATION": "strict"})
    assert env_strict.returncode == 5


# ---- the lookup for checks -----------------------------------------------------------------


def test_catalog_lookup_cached_live_off(
    mysql_db: dict[str, Any], proxy_mysql: Proxy, tmp_path: Path
) -> None:
    _mysql(mysql_db, "CREATE TABLE a_catalog (id INT)", "CREATE TABLE b_catalog (id INT)")
    root = _project(tmp_path, _mysql_conn({**mysql_db, "port": proxy_mysql.port}))
    conns = root / "osiris_connections.yaml"
    ref = ConnectionRef("mysql", None)
    cached = catalog_lookup("cached", project_root=root, connections_path=conns, environ={})
    assert cached(ref) is None  # nothing discovered yet, and it never connects
    _run(root, "@mysql.main", tables=["a_catalog"])
    _run(root, "@mysql.main", tables=["b_catalog"])
    merged = cached(ref)
    assert merged is not None and {t.name for t in merged.tables} == {"a_catalog", "b_catalog"}
    assert cached(ConnectionRef("mysql", "other")) is None
    live = catalog_lookup("live", project_root=root, connections_path=conns, environ={})
    found = live(ConnectionRef("mysql", "main"))
    assert found is not None and {t.name for t in found.tables} == {"a_catalog", "b_catalog"}
    assert live(ConnectionRef("mysql", "nope")) is None
    off = catalog_lookup("off", project_root=root, connections_path=conns, environ={})
    assert off(ref) is None
    proxy_mysql.stop()
    assert cached(ref) is not None  # still: the cache only
    shutil_free = catalog_lookup("live", project_root=root, connections_path=conns, environ={})
    assert shutil_free(ConnectionRef("mysql", "main")) is not None  # young entry, unverified
    _project(root, _mysql_conn({**mysql_db, "port": proxy_mysql.port, "user": "other_catalog"}))
    never = catalog_lookup("live", project_root=root, connections_path=conns, environ={})
    assert never(ConnectionRef("mysql", "main")) is None  # unreachable, nothing cached: None


def test_init_template_ignores_the_cache() -> None:
    from importlib import resources

    text = resources.files("osiris.compiler").joinpath("templates/project/gitignore").read_text()
    assert ".osiris/" in text.split()


def test_dsn_connection_identity_never_holds_its_password(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    _pg(pg_db, "CREATE TABLE t_catalog (id int)")
    where = f"{pg_db['host']}:{pg_db['port']}"
    dsn = f"postgresql://{pg_db['user']}:{CANARY}@{where}/{pg_db['database']}"
    root = _project(tmp_path, {"postgres": {"main": {"dsn": "${PG_DSN}"}}})
    first = _run(root, "@postgres.main", environ={"PG_DSN": dsn})
    assert _status(first) == ("miss", "new", True)
    files = [p for p in (root / ".osiris").rglob("*") if p.is_file()]
    assert len(files) == 1 and CANARY not in files[0].read_text()
    entry = cache.read_entry(files[0])
    assert entry is not None and entry.parts["connection"] == {
        "family": "postgres", "alias": "main", "host": pg_db["host"], "port": pg_db["port"],
        "database": pg_db["database"], "user": pg_db["user"],
    }  # fmt: skip
    other = f"postgresql://{pg_db['user']}:{CANARY}@{where}/postgres"
    assert _status(_run(root, "@postgres.main", environ={"PG_DSN": other})) == (
        "miss", "connection", True,
    )  # fmt: skip


HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_duckdb_file_locked_by_a_writer_uses_the_entry_unverified(tmp_path: Path) -> None:
    import duckdb

    db = tmp_path / "locked_catalog.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t_catalog (id INTEGER)")
    root = _project(tmp_path, {"duckdb": {"local": {"path": str(db)}}})
    assert _status(_run(root, "@duckdb.local")) == ("miss", "new", True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert _status(_run(root, "@duckdb.local")) == ("hit", "unreachable", False)
        with pytest.raises(DiscoveryError) as err:
            _run(root, "@duckdb.local", max_age=0)
        assert err.value.exit_code == 5 and "lock" in str(err.value).lower()
    finally:
        holder.kill()
        holder.wait()


def test_samples_go_through_mask_samples_unless_show_samples(
    tmp_path: Path, osiris_in: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from osiris.compiler.discovery import mask

    def masked(table: Any) -> Any:
        return replace(table, samples=tuple({k: "***" for k in s} for s in table.samples))

    monkeypatch.setattr(mask, "mask_samples", masked)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "people_catalog.csv").write_text("email\nann@example.com\n")
    hidden = osiris_in("--path", "d", "--samples", "1", "--format", "json", cwd=tmp_path)
    assert json.loads(hidden.stdout)["tables"][0]["samples"] == [{"email": "***"}]
    assert "ann@example.com" not in hidden.stdout
    shown = osiris_in("--path", "d", "--samples", "1", "--show-samples", "--format", "json",
                      cwd=tmp_path)  # fmt: skip
    doc = json.loads(shown.stdout)
    assert doc["tables"][0]["samples"] == [{"email": "ann@example.com"}]
    assert doc["cache"]["status"] == "hit"  # --show-samples changes the display, not the key
    text = osiris_in("--path", "d", "--samples", "1", cwd=tmp_path)
    assert "***" in text.stdout and "ann@example.com" not in text.stdout


def test_cached_lookup_uses_only_the_newest_identity(tmp_path: Path) -> None:
    from osiris.runtime.catalog.model import Catalog, Column, Table

    folder = cache.connection_dir(tmp_path, "mysql", "main")

    def write(host: str, table: str, options: dict[str, Any]) -> None:
        identity = {"family": "mysql", "alias": "main", "host": host}
        parts = cache.KeyParts("mysql.extractor", "sha256:1", identity, options)
        catalog = Catalog("mysql", (Table(table, "s", (Column("id", "int", "int32", False),)),))
        cache.write_entry(cache.entry_path(folder, parts.key), parts, "d", catalog)

    write("old-host", "ghost_catalog", {"tables": None})
    write("new-host", "a_catalog", {"tables": ["a_catalog"]})
    write("new-host", "b_catalog", {"tables": ["b_catalog"]})
    lookup = catalog_lookup("cached", project_root=tmp_path, connections_path=None, environ={})
    found = lookup(ConnectionRef("mysql", "main"))
    assert found is not None and {t.name for t in found.tables} == {"a_catalog", "b_catalog"}
