"""The http connection's transport on real sockets: a dropped connection and a timeout are retried; verify_tls against a self-signed HTTPS server."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from runtime_helpers import run_steps, step, write_connections

from osiris.runtime.contract.exits import ExitCode

ROWS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


class _Handler(BaseHTTPRequestHandler):
    """Misbehaves on the first requests as the server's script says, then answers ROWS."""

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen += 1
            act = self.server.script.pop(0) if self.server.script else "answer"
        if act == "drop":  # close the socket without a status line
            self.close_connection = True
            return
        if act == "stall":
            time.sleep(1.5)
        body = json.dumps({"items": ROWS}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a stall
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    lock = threading.Lock()
    script: list[str]
    seen: int = 0


def _serve(script: list[str], tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, _Server]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.script, server.seen = list(script), 0
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run(project: Path, base: str, extra: str = "", **config: Any) -> tuple[Any, list[Any]]:
    write_connections(
        project,
        f"version: 1\nconnections:\n  http:\n    api:\n      base_url: {base}\n{extra}",
    )
    steps = [
        step(
            "src", "rest.extractor", "extractor", {"path": "/x", **config}, connection="@http.api"
        ),
        step("out", "filesystem.parquet_writer", "writer", {"path": "o.parquet"}, needs=["src"]),
    ]
    outcome, _ = run_steps(project, steps, environ={})
    rows = pq.read_table(project / "o.parquet").to_pylist() if outcome.exit_code == 0 else []
    return outcome, rows


def test_a_dropped_connection_and_a_timeout_are_retried(tmp_path: Path) -> None:
    servers = _serve(["drop", "stall"])
    base, server = next(servers)
    try:
        outcome, rows = _run(tmp_path, base, "      timeout: 0.5\n", retry_backoff=0)
        assert outcome.exit_code == 0, outcome.error
        assert rows == ROWS and server.seen == 3
        log = (outcome.run_dir / "run.log").read_text(encoding="utf-8")
        assert "the connection to" in log and "did not answer within 0.5s" in log
        assert log.count("; retrying") == 2
    finally:
        servers.close()


def test_retries_on_dropped_connections_give_up_as_a_run_failure(tmp_path: Path) -> None:
    """The API was reached (unlike a refused connection, exit 5): a run failure, exit 4."""
    servers = _serve(["drop"] * 5)
    base, server = next(servers)
    try:
        outcome, _ = _run(tmp_path, base, max_retries=2, retry_backoff=0)
        assert outcome.exit_code == ExitCode.RUN_FAILED
        assert "the connection to" in (outcome.error or "") and server.seen == 3
    finally:
        servers.close()


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_verify_tls_refuses_a_self_signed_server_unless_turned_off(
    tmp_path: Path, self_signed: ssl.SSLContext
) -> None:
    servers = _serve([], tls=self_signed)
    base, server = next(servers)
    try:
        outcome, _ = _run(tmp_path, base, max_retries=0)
        assert outcome.exit_code == ExitCode.CONFIGURATION
        assert "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")
        assert server.seen == 0  # no request went over the unverified channel
        outcome, rows = _run(tmp_path, base, "      verify_tls: false\n")
        assert outcome.exit_code == 0, outcome.error
        assert rows == ROWS and server.seen == 1
    finally:
        servers.close()
