"""The connections file is the trust boundary: steps may not redirect a connection, and the file's
own mistakes (literal secrets, unclosed ${, two defaults, typos) are reported by check and run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from drivers_ctx import make_ctx
from runtime_helpers import run_cli, step, write_connections, write_manifest

from osiris.compiler.lsp import features
from osiris.compiler.lsp.state import ConnectionsFile
from osiris.runtime.drivers.sql_common import DriverConfigError, settings

SECRET = "prod-pw-7f3a9c1e"
PROD = (
    "version: 1\nconnections:\n  mysql:\n"
    "    prod: {host: 127.0.0.1, port: 1, database: shop, user: app, password: '${PROD_PW}'}\n"
)
HEADER = 'oml_version: "0.1.0"\nname: trust\nsteps:\n'
REDIRECTED = (
    HEADER
    + "  - id: orders\n    component: mysql.extractor\n    mode: read\n    config:\n"
    + '      connection: "@mysql.prod"\n      table: orders\n'
    + "      host: evil.example.com\n      port: 3307\n"
)


def omlc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from osiris.compiler.cli import omlc_main; sys.exit(omlc_main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd
    )


def check_json(project: Path, pipeline: str = "p.oml") -> tuple[int, list[dict[str, Any]]]:
    done = omlc("check", pipeline, "--format", "json", cwd=project)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)["diagnostics"]


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP port on 127.0.0.1 that records (and drops) every connection made to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(peer)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


# -- a step may not override where or as whom a connection connects ---------------------------


def test_check_refuses_a_step_that_redirects_its_connection(tmp_path: Path) -> None:
    write_connections(tmp_path, PROD)
    (tmp_path / "p.oml").write_text(REDIRECTED)
    code, diagnostics = check_json(tmp_path)
    assert code == 2
    found = {(d["code"], d["severity"], d["summary"]) for d in diagnostics}
    assert ("OML022", "error", "'host' must not override the connection") in found
    assert ("OML022", "error", "'port' must not override the connection") in found
    host = next(d for d in diagnostics if d["summary"].startswith("'host'"))
    assert host["range"]["start"]["line"] == 10 and host["range"]["start"]["column"] == 7
    assert "osiris_connections.yaml, or define a new alias" in host["detail"]
    text = omlc("check", "p.oml", cwd=tmp_path)
    assert text.returncode == 2 and "OML022" in text.stdout


@pytest.mark.parametrize(
    ("component", "family", "field", "value"),
    [
        ("mysql.writer", "mysql", "user", "root"),
        ("mysql.writer", "mysql", "database", "other"),
        ("postgres.extractor", "postgres", "dsn", "postgresql://x@evil/db"),
        ("postgres.writer", "postgres", "database", "other"),
        ("supabase.writer", "supabase", "url", "https://evil.example.com"),
    ],
)
def test_every_location_field_is_an_error(
    tmp_path: Path, component: str, family: str, field: str, value: str
) -> None:
    write_connections(tmp_path, f"connections:\n  {family}:\n    main: {{host: h}}\n")
    role = "read" if component.endswith("extractor") else "write"
    body = (
        f"  - id: s\n    component: {component}\n    mode: {role}\n"
        + ("    needs: [src]\n" if role == "write" else "")
        + f'    config: {{connection: "@{family}.main", table: t, {field}: "{value}"}}\n'
    )
    source = (
        "  - id: src\n    component: filesystem.csv_extractor\n    mode: read\n"
        "    config: {path: in.csv}\n"
    )
    (tmp_path / "p.oml").write_text(HEADER + (source if role == "write" else "") + body)
    code, diagnostics = check_json(tmp_path)
    assert code == 2
    assert any(d["code"] == "OML022" and f"'{field}'" in d["summary"] for d in diagnostics)


def test_a_step_may_still_set_its_schema(tmp_path: Path) -> None:
    write_connections(tmp_path, "connections:\n  postgres:\n    main: {host: h}\n")
    (tmp_path / "p.oml").write_text(
        HEADER + "  - id: s\n    component: postgres.extractor\n    mode: read\n"
        '    config: {connection: "@postgres.main", table: t, schema: sales}\n'
    )
    code, diagnostics = check_json(tmp_path)
    assert not [d for d in diagnostics if d["code"] in ("OML022", "OML023")]
    assert code == 0, diagnostics


def test_compile_refuses_a_redirected_connection(tmp_path: Path) -> None:
    write_connections(tmp_path, PROD)
    (tmp_path / "p.oml").write_text(REDIRECTED)
    done = omlc("compile", "p.oml", "-o", "out", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "OML022" in done.stdout and not (tmp_path / "out").exists()


def test_run_refuses_a_hand_made_manifest_that_redirects_a_connection(
    tmp_path: Path, listener: tuple[int, list[object]]
) -> None:
    port, accepted = listener
    write_connections(tmp_path, PROD)
    config = {"table": "orders", "host": "127.0.0.1", "port": port}
    write_manifest(
        tmp_path / "build",
        [step("orders", "mysql.extractor", "extractor", config, connection="@mysql.prod")],
    )
    done = run_cli(["build"], cwd=tmp_path, env={"PROD_PW": SECRET})
    assert done.returncode == 5, done.stderr
    assert "host, port must not be set in the step" in done.stderr
    assert "define a new alias" in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert accepted == []  # refused before anything connected


def test_driver_settings_refuse_a_pinned_override(tmp_path: Path) -> None:
    """Defence in depth: the SQL drivers' settings() refuse it too, before any connect."""
    connection = {"host": "db", "user": "app", "password": SECRET, "database": "shop"}
    ctx = make_ctx(tmp_path, "s", {"table": "t", "host": "evil"}, connection)
    with pytest.raises(DriverConfigError, match="host must not be set"):
        settings(ctx)
    fine = make_ctx(tmp_path, "s", {"table": "t", "schema": "x", "batch_size": 5}, connection)
    assert settings(fine)["schema"] == "x" and settings(fine)["host"] == "db"
    inline = make_ctx(tmp_path, "s", {"table": "t", "host": "db2", "user": "u"}, None)
    assert settings(inline)["host"] == "db2"  # no connection: inline settings are the step's own


