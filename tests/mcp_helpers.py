"""Shared by the MCP tests: a project on disk, pipelines, and reading results as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from invariants import CANARY_VALUE, CANARY_VAR

# A pipeline over two connections of `write_project` (its first component is on line 7).
VALID = """\
oml_version: "0.1.0"
name: orders-copy
params:
  since: {type: string, default: "2024-01-01"}
steps:
  - id: orders
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.shop"
      query: "SELECT id, amount FROM orders WHERE created_at >= '${params.since}'"
  - id: load
    component: postgres.writer
    mode: write
    needs: [orders]
    config:
      connection: "@postgres.wh"
      table: orders_copy
      write_mode: append
"""


def connections_yaml(mysql: dict[str, Any], pg: dict[str, Any]) -> str:
    """The shop (MariaDB) and wh (PostgreSQL) aliases; every password is the canary, by reference."""
    return f"""\
version: 1
connections:
  mysql:
    shop:
      host: {mysql["host"]}
      port: {mysql["port"]}
      user: {mysql["user"]}
      database: {mysql["database"]}
      password: ${{{CANARY_VAR}}}
  postgres:
    wh:
      host: {pg["host"]}
      port: {pg["port"]}
      user: {pg["user"]}
      database: {pg["database"]}
      password: ${{{CANARY_VAR}}}
    by-url:
      dsn: postgresql://{pg["user"]}:${{{CANARY_VAR}}}@{pg["host"]}:{pg["port"]}/{pg["database"]}
"""


FAKE_MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "shop"}
FAKE_PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "wh"}
ENVIRON = {CANARY_VAR: CANARY_VALUE}


def write_project(
    root: Path, mysql: dict[str, Any] = FAKE_MYSQL, pg: dict[str, Any] = FAKE_PG
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "osiris_connections.yaml").write_text(connections_yaml(mysql, pg), encoding="utf-8")
    return root


def payload(result: Any) -> dict[str, Any]:
    """A tool result's structured content (checked to equal its JSON text content)."""
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict)
    assert json.loads(result.content[0].text) == data
    return data


def error_text(result: Any) -> str:
    assert result.is_error, result.structured_content
    return " ".join(block.text for block in result.content)


def assert_no_secret(result: Any) -> None:
    dumped = result.model_dump_json()
    assert CANARY_VALUE not in dumped
    assert CANARY_VALUE.replace("#", "%23") not in dumped
