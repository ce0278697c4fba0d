"""The terminal side of a run: exact live counters, plain progress lines, summary width, closed stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from runtime_helpers import run_cli, run_steps, step, write_manifest

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


def _mysql_source(project: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]) -> None:
    import pymysql

    conn = pymysql.connect(**mysql_db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE src (id int PRIMARY KEY, name varchar(20))")
        cur.executemany(
            "INSERT INTO src VALUES (%s, %s)", [(i, f"n{i}") for i in range(1, ROWS + 1)]
        )
    conn.close()
    families = {
        family: {"t": {k: db[k] for k in ("host", "port", "user", "password", "database")}}
        for family, db in (("postgres", pg_db), ("mysql", mysql_db))
    }
    text = json.dumps({"connections": families})
    (project / "osiris_connections.yaml").write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("source", "materialize"),
    [("postgres", "auto"), ("postgres", "all"), ("mysql", "auto")],
)
def test_live_counters_are_exact(
    request: pytest.FixtureRequest, tmp_path: Path, source: str, materialize: str
) -> None:
    """Every progress value is a true running total: monotonic, never above the final count,
    the last one equal to it (running totals were added up again each batch)."""
    pg_db = request.getfixturevalue("pg_db")
    args = _pg_source(tmp_path, pg_db)
    if source == "mysql":
        _mysql_source(tmp_path, request.getfixturevalue("mysql_db"), pg_db)
    recorder = _Recorder()
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "src",
                f"{source}.extractor",
                "extractor",
                {"table": "src", "batch_size": 5_000},
                connection=f"@{source}.t",
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


SLOW_QUERY = (  # 4 x 10,000 rows of ~500 bytes, with a 0.5 s pause before each block
    "SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 40000) g "
    "WHERE g % 10000 <> 1 OR pg_sleep(0.5)::text = ''"
)
LONG_ID = "load-" + "the-orders-of-every-customer-" * 3 + "into-the-warehouse"  # 110 chars


def test_plain_output_has_progress_lines_and_a_whole_summary(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """Off a terminal: a progress line per running step every OSIRIS_PROGRESS_INTERVAL seconds,
    and a summary table as wide as it needs (a pipe used to get 80 columns)."""
    args = _pg_source(tmp_path, pg_db)
    manifest = write_manifest(
        tmp_path / "build",
        [
            step(
                "slow",
                "postgres.extractor",
                "extractor",
                {"query": SLOW_QUERY, "batch_size": 2_000},
                connection="@postgres.t",
            ),
            step(
                LONG_ID,
                "postgres.writer",
                "writer",
                {"table": "copy"},
                needs=["slow"],
                connection="@postgres.t",
            ),
        ],
    )
    result = run_cli([str(manifest)], cwd=tmp_path, env={"OSIRIS_PROGRESS_INTERVAL": "0.3"})
    assert result.returncode == 0, result.stderr
    with psycopg.connect(**args) as conn:
        assert conn.execute("SELECT count(*) FROM copy").fetchone() == (40_000,)
    lines = result.stdout.splitlines()
    running = [line for line in lines if line.startswith("running slow: ")]
    assert len(running) >= 4, result.stdout
    counts = [int(line.split()[2].replace(",", "")) for line in running]
    assert counts == sorted(counts) and all(0 <= c <= 40_000 for c in counts), running
    assert any(0 < c < 40_000 for c in counts), running  # counted as it went
    assert all(line.endswith("s") and "rows/s" in line for line in running), running
    assert any(line.startswith(f"running {LONG_ID}: ") for line in lines), result.stdout
    summary = [
        line for line in lines if line.startswith(f"│ {LONG_ID} ") and "postgres.writer" in line
    ]
    assert len(summary) == 1 and "40000" in summary[0], result.stdout  # one whole row


def test_no_progress_lines_when_interval_is_zero(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n2\n")
    manifest = write_manifest(
        tmp_path / "build",
        [step("a", "filesystem.csv_extractor", "extractor", {"path": "a.csv"})],
    )
    result = run_cli([str(manifest)], cwd=tmp_path, env={"OSIRIS_PROGRESS_INTERVAL": "0"})
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("running")]
    bad = run_cli([str(manifest)], cwd=tmp_path, env={"OSIRIS_PROGRESS_INTERVAL": "soon"})
    assert bad.returncode == 5 and "OSIRIS_PROGRESS_INTERVAL" in bad.stderr, bad.stderr


OSIRIS = "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())"
SLOW_PIPELINE = f"""\
oml_version: "0.1.0"
name: slow
steps:
  - id: slow
    component: postgres.extractor
    mode: read
    config:
      connection: "@postgres.t"
      query: "{SLOW_QUERY}"
  - id: save
    component: filesystem.csv_writer
    mode: write
    needs: [slow]
    config:
      path: output/slow.csv
"""


def _env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    if "OSIRIS_CACHE_DIR" in os.environ:  # the test session's cache
        keep["OSIRIS_CACHE_DIR"] = os.environ["OSIRIS_CACHE_DIR"]
    return keep | extra


@pytest.mark.parametrize("command", ["oml-run", "osiris run"])
def test_a_closed_stdout_does_not_stop_the_run(
    pg_db: dict[str, Any], tmp_path: Path, command: str
) -> None:
    """`... | head -1`: the reader goes away after the first line; the run carries on to the
    end, writes its outputs and records, and exits 0 without BrokenPipeError noise."""
    _pg_source(tmp_path, pg_db)
    (tmp_path / "pipeline.oml").write_text(SLOW_PIPELINE, encoding="utf-8")
    env = _env(OSIRIS_PROGRESS_INTERVAL="0.1")  # keeps writing after the reader is gone
    if command == "oml-run":
        compiled = subprocess.run(
            [sys.executable, "-c", OSIRIS, "compile", "pipeline.oml", "-o", "build"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert compiled.returncode == 0, compiled.stdout + compiled.stderr
        argv = [sys.executable, "-m", "osiris.runtime.cli", "build"]
    else:
        argv = [sys.executable, "-c", OSIRIS, "run", "pipeline.oml"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does
    stderr = proc.stderr.read()
    code = proc.wait(timeout=60)
    assert first.startswith("run "), first
    assert code == 0, stderr
    assert "BrokenPipe" not in stderr and "Exception ignored" not in stderr, stderr
    rows = (tmp_path / "output" / "slow.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 40_001
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "ok"
