"""Schema-aware checking fed by real discovery: `osiris discover` on MariaDB/PostgreSQL, then
`omlc check` (cached, live, off) on the tables, columns and processor SQL of a pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import omlc
from test_discovery import _mysql, _pg

PIPELINE = """oml_version: "0.1.0"
name: schema-e2e
steps:
  - id: orders
    component: {family}.extractor
    mode: read
    config:
      connection: "@{family}.main"
      table: {table}
      columns: [{columns}]
  - id: totals
    component: duckdb.processor
    mode: transform
    needs: [orders]
    config:
      query: "SELECT customer_id, sum({amount}) AS total FROM orders GROUP BY customer_id"
  - id: out
    component: filesystem.csv_writer
    mode: write
    needs: [totals]
    config: {{path: out.csv}}
"""


def _project(root: Path, family: str, db: dict[str, Any]) -> Path:
    fields = {k: db[k] for k in ("host", "port", "database", "user")}
    (root / "osiris_connections.yaml").write_text(
        yaml.safe_dump({"version": 1, "connections": {family: {"main": fields}}})
    )
    return root


def _write(root: Path, family: str, **parts: str) -> Path:
    values = {"table": "orders_e2e", "columns": "id, customer_id, amount", "amount": "amount"}
    path = root / "p.oml"
    path.write_text(PIPELINE.format(family=family, **(values | parts)))
    return path


def _codes(root: Path, path: Path, *flags: str) -> list[tuple[str, int]]:
    proc = omlc("check", str(path), "--format", "json", *flags, cwd=root)
    assert proc.returncode in (0, 2), proc.stderr
    report = json.loads(proc.stdout)
    return [(d["code"], d["range"]["start"]["line"]) for d in report["diagnostics"]]


def _discover(root: Path, ref: str, *args: str) -> dict[str, Any]:
    proc = omlc_osiris("discover", ref, "--format", "json", *args, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def omlc_osiris(*args: str, cwd: Path) -> Any:
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", "import sys; from osiris.compiler.cli import osiris_main; "
         "sys.exit(osiris_main())", *args],
        capture_output=True, text=True, cwd=cwd, env=dict(os.environ),
    )  # fmt: skip


@pytest.mark.parametrize("family", ["mysql", "postgres"])
def test_discovered_schema_finds_wrong_tables_columns_and_processor_sql(
    family: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db = request.getfixturevalue("mysql_db" if family == "mysql" else "pg_db")
    run = _mysql if family == "mysql" else _pg
    run(db, "CREATE TABLE orders_e2e (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2))")
    root = _project(tmp_path, family, db)
    # nothing discovered yet: the default (cached) check cannot judge, so it says nothing
    assert _codes(root, _write(root, family, table="orderz_e2e")) == []

    first = _discover(root, f"@{family}.main")
    assert first["cache"]["status"] == "miss"
    assert _codes(root, _write(root, family)) == []
    assert _codes(root, _write(root, family, table="orderz_e2e")) == [("OML150", 9)]
    assert _codes(root, _write(root, family, columns="id, custmer_id, amount")) == [("OML151", 10)]
    assert _codes(root, _write(root, family, amount="amont")) == [("OML153", 16)]
    # off is the check without schemas
    assert _codes(root, _write(root, family, amount="amont"), "--schema", "off") == []

    # the table changes: cached still knows the old columns, live sees the new one at once
    run(db, "ALTER TABLE orders_e2e ADD COLUMN discount INT")
    with_new = {"columns": "id, customer_id, amount, discount"}
    assert _codes(root, _write(root, family, **with_new)) == [("OML151", 10)]
    assert _codes(root, _write(root, family, **with_new), "--schema", "live") == []
    assert _codes(root, _write(root, family, **with_new)) == []  # live refreshed the entry


def test_a_discovery_of_some_tables_never_calls_others_missing(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    _mysql(
        mysql_db,
        "CREATE TABLE orders_e2e (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2))",
        "CREATE TABLE customers_e2e (id INT PRIMARY KEY, name TEXT)",
    )
    root = _project(tmp_path, "mysql", mysql_db)
    _discover(root, "@mysql.main", "--tables", "customers_e2e")
    # orders_e2e exists but was not asked for: no OML150 ...
    assert _codes(root, _write(root, "mysql")) == []
    # ... while a misspelt column of a discovered table is still an error
    customers = _write(root, "mysql", table="customers_e2e", columns="id, nme", amount="id")
    assert ("OML151", 10) in _codes(root, customers)
