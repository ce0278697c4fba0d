"""The terminal side of a run: exact live counters, plain progress lines, summary width, closed stdout."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from runtime_helpers import run_steps, step

pytestmark = [pytest.mark.postgres]

ROWS = 23_456  # not a multiple of the batch size: the last batch is short


class _Recorder:
    """A RunObserver keeping every progress value per step."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.progress: dict[str, list[int]] = {}

    def on_event(self, event: dict[str, Any]) -> None:
        return None

    def on_progress(self, step_id: str, rows: int) -> None:
        with self.lock:
            self.progress.setdefault(step_id, []).append(rows)

    def on_warning(self, message: str) -> None:
        return None


def _pg_source(project: Path, pg_db: dict[str, Any]) -> dict[str, Any]:
    args = {k: v for k, v in pg_db.items() if k != "database"} | {"dbname": pg_db["database"]}
    with psycopg.connect(**args) as conn:
        conn.execute("CREATE TABLE src (id int PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO src SELECT g, 'n' || g FROM generate_series(1, {ROWS}) g")
    fields = {k: pg_db[k] for k in ("host", "port", "user", "password", "database")}
    text = json.dumps({"connections": {"postgres": {"t": fields}}})
    (project / "osiris_connections.yaml").write_text(text, encoding="utf-8")
    return args


@pytest.mark.parametrize("materialize", ["auto", "all"])
def test_live_counters_are_exact(pg_db: dict[str, Any], tmp_path: Path, materialize: str) -> None:
    """Every progress value is a true running total: monotonic, never above the final count,
    the last one equal to it (running totals were added up again each batch)."""
    args = _pg_source(tmp_path, pg_db)
    recorder = _Recorder()
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "src",
                "postgres.extractor",
                "extractor",
                {"table": "src", "batch_size": 5_000},
                connection="@postgres.t",
            ),
            step(
                "out",
                "postgres.writer",
                "writer",
                {"table": "copy", "batch_size": 5_000},
                needs=["src"],
                connection="@postgres.t",
            ),
        ],
        materialize=materialize,
        observer=recorder,
    )
    assert outcome.exit_code == 0, outcome.error
    with psycopg.connect(**args) as conn:
        assert conn.execute("SELECT count(*) FROM copy").fetchone() == (ROWS,)
    for step_outcome in outcome.steps:
        final = max(step_outcome.rows_in, step_outcome.rows_out)
        assert final == ROWS
        seen = recorder.progress[step_outcome.step_id]
        assert len(seen) >= 2, seen  # reported as it went, not only at the end
        assert seen == sorted(seen), seen
        assert max(seen) <= final, seen
        assert seen[-1] == final, seen
