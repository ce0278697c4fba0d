"""Straight-through extract -> write streaming, file extracts as views, and OSIRIS_MATERIALIZE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from runtime_helpers import read_events, run_steps, step

from osiris.runtime import view_chains
from osiris.runtime.drivers import registry
from osiris.runtime.drivers.base import Abilities, StepContext
from osiris.runtime.duckdb_settings import scanned_rows

CSV = "filesystem.csv_extractor"
# Shortcuts apply to file sources of at least OSIRIS_INPLACE_MIN_BYTES (32 MiB by default).
SHORTCUTS = {"OSIRIS_INPLACE_MIN_BYTES": "0"}


def _run(project: Path, steps: list[dict[str, Any]], **options: Any) -> tuple[Any, Path]:
    outcome, run_dir = run_steps(project, steps, **options)
    assert run_dir is not None, outcome.error
    return outcome, run_dir


def _csv(path: Path, rows: int, *, bad_at: int | None = None) -> None:
    lines = ["id,name,amount"]
    for i in range(rows):
        lines.append(f"{'oops' if i == bad_at else i},n{i % 7},{i % 100}")
    path.write_text("\n".join(lines) + "\n")


def _tables(run_dir: Path) -> dict[str, str]:
    if not (run_dir / "run.duckdb").exists():  # opened only by a step that needed it
        return {}
    con = duckdb.connect(str(run_dir / "run.duckdb"), read_only=True)
    try:
        found = con.execute(
            "SELECT table_name, 'table' FROM duckdb_tables() "
            "UNION ALL SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    finally:
        con.close()
    return dict(found)


def _events(run_dir: Path, step_id: str) -> list[dict[str, Any]]:
    return [e for e in read_events(run_dir) if e.get("step") == step_id]


def _duckdb_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_csv_to_duckdb_writer_streams(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 120_000)
    outcome, run_dir = _run(
        tmp_path,
        [
            step("orders", CSV, "extractor", {"path": "orders.csv", "batch_size": 10_000}),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"path": "target.duckdb", "table": "orders", "write_mode": "replace"},
                needs=["orders"],
            ),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 0, outcome.error
    steps = {s.step_id: s for s in outcome.steps}
    assert (steps["orders"].rows_in, steps["orders"].rows_out) == (120_000, 120_000)
    assert (steps["load"].rows_in, steps["load"].rows_out) == (120_000, 120_000)
    assert steps["orders"].bytes > 0
    # nothing of the streamed extract is stored: no step needed the run database at all
    assert not (run_dir / "run.duckdb").exists()
    rows = _duckdb_rows(
        tmp_path / "target.duckdb", "SELECT count(*), sum(id), min(id), max(id) FROM orders"
    )
    assert rows == [(120_000, sum(range(120_000)), 0, 119_999)]
    # both steps have their events, the extractor finishing first, with the rows counted
    events = read_events(run_dir)
    names = [(e["event"], e.get("step")) for e in events if e.get("step")]
    assert names == [
        ("step_started", "orders"),
        ("step_started", "load"),
        ("step_finished", "orders"),
        ("step_finished", "load"),
    ]
    started = {e["step"]: e for e in events if e["event"] == "step_started"}
    assert started["orders"]["streamed_to"] == "load"
    assert started["load"]["streamed_from"] == "orders"
    finished = {e["step"]: e for e in events if e["event"] == "step_finished"}
    assert (finished["orders"]["rows_in"], finished["orders"]["rows_out"]) == (120_000, 120_000)
    assert (finished["load"]["rows_in"], finished["load"]["rows_out"]) == (120_000, 120_000)


def test_parquet_to_csv_writer_streams_in_order(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(30_000)), "v": [f"x{i}" for i in range(30_000)]})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=4_000)
    outcome, run_dir = _run(
        tmp_path,
        [
            step(
                "src",
                "filesystem.parquet_extractor",
                "extractor",
                {"path": "in.parquet", "batch_size": 5_000},
            ),
            step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 0, outcome.error
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "id,v" and lines[1:] == [f"{i},x{i}" for i in range(30_000)]
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["src"].rows_out == 30_000 and steps["out"].rows_in == 30_000
    assert steps["out"].rows_out == 30_000 and steps["out"].bytes > 0
    assert "src" not in _tables(run_dir)


def _seed_target(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders AS SELECT 1 AS id, 'old' AS name, 5 AS amount")
    con.close()


@pytest.mark.parametrize("mode", ["replace", "append", "upsert"])
def test_extractor_failing_mid_stream_leaves_duckdb_target_unchanged(
    tmp_path: Path, mode: str
) -> None:
    # 'oops' at row 150k cannot be an INTEGER: DuckDB's CSV reader fails after ~15 batches.
    _csv(tmp_path / "orders.csv", 200_000, bad_at=150_000)
    _seed_target(tmp_path / "target.duckdb")
    outcome, run_dir = _run(
        tmp_path,
        [
            step(
                "orders",
                CSV,
                "extractor",
                {
                    "path": "orders.csv",
                    "batch_size": 10_000,
                    "column_types": {"id": "INTEGER"},
                },
            ),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {
                    "path": "target.duckdb",
                    "table": "orders",
                    "write_mode": mode,
                    "primary_key": ["id"],
                },
                needs=["orders"],
            ),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 4
    assert outcome.failed_step == "orders"
    by_id = {s.step_id: s for s in outcome.steps}
    assert by_id["orders"].status == "failed" and by_id["load"].status == "failed"
    assert "oops" in (by_id["orders"].error or "")
    assert "input stream from step 'orders' failed" in (by_id["load"].error or "")
    assert "rolled back" in (by_id["load"].error or "")
    assert by_id["orders"].rows_in > 0  # it did stream rows before failing
    assert _duckdb_rows(tmp_path / "target.duckdb", "SELECT * FROM orders") == [(1, "old", 5)]
    assert _duckdb_rows(tmp_path / "target.duckdb", "SELECT count(*) FROM duckdb_tables()") == [
        (1,)
    ]
    failed = [e["step"] for e in read_events(run_dir) if e["event"] == "step_failed"]
    assert failed == ["orders", "load"]


class _DropsMidStream:
    """An extractor whose source goes away after two batches (like a dropped connection)."""

    abilities = Abilities(roles=("extractor",))

    def extract(self, ctx: StepContext) -> pa.RecordBatchReader:
        schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.int64())])

        def batches() -> Iterator[pa.RecordBatch]:
            for start in (0, 1000):
                ids = list(range(start, start + 1000))
                yield pa.record_batch(
                    [pa.array(ids), pa.array(["new"] * 1000), pa.array(ids)], schema=schema
                )
            raise ConnectionError("source connection dropped")

        return pa.RecordBatchReader.from_batches(schema, batches())


def test_dropped_source_mid_stream_rolls_back_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = registry.load_driver

    def load(driver_id: str) -> Any:
        return _DropsMidStream() if driver_id == "mysql.extractor" else real(driver_id)

    monkeypatch.setattr(registry, "load_driver", load)
    _seed_target(tmp_path / "target.duckdb")
    outcome, _ = _run(
        tmp_path,
        [
            step("src", "mysql.extractor", "extractor", {"table": "orders"}),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"path": "target.duckdb", "table": "orders", "write_mode": "append"},
                needs=["src"],
            ),
        ],
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "src"
    by_id = {s.step_id: s for s in outcome.steps}
    assert by_id["src"].status == "failed" and by_id["src"].rows_in == 2000
    assert "source connection dropped" in (by_id["src"].error or "")
    assert by_id["src"].error_type == "ConnectionError"
    assert by_id["load"].status == "failed"
    assert _duckdb_rows(tmp_path / "target.duckdb", "SELECT * FROM orders") == [(1, "old", 5)]


def test_writer_failure_reports_extractor_ok(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 1000)
    outcome, run_dir = _run(
        tmp_path,
        [
            step("orders", CSV, "extractor", {"path": "orders.csv"}),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"path": "target.duckdb", "table": "orders", "create_if_missing": False},
                needs=["orders"],
            ),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "load"
    by_id = {s.step_id: s.status for s in outcome.steps}
    assert by_id == {"orders": "ok", "load": "failed"}
    assert [e["event"] for e in _events(run_dir, "orders")] == ["step_started", "step_finished"]


def test_extract_failing_before_streaming_skips_the_writer(tmp_path: Path) -> None:
    outcome, _ = _run(
        tmp_path,
        [
            step("src", "duckdb.extractor", "extractor", {"path": "nope.duckdb", "table": "t"}),
            step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
        ],
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "src"
    assert {s.step_id: s.status for s in outcome.steps} == {"src": "failed", "out": "skipped"}
    assert not (tmp_path / "out.csv").exists()


def test_materialize_all_stores_every_output(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 5000)
    steps = [
        step("orders", CSV, "extractor", {"path": "orders.csv"}),
        step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["orders"]),
        step("raw", CSV, "extractor", {"path": "orders.csv"}),
        step(
            "agg",
            "duckdb.processor",
            "processor",
            {"query": "SELECT name, sum(amount) AS total FROM input GROUP BY name"},
            needs=["raw"],
        ),
    ]
    outcome, run_dir = _run(tmp_path, steps, environ={**SHORTCUTS, "OSIRIS_MATERIALIZE": "all"})
    assert outcome.exit_code == 0, outcome.error
    assert _tables(run_dir) == {"orders": "table", "raw": "table", "agg": "table"}
    assert "streamed_to" not in _events(run_dir, "orders")[0]
    run_started = read_events(run_dir)[0]
    assert run_started["materialize"] == "all"
    # the option beats the environment
    outcome, run_dir = _run(
        tmp_path, steps, environ={**SHORTCUTS, "OSIRIS_MATERIALIZE": "auto"}, materialize="all"
    )
    assert outcome.exit_code == 0 and "orders" in _tables(run_dir)


def test_invalid_materialize_mode_is_a_configuration_error(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 10)
    outcome, _ = run_steps(
        tmp_path,
        [step("orders", CSV, "extractor", {"path": "orders.csv"})],
        environ={"OSIRIS_MATERIALIZE": "sometimes"},
    )
    assert outcome.exit_code == 5 and "OSIRIS_MATERIALIZE" in (outcome.error or "")


def test_large_file_extract_read_by_one_processor_is_a_view(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 50_000)
    outcome, run_dir = _run(
        tmp_path,
        [
            step("orders", CSV, "extractor", {"path": "orders.csv"}),
            step(
                "agg",
                "duckdb.processor",
                "processor",
                {"query": "SELECT name, count(*) AS n FROM input GROUP BY name ORDER BY name"},
                needs=["orders"],
            ),
            step("out", "filesystem.csv_writer", "writer", {"path": "agg.csv"}, needs=["agg"]),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 0, outcome.error
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["orders"].rows_out == 50_000  # exact, counted through the view
    assert steps["agg"].rows_in == 50_000 and steps["agg"].rows_out == 7
    assert (steps["out"].rows_in, steps["out"].rows_out) == (7, 7)
    # the processor feeds one writer: a view too, so the whole chain is one DuckDB query
    assert _tables(run_dir) == {"orders": "view", "agg": "view"}
    # inspectable afterwards while the source file is there
    assert _duckdb_rows(run_dir / "run.duckdb", "SELECT count(*) FROM orders") == [(50_000,)]
    assert _duckdb_rows(run_dir / "run.duckdb", "SELECT count(*) FROM agg") == [(7,)]
    assert (tmp_path / "agg.csv").read_text().splitlines()[:2] == ["name,n", "n0,7143"]
    events = [(e["event"], e.get("step")) for e in read_events(run_dir) if e.get("step")]
    assert events == [
        ("step_started", "orders"),
        ("step_started", "agg"),
        ("step_started", "out"),
        ("step_finished", "orders"),
        ("step_finished", "agg"),
        ("step_finished", "out"),
    ]
    started = {e["step"]: e for e in read_events(run_dir) if e["event"] == "step_started"}
    assert started["agg"]["reads_in_place"] == "orders"
    assert started["agg"]["read_in_place_by"] == "out"
    assert started["out"]["reads_in_place"] == "agg"


def test_small_file_sources_are_still_copied(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 100)
    outcome, run_dir = _run(
        tmp_path,
        [
            step("orders", CSV, "extractor", {"path": "orders.csv"}),
            step(
                "agg",
                "duckdb.processor",
                "processor",
                {"query": "SELECT count(*) AS n FROM input"},
                needs=["orders"],
            ),
            step("raw", CSV, "extractor", {"path": "orders.csv"}),
            step("out", "filesystem.csv_writer", "writer", {"path": "copy.csv"}, needs=["raw"]),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    assert _tables(run_dir) == {"orders": "table", "agg": "table", "raw": "table"}


def test_same_duckdb_file_extract_and_write_is_not_streamed(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    con.execute("CREATE TABLE a AS SELECT range AS id FROM range(1000)")
    con.close()
    outcome, run_dir = _run(
        tmp_path,
        [
            step("src", "duckdb.extractor", "extractor", {"path": "db.duckdb", "table": "a"}),
            step(
                "dst",
                "duckdb.writer",
                "writer",
                {"path": "db.duckdb", "table": "b"},
                needs=["src"],
            ),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 0, outcome.error
    assert _duckdb_rows(tmp_path / "db.duckdb", "SELECT count(*) FROM b") == [(1000,)]
    assert "src" in _tables(run_dir)


@pytest.mark.parametrize(
    ("options", "query", "expected", "from_profile"),
    [
        ({}, "SELECT name, count(*) AS n FROM input GROUP BY name", 20_000, True),
        ({}, "SELECT * FROM input WHERE amount < 10", 20_000, True),
        ({}, "SELECT * FROM input LIMIT 5", 20_000, False),  # partial scan: count the view
        ({}, "SELECT * FROM input ORDER BY amount DESC LIMIT 5", 20_000, True),
        ({}, "SELECT a.id FROM input a JOIN input b USING (id)", 20_000, True),
        ({"skip_rows": 3, "header": False}, "SELECT count(*) AS n FROM input", 19_998, None),
        ({"path": "part-*.csv"}, "SELECT count(*) AS n FROM input", 40_000, True),
    ],
)
def test_file_read_in_place_counts_rows_exactly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    query: str,
    expected: int,
    from_profile: bool | None,
) -> None:
    seen: list[int | None] = []

    def spy(*args: Any) -> int | None:
        seen.append(scanned_rows(*args))
        return seen[-1]

    monkeypatch.setattr(view_chains, "scanned_rows", spy)
    _csv(tmp_path / "orders.csv", 20_000)
    _csv(tmp_path / "part-1.csv", 20_000)
    _csv(tmp_path / "part-2.csv", 20_000)
    outcome, run_dir = _run(
        tmp_path,
        [
            step("orders", CSV, "extractor", {"path": "orders.csv", **options}),
            step("calc", "duckdb.processor", "processor", {"query": query}, needs=["orders"]),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 0, outcome.error
    steps = {s.step_id: s for s in outcome.steps}
    assert (steps["orders"].rows_in, steps["orders"].rows_out) == (expected, expected)
    assert steps["calc"].rows_in == expected
    assert _tables(run_dir)["orders"] == "view"
    events = [(e["event"], e.get("step")) for e in read_events(run_dir) if e.get("step")]
    assert events == [
        ("step_started", "orders"),
        ("step_started", "calc"),
        ("step_finished", "orders"),
        ("step_finished", "calc"),
    ]
    started = [e for e in read_events(run_dir) if e["event"] == "step_started"]
    assert started[0]["read_in_place_by"] == "calc" and started[1]["reads_in_place"] == "orders"
    if from_profile is not None:  # the processor's own scan gave the count, or could not
        assert seen == [expected if from_profile else None]


def test_scanned_rows_needs_one_complete_scan_of_the_file() -> None:
    def profile(*scans: dict[str, Any]) -> str:
        return json.dumps({"operator": [{"type": "CREATE_TABLE_AS", "children": list(scans)}]})

    def scan(name: str, rows: int, size: int, function: str | None = "READ_CSV") -> dict[str, Any]:
        info = {"Function": function, "Filename(s)": name} if function else {}
        return {
            "type": "TABLE_SCAN",
            "extra_info": info,
            "rows_scanned": rows,
            "bytes_scanned": size,
        }

    assert scanned_rows(profile(scan("/a.csv", 7, 100)), ["/a.csv"], 100) == 7
    assert scanned_rows(profile(scan("/a.csv", 7, 60)), ["/a.csv"], 100) is None  # partial
    assert scanned_rows(profile(scan("/b.csv", 7, 100)), ["/a.csv"], 100) is None
    assert scanned_rows(profile(scan("/a.csv", 7, 100, None)), ["/a.csv"], 100) is None
    two = profile(scan("/a.csv", 7, 100), scan("/a.csv", 8, 100))
    assert scanned_rows(two, ["/a.csv"], 100) is None
    assert scanned_rows(profile(), ["/a.csv"], 100) is None
    assert scanned_rows(profile(scan("/a.csv", 7, 100)), ["/a.csv", "/b.csv"], 200) is None
    assert scanned_rows(None, ["/a.csv"], 100) is None


def test_processor_failing_on_a_file_read_in_place(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 1000)
    outcome, run_dir = _run(
        tmp_path,
        [
            step("orders", CSV, "extractor", {"path": "orders.csv"}),
            step(
                "calc",
                "duckdb.processor",
                "processor",
                {"query": "SELECT nope FROM input"},
                needs=["orders"],
            ),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "calc"
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["orders"].status == "ok" and steps["orders"].rows_out == 1000
    assert steps["calc"].status == "failed" and "nope" in (steps["calc"].error or "")
    assert _tables(run_dir) == {"orders": "view"}


def test_unreadable_file_read_in_place_fails_the_extract(tmp_path: Path) -> None:
    # 'oops' in an INTEGER column: the processor's query fails on it, and so does reading the
    # file, so the extract is reported failed, as it would have been when copying the file.
    _csv(tmp_path / "orders.csv", 5000, bad_at=4000)
    outcome, run_dir = _run(
        tmp_path,
        [
            step(
                "orders",
                CSV,
                "extractor",
                {"path": "orders.csv", "column_types": {"id": "INTEGER"}},
            ),
            step(
                "calc",
                "duckdb.processor",
                "processor",
                {"query": "SELECT sum(id) AS s FROM input"},
                needs=["orders"],
            ),
        ],
        environ=SHORTCUTS,
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "orders"
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["orders"].status == "failed" and "oops" in (steps["orders"].error or "")
    assert steps["calc"].status == "failed"
    failed = [e["step"] for e in read_events(run_dir) if e["event"] == "step_failed"]
    assert failed == ["orders", "calc"]


def test_materialize_flag_on_the_command_line(tmp_path: Path) -> None:
    from runtime_helpers import run_cli, write_manifest

    _csv(tmp_path / "orders.csv", 100)
    steps = [
        step("orders", CSV, "extractor", {"path": "orders.csv"}),
        step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["orders"]),
    ]
    manifest = write_manifest(tmp_path / "build", steps)
    env = dict(SHORTCUTS)
    streamed = run_cli([str(manifest), "--format", "json"], cwd=tmp_path, env=env)
    copied = run_cli(
        [str(manifest), "--format", "json", "--materialize", "all"], cwd=tmp_path, env=env
    )
    assert streamed.returncode == 0 and copied.returncode == 0, streamed.stderr + copied.stderr
    streamed_dir = Path(json.loads(streamed.stdout)["run_dir"])
    copied_dir = Path(json.loads(copied.stdout)["run_dir"])
    assert "orders" not in _tables(streamed_dir)
    assert _tables(copied_dir) == {"orders": "table"}


def _processor_chain(query: str, writer: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A small (copied) CSV extract -> processor -> one writer."""
    return [
        step("orders", CSV, "extractor", {"path": "orders.csv"}),
        step("agg", "duckdb.processor", "processor", {"query": query}, needs=["orders"]),
        writer
        or step("out", "filesystem.csv_writer", "writer", {"path": "agg.csv"}, needs=["agg"]),
    ]


