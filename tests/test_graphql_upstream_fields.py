"""graphql.extractor with upstream's renamable pagination fields against a real server, and upstream's auth fields reported as having no effect."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from runtime_helpers import run_steps, step

from osiris.compiler.frontend import check_text
from osiris.oml.diagnostics import Severity

SHOPS = [{"id": i, "title": f"shop {i}"} for i in range(1, 6)]


class _Handler(BaseHTTPRequestHandler):
    """Two shops a page under data.shops.list, paged by data.shops.meta {more, next} and the
    variable `page`."""

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        variables = request.get("variables") or {}
        self.server.variables.append(variables)
        start = int(variables.get("page") or 0)
        more = start + 2 < len(SHOPS)
        meta = {"more": more, "next": str(start + 2) if more else None}
        body = json.dumps({"data": {"shops": {"list": SHOPS[start : start + 2], "meta": meta}}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    variables: list[dict[str, Any]]


@pytest.fixture
def endpoint() -> Iterator[tuple[str, _Server]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.variables = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/graphql", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_renamed_pagination_fields_walk_every_page(
    tmp_path: Path, endpoint: tuple[str, _Server]
) -> None:
    url, server = endpoint
    (tmp_path / "osiris.yaml").write_text("", encoding="utf-8")
    config = {
        "endpoint": url,
        "query": "query Shops($page: String) { shops(page: $page) { list { id title } } }",
        "variables": {"region": "eu"},
        "pagination_enabled": True,
        "pagination_path": "data.shops.meta",
        "pagination_has_next_field": "more",
        "pagination_cursor_field": "next",
        "pagination_variable_name": "page",
        "data_path": "data.shops.list",
    }
    steps = [
        step("src", "graphql.extractor", "extractor", config),
        step("out", "filesystem.parquet_writer", "writer", {"path": "s.parquet"}, needs=["src"]),
    ]
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert pq.read_table(tmp_path / "s.parquet").to_pylist() == SHOPS
    assert server.variables == [
        {"region": "eu"},
        {"region": "eu", "page": "2"},
        {"region": "eu", "page": "4"},
    ]


def test_upstream_auth_fields_are_accepted_with_no_effect_warnings() -> None:
    text = """oml_version: "0.1.0"
name: gql
steps:
  - id: products
    component: graphql.extractor
    mode: read
    config:
      connection: "@http.shop"
      endpoint: /graphql
      query: "{ products { id } }"
      auth_type: basic
      auth_username: reader
      auth_header_name: X-Api-Key
"""
    found = check_text(text, "p.oml").diagnostics
    assert not [d for d in found if d.severity == Severity.ERROR]
    warned = sorted(d.summary.split("'")[1] for d in found if d.code == "OML131")
    assert warned == ["auth_header_name", "auth_type", "auth_username"]
