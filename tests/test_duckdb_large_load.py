"""PostgreSQL -> DuckDB loads larger than a few row groups: one transaction, rows in source order.

The DuckDB writer appends with a small memory_limit and lets DuckDB write full row groups to the
file before the commit (duckdb_settings.load_memory_limit); the load must still commit all rows at
once, or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from runtime_helpers import run_steps, step

pytestmark = pytest.mark.postgres

ROWS = 400_000  # > 3 DuckDB row groups (122,880 rows each)


def _project(project: Path, pg_db: dict[str, Any]) -> None:
    fields = {k: pg_db[k] for k in ("host", "port", "user", "password", "database")}
    text = json.dumps({"connections": {"postgres": {"src": fields}}})
    (project / "osiris_connections.yaml").write_text(text, encoding="utf-8")
    con = duckdb.connect(str(project / "target.duckdb"))
    con.execute("CREATE TABLE orders (id INTEGER, note VARCHAR)")
    con.execute("INSERT INTO orders VALUES (-1, 'old'), (-2, 'old')")
    con.close()


def _load(project: Path, query: str, mode: str) -> Any:
    outcome, _ = run_steps(
        project,
        [
            step(
                "extract",
                "postgres.extractor",
                "extractor",
                {"query": query},
                connection="@postgres.src",
            ),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"path": "target.duckdb", "table": "orders", "write_mode": mode},
                needs=["extract"],
            ),
        ],
    )
    return outcome


def _target(project: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(project / "target.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_large_load_commits_every_row_in_order(
    pg_db: dict[str, Any], tmp_path: Path, mode: str
) -> None:
    _project(tmp_path, pg_db)
    query = f"SELECT g AS id, 'note for order ' || g AS note FROM generate_series(1, {ROWS}) g"
    outcome = _load(tmp_path, query, mode)
    assert outcome.exit_code == 0, outcome.error
    load = {s.step_id: s for s in outcome.steps}["load"]
    assert (load.rows_in, load.rows_out) == (ROWS, ROWS)
    old = 2 if mode == "append" else 0
    first = "(SELECT min(rowid) FROM orders WHERE id > 0)"  # after any rows already there
    new = f"SELECT id, rowid - {first} AS position, note FROM orders WHERE id > 0"
    assert _target(
        tmp_path,
        f"SELECT count(*), count(*) FILTER (WHERE id <> position + 1 OR note <> 'note for order ' "
        f"|| id) FROM ({new})",
    ) == [(ROWS, 0)]
    assert _target(tmp_path, "SELECT count(*) FROM orders WHERE id < 0") == [(old,)]
    assert _target(tmp_path, "SELECT table_name FROM duckdb_tables()") == [("orders",)]


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_large_load_failing_late_leaves_the_target_as_it_was(
    pg_db: dict[str, Any], tmp_path: Path, mode: str
) -> None:
    _project(tmp_path, pg_db)
    # PostgreSQL fails the COPY at row 350,000 (division by zero), after the writer has taken
    # more than two full row groups.
    query = (
        f"SELECT g AS id, 'note ' || (1 / (350000 - g)) AS note FROM generate_series(1, {ROWS}) g"
    )
    outcome = _load(tmp_path, query, mode)
    assert outcome.exit_code == 4
    by_id = {s.step_id: s for s in outcome.steps}
    assert by_id["extract"].status == "failed" and "division by zero" in (
        by_id["extract"].error or ""
    )
    assert by_id["extract"].rows_in > 250_000
    assert by_id["load"].status == "failed" and "rolled back" in (by_id["load"].error or "")
    assert _target(tmp_path, "SELECT * FROM orders ORDER BY id DESC") == [
        (-1, "old"),
        (-2, "old"),
    ]
    assert _target(tmp_path, "SELECT table_name FROM duckdb_tables()") == [("orders",)]