def test_the_editor_shows_the_override_error(tmp_path: Path) -> None:
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(PROD)
    got = features.diagnose(REDIRECTED, "file:///work/p.oml", ConnectionsFile(str(path)).get())
    errors = [d for d in got if d.code == "OML022"]
    assert len(errors) == 2 and all(d.severity == 1 for d in errors)
    host = next(d for d in errors if d.message.startswith("'host'"))
    assert host.range.start.line == 9 and host.range.start.character == 6


# -- the connections file's own mistakes --------------------------------------------------------

PIPELINE = (
    HEADER + "  - id: orders\n    component: mysql.extractor\n    mode: read\n"
    '    config: {connection: "@mysql.prod", table: orders}\n'
)


def _project(tmp_path: Path, connections: str) -> Path:
    write_connections(tmp_path, connections)
    (tmp_path / "p.oml").write_text(PIPELINE)
    return tmp_path


def test_literal_password_is_a_warning_that_shows_how_to_use_a_variable(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        f"connections:\n  mysql:\n    prod: {{host: h, database: d, user: u, password: {SECRET}}}\n",
    )
    code, diagnostics = check_json(project)
    (warning,) = [d for d in diagnostics if d["code"] == "OML101"]
    assert code == 0 and warning["severity"] == "warning"
    assert "${MYSQL_PASSWORD}" in warning["detail"]
    text = omlc("check", "p.oml", cwd=project)
    assert SECRET not in json.dumps(diagnostics) and SECRET not in text.stdout