def test_processor_read_by_one_writer_is_a_view(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 1000)
    query = (
        "WITH t AS (SELECT name, count(*) AS n FROM input GROUP BY name) -- trailing comment\n"
        "SELECT t.name, t.n, (SELECT count(*) FROM input_df) AS total FROM t ORDER BY name DESC"
    )
    outcome, run_dir = _run(tmp_path, _processor_chain(query))
    assert outcome.exit_code == 0, outcome.error
    steps = {s.step_id: s for s in outcome.steps}
    assert (steps["agg"].rows_in, steps["agg"].rows_out) == (1000, 7)
    assert (steps["out"].rows_in, steps["out"].rows_out) == (7, 7)
    assert _tables(run_dir) == {"orders": "table", "agg": "view"}
    lines = (tmp_path / "agg.csv").read_text().splitlines()
    assert lines[0] == "name,n,total" and lines[1:] == [
        f"n{i},{143 if i < 6 else 142},1000" for i in range(6, -1, -1)
    ]
    # the aliases (input, input_df) live in the view itself: it can be queried afterwards
    assert _duckdb_rows(run_dir / "run.duckdb", "SELECT sum(n) FROM agg") == [(1000,)]
    # materialize=all: a table, same output
    (tmp_path / "agg.csv").unlink()
    outcome, run_dir = _run(tmp_path, _processor_chain(query), materialize="all")
    assert outcome.exit_code == 0 and _tables(run_dir)["agg"] == "table"
    assert (tmp_path / "agg.csv").read_text().splitlines() == lines


