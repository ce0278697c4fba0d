"""incremental lag: a row that arrives late (its cursor below the stored maximum, within lag) is re-read by the next run and upserted once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import mysql_rows, pg_rows, run_steps, step, write_connections

from osiris.runtime.records.state import state_path
from tests.http_api import ApiState, records, serve

DAY = 86_400  # seconds


def _last_value(project: Path) -> Any:
    path = state_path(project, "test-pipeline", "src")
    return json.loads(path.read_text(encoding="utf-8"))["last_value"]


def _db_connections(project: Path, family: str, db: dict[str, Any]) -> None:
    write_connections(
        project,
        f"version: 1\nconnections:\n  {family}:\n    main:\n"
        f"      host: {db['host']}\n      port: {db['port']}\n      database: {db['database']}\n"
        f"      user: {db['user']}\n      password: '{db['password']}'\n",
    )


def _sql_steps(family: str) -> list[dict[str, Any]]:
    read = {
        "table": "events_sm",
        "incremental": {
            "cursor_column": "updated_at",
            "initial_value": "2023-12-31 00:00:00",
            "lag": DAY,
        },
    }
    write = {"table": "copy_sm", "write_mode": "upsert", "primary_key": ["id"]}
    return [
        step("src", f"{family}.extractor", "extractor", read, connection=f"@{family}.main"),
        step(
            "load", f"{family}.writer", "writer", write, needs=["src"], connection=f"@{family}.main"
        ),
    ]


def _late_row_runs(project: Path, family: str, sql: Callable[..., list[Any]]) -> None:
    steps = _sql_steps(family)
    outcome, _ = run_steps(project, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert _last_value(project).startswith("2024-01-03 00:00:00")
    sql(  # 4 committed late: its cursor is below the stored maximum, within a day of it
        "INSERT INTO events_sm VALUES (4, 'late', '2024-01-02 12:00:00'), "
        "(5, 'new', '2024-01-04 00:00:00')",
    )
    outcome, run_dir = run_steps(project, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert [s.rows_out for s in outcome.steps if s.step_id == "src"] == [3]  # 3 again, 4 and 5
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    sent = next(line for line in log.splitlines() if "incremental: SELECT" in line)
    assert "[1 parameter]" in sent and "2024-01-02" not in sent  # last - lag is bound
    assert "after '2024-01-02 00:00:00'" in log
    assert sql("SELECT id, name FROM copy_sm ORDER BY id") == [
        (1, "a"), (2, "b"), (3, "c"), (4, "late"), (5, "new"),
    ]  # fmt: skip
    assert _last_value(project).startswith("2024-01-04 00:00:00")

    outcome, _ = run_steps(project, steps, environ={})  # nothing new: the window again, no dupes
    assert outcome.exit_code == 0, outcome.error
    assert [s.rows_out for s in outcome.steps if s.step_id == "src"] == [1]
    assert sql("SELECT count(*), count(DISTINCT id) FROM copy_sm") == [(5, 5)]


@pytest.mark.parametrize("family", ["postgres", "mysql"])
def test_sql_lag_rereads_a_late_row_and_upserts_it_once(
    family: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if family == "postgres":
        db = request.getfixturevalue("pg_db")
        sql = lambda *statements: pg_rows(db, *statements)  # noqa: E731
        stamp = "TIMESTAMP"
    else:
        db = request.getfixturevalue("mysql_db")
        sql = lambda *statements: mysql_rows(db, *statements)  # noqa: E731
        stamp = "DATETIME"
    sql(
        f"CREATE TABLE events_sm (id INT PRIMARY KEY, name VARCHAR(20), updated_at {stamp})",
        "INSERT INTO events_sm VALUES (1, 'a', '2024-01-01 00:00:00'), "
        "(2, 'b', '2024-01-02 00:00:00'), (3, 'c', '2024-01-03 00:00:00')",
        f"CREATE TABLE copy_sm (id INT PRIMARY KEY, name VARCHAR(20), updated_at {stamp})",
    )
    _db_connections(tmp_path, family, db)
    _late_row_runs(tmp_path, family, sql)


# -- REST --------------------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    yield from serve()


def test_rest_lag_rereads_a_late_record_and_upserts_it_once(
    api: tuple[str, ApiState], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    base, state = api
    write_connections(
        tmp_path,
        f"version: 1\nconnections:\n  http:\n    shop:\n      base_url: {base}\n"
        f"  postgres:\n    main:\n      host: {pg_db['host']}\n      port: {pg_db['port']}\n"
        f"      database: {pg_db['database']}\n      user: {pg_db['user']}\n"
        f"      password: '{pg_db['password']}'\n",
    )
    pg_rows(pg_db, "CREATE TABLE copy_sm (id INT PRIMARY KEY, name TEXT, updated_at TEXT)")
    read = {
        "path": "/cursor",
        "data_selector": "items",
        "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
        "incremental": {
            "cursor_path": "updated_at",
            "start_param": "updated_since",
            "initial_value": "2023-12-31T00:00:00Z",
            "lag": 5,
        },
    }
    write = {"table": "copy_sm", "write_mode": "upsert", "primary_key": ["id"]}
    steps = [
        step("src", "rest.extractor", "extractor", read, connection="@http.shop"),
        step(
            "load", "postgres.writer", "writer", write, needs=["src"], connection="@postgres.main"
        ),
    ]
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert _last_value(tmp_path) == "2024-01-01T00:00:08Z"

    late = {"id": 20, "name": "late", "updated_at": "2024-01-01T00:00:07Z"}  # below 08, within 5 s
    state.records.append(late)
    state.seen.clear()
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    assert state.seen[0].query["updated_since"] == "2024-01-01T00:00:03Z"  # 08 less the lag
    assert [s.rows_out for s in outcome.steps if s.step_id == "src"] == [6]  # 4..8 again, and 20
    got = pg_rows(pg_db, "SELECT id, name FROM copy_sm ORDER BY id")
    assert got == [(r["id"], r["name"]) for r in records(8)] + [(20, "late")]
    assert _last_value(tmp_path) == "2024-01-01T00:00:08Z"  # the maximum did not move

    outcome, _ = run_steps(tmp_path, steps, environ={})  # the same window again: no duplicate
    assert outcome.exit_code == 0, outcome.error
    assert pg_rows(pg_db, "SELECT count(*), count(DISTINCT id) FROM copy_sm") == [(9, 9)]