def test_literal_password_is_refused_by_a_strict_run(tmp_path: Path) -> None:
    write_connections(
        tmp_path,
        f"version: 1\nconnections:\n  duckdb:\n    wh: {{path: w.duckdb, token: {SECRET}}}\n",
    )
    write_manifest(
        tmp_path / "build",
        [step("e", "duckdb.extractor", "extractor", {"table": "t"}, connection="@duckdb.wh")],
    )
    done = run_cli(["build", "--validation", "strict"], cwd=tmp_path)
    assert done.returncode == 5 and "token" in done.stderr and "${VAR}" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_references_paths_and_dsns_without_password_are_no_literal_secrets(
    tmp_path: Path,
) -> None:
    project = _project(
        tmp_path,
        "connections:\n  mysql:\n    prod: {host: h, database: d, user: u, password: '${PW}', "
        "ssl_key: /etc/ssl/client-key.pem}\n"  # a path: the schema does not mark it secret
        "  postgres:\n    wh: {dsn: 'postgresql://app@db/wh'}\n",
    )
    code, diagnostics = check_json(project)
    assert code == 0 and diagnostics == []


UNCLOSED = (
    "version: 1\nconnections:\n  mysql:\n"
    "    prod: {host: 127.0.0.1, port: PORT, database: d, user: u, "
    "password: '${TRIAL_PG_PASSWORD'}\n"
)


def test_unclosed_reference_is_an_error_at_check(tmp_path: Path) -> None:
    text = UNCLOSED.replace("PORT", "1")
    project = _project(tmp_path, text)
    code, diagnostics = check_json(project)
    (error,) = [d for d in diagnostics if d["code"] == "OML102"]
    assert code == 2 and error["severity"] == "error" and "'password'" in error["summary"]
    start, end = error["range"]["start"], error["range"]["end"]
    line = text.splitlines()[start["line"] - 1]
    assert line[start["column"] - 1 : end["column"] - 1] == "${"


def test_unclosed_reference_is_an_error_at_run(
    tmp_path: Path, listener: tuple[int, list[object]]
) -> None:
    port, accepted = listener
    write_connections(tmp_path, UNCLOSED.replace("PORT", str(port)))
    write_manifest(
        tmp_path / "build",
        [step("e", "mysql.extractor", "extractor", {"table": "t"}, connection="@mysql.prod")],
    )
    done = run_cli(["build"], cwd=tmp_path, env={"TRIAL_PG_PASSWORD": SECRET})
    assert done.returncode == 5, done.stderr
    assert "field password" in done.stderr and "closing" in done.stderr
    assert accepted == []  # the half-written password was never sent


TWO_DEFAULTS = (
    "version: 1\nconnections:\n  mysql:\n"
    "    prod: {host: h, database: d, user: u, default: true}\n"
    "    stage: {host: h2, database: d, user: u, default: true}\n"
)


def test_two_defaults_are_an_error_at_check(tmp_path: Path) -> None:
    project = _project(tmp_path, TWO_DEFAULTS)  # even though the step names its alias
    code, diagnostics = check_json(project)
    (error,) = [d for d in diagnostics if d["code"] == "OML103"]
    assert code == 2 and "prod, stage" in error["detail"]
    assert error["range"]["start"]["line"] == 5  # stage's `default: true`
    assert error["range"]["start"]["column"] == TWO_DEFAULTS.splitlines()[4].index("default") + 1


def test_two_defaults_are_an_error_at_run(tmp_path: Path) -> None:
    write_connections(tmp_path, TWO_DEFAULTS)
    write_manifest(
        tmp_path / "build",
        [step("e", "mysql.extractor", "extractor", {"table": "t"}, connection="@mysql.prod")],
    )
    done = run_cli(["build"], cwd=tmp_path)
    assert done.returncode == 5 and "several mysql aliases are marked default" in done.stderr


def test_field_typo_gets_a_did_you_mean_at_check(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        "connections:\n  mysql:\n    prod: {host: h, database: d, user: u, pasword: '${PW}'}\n",
    )
    code, diagnostics = check_json(project)
    (warning,) = [d for d in diagnostics if d["code"] == "OML104"]
    assert code == 0 and warning["severity"] == "warning"
    assert "Did you mean 'password'?" in warning["detail"]
    assert warning["suggestions"][0]["replacement"] == "password"