def test_processor_view_into_duckdb_writer_and_self_join(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 500)
    writer = step(
        "out",
        "duckdb.writer",
        "writer",
        {"path": "t.duckdb", "table": "pairs", "write_mode": "replace"},
        needs=["agg"],
    )
    query = "SELECT a.name, count(*) AS pairs FROM input a JOIN input b USING (name) GROUP BY 1"
    outcome, run_dir = _run(tmp_path, _processor_chain(query, writer))
    assert outcome.exit_code == 0, outcome.error
    assert _tables(run_dir)["agg"] == "view"
    assert _duckdb_rows(tmp_path / "t.duckdb", "SELECT sum(pairs) FROM pairs") == [
        (sum((500 // 7 + (1 if i < 500 % 7 else 0)) ** 2 for i in range(7)),)
    ]


def test_processor_view_that_does_not_bind_skips_the_writer(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 100)
    outcome, run_dir = _run(tmp_path, _processor_chain("SELECT nope FROM input"))
    assert outcome.exit_code == 4 and outcome.failed_step == "agg"
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["agg"].status == "failed" and "nope" in (steps["agg"].error or "")
    assert steps["out"].status == "skipped" and not (tmp_path / "agg.csv").exists()
    assert [e["event"] for e in _events(run_dir, "out")] == ["step_skipped"]


def test_processor_view_failing_while_written_keeps_the_target(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 100)
    (tmp_path / "agg.csv").write_text("before\n")
    query = "SELECT CAST(name AS INTEGER) AS n FROM input"  # binds, fails on the first row
    outcome, run_dir = _run(tmp_path, _processor_chain(query))
    assert outcome.exit_code == 4 and outcome.failed_step == "agg"
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["agg"].status == "failed" and "n0" in (steps["agg"].error or "")
    assert steps["out"].status == "failed"
    assert (steps["out"].error or "").startswith("its input, step 'agg', failed")
    assert (tmp_path / "agg.csv").read_text() == "before\n"
    assert [e["event"] for e in _events(run_dir, "out")] == ["step_started", "step_failed"]
    assert list(tmp_path.glob("*.part*")) == [] and list(tmp_path.glob(".*agg*")) == []


def test_writer_failing_on_a_processor_view_reports_the_processor_ok(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 100)
    (tmp_path / "agg.csv").mkdir()  # the writer cannot replace a directory
    outcome, _ = _run(tmp_path, _processor_chain("SELECT DISTINCT name FROM input"))
    assert outcome.exit_code == 4 and outcome.failed_step == "out"
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["agg"].status == "ok" and steps["agg"].rows_out == 7
    assert steps["out"].status == "failed"


def test_large_file_unreadable_through_a_processor_view_fails_the_extract(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 5000, bad_at=4000)
    steps = _processor_chain("SELECT sum(id) AS s FROM input")
    steps[0] = step(
        "orders", CSV, "extractor", {"path": "orders.csv", "column_types": {"id": "INTEGER"}}
    )
    outcome, run_dir = _run(tmp_path, steps, environ=SHORTCUTS)
    assert outcome.exit_code == 4 and outcome.failed_step == "orders"
    failed = [e["step"] for e in read_events(run_dir) if e["event"] == "step_failed"]
    assert failed == ["orders", "agg", "out"]
    errors = {s.step_id: s.error or "" for s in outcome.steps}
    assert "oops" in errors["orders"] and errors["agg"].startswith("its input, step 'orders'")
    assert not (tmp_path / "agg.csv").exists()


def test_large_file_then_processor_that_does_not_bind(tmp_path: Path) -> None:
    _csv(tmp_path / "orders.csv", 5000)
    outcome, run_dir = _run(tmp_path, _processor_chain("SELECT nope FROM input"), environ=SHORTCUTS)
    assert outcome.exit_code == 4 and outcome.failed_step == "agg"
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["orders"].status == "ok" and steps["orders"].rows_out == 5000
    assert steps["agg"].status == "failed" and "nope" in (steps["agg"].error or "")
    assert steps["out"].status == "skipped"
    events = [(e["event"], e.get("step")) for e in read_events(run_dir) if e.get("step")]
    assert events == [
        ("step_started", "orders"),
        ("step_started", "agg"),
        ("step_finished", "orders"),
        ("step_failed", "agg"),
        ("step_skipped", "out"),
    ]
