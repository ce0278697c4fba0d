"""Types and configuration errors across the run database: JSON/UUID stay typed, bad credentials exit 5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from runtime_helpers import run_steps, step

pytestmark = [pytest.mark.postgres]


def pg_connections(project: Path, pg_db: dict[str, Any], extra: str = "") -> None:
    fields = {k: pg_db[k] for k in ("host", "port", "user", "password", "database")}
    text = json.dumps({"connections": {"postgres": {"t": fields}}})
    (project / "osiris_connections.yaml").write_text(text + extra, encoding="utf-8")


def test_json_uuid_and_bool_survive_a_processor(pg_db: dict[str, Any], tmp_path: Path) -> None:
    args = {k: v for k, v in pg_db.items() if k != "database"} | {"dbname": pg_db["database"]}
    with psycopg.connect(**args) as conn:
        conn.execute("CREATE TABLE src (id int PRIMARY KEY, doc jsonb, ref uuid, ok boolean)")
        conn.execute(
            "INSERT INTO src VALUES (1, '{\"a\": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true),"
            " (2, NULL, NULL, false)"
        )
    pg_connections(tmp_path, pg_db)
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "src", "postgres.extractor", "extractor", {"table": "src"}, connection="@postgres.t"
            ),
            step(
                "p",
                "duckdb.processor",
                "processor",
                {"query": "SELECT * FROM input"},
                needs=["src"],
            ),
            step(
                "out",
                "postgres.writer",
                "writer",
                {"table": "copy", "primary_key": ["id"]},
                needs=["p"],
                connection="@postgres.t",
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    with psycopg.connect(**args) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'copy'"
            ).fetchall()
        )
        rows = conn.execute("SELECT id, doc, ref::text, ok FROM copy ORDER BY id").fetchall()
    assert types["ref"] == "uuid" and types["doc"] in ("json", "jsonb") and types["ok"] == "boolean"
    assert rows == [
        (1, {"a": [1, 2]}, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", True),
        (2, None, None, False),
    ]


def test_rest_only_supabase_credentials_exit_5(tmp_path: Path) -> None:
    (tmp_path / "osiris_connections.yaml").write_text(
        json.dumps(
            {
                "connections": {
                    "supabase": {
                        "main": {"url": "https://x.supabase.co", "key": "canary-rest-key-77"}
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "in.csv").write_text("id\n1\n", encoding="utf-8")
    outcome, _ = run_steps(
        tmp_path,
        [
            step("src", "filesystem.csv_extractor", "extractor", {"path": "in.csv"}),
            step(
                "out",
                "supabase.writer",
                "writer",
                {"table": "t"},
                needs=["src"],
                connection="@supabase.main",
            ),
        ],
    )
    assert outcome.exit_code == 5
    assert outcome.error and "connection string" in outcome.error.lower()
    assert (tmp_path / "runs").is_dir()
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".log", ".yaml"):
            assert "canary-rest-key-77" not in path.read_text(encoding="utf-8", errors="replace")
