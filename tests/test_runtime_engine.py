"""Local engine behaviour: ordering, fan-out/fan-in, failures and skips, run records, atomic writers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from runtime_helpers import read_events, run_steps, step, write_manifest

from osiris.runtime.context import LocalStepContext, RunDatabase
from osiris.runtime.drivers import registry
from osiris.runtime.drivers.duckdb_driver import DuckDBWriter
from osiris.runtime.drivers.files import CsvWriter, ParquetWriter
from osiris.runtime.drivers.registry import DRIVERS, driver_class
from osiris.runtime.runner import run_manifest

CSV = "filesystem.csv_extractor"


def _orders(project: Path) -> None:
    (project / "orders.csv").write_text("id,region,amount\n1,eu,10\n2,us,20\n3,eu,30\n")


def test_fan_out_and_fan_in(tmp_path: Path) -> None:
    _orders(tmp_path)
    outcome, run_dir = run_steps(
        tmp_path,
        [
            step("orders", CSV, "extractor", {"path": "orders.csv"}),
            step(
                "eu",
                "duckdb.processor",
                "processor",
                {"query": "SELECT * FROM input WHERE region = 'eu'"},
                needs=["orders"],
            ),
            step(
                "us",
                "duckdb.processor",
                "processor",
                {"query": "SELECT * FROM input WHERE region = 'us'"},
                needs=["orders"],
            ),
            step(
                "both",
                "duckdb.processor",
                "processor",
                {
                    "query": "SELECT (SELECT sum(amount) FROM eu) AS eu, (SELECT sum(amount) FROM us) AS us"
                },
                needs=["eu", "us"],
            ),
            step("out", "filesystem.csv_writer", "writer", {"path": "both.csv"}, needs=["both"]),
        ],
        max_parallel=3,
    )
    assert outcome.exit_code == 0, outcome.error
    assert (tmp_path / "both.csv").read_text() == "eu,us\n40,20\n"
    events = read_events(run_dir)
    order = [e["step"] for e in events if e["event"] == "step_finished"]
    assert order.index("orders") < min(order.index("eu"), order.index("us"))
    assert max(order.index("eu"), order.index("us")) < order.index("both") < order.index("out")


def test_failure_skips_downstream_and_independent_branch_finishes(tmp_path: Path) -> None:
    _orders(tmp_path)
    (tmp_path / "old.parquet").write_bytes(b"previous content")
    outcome, run_dir = run_steps(
        tmp_path,
        [
            step("broken", CSV, "extractor", {"path": "missing.csv"}),
            step("good", CSV, "extractor", {"path": "orders.csv"}),
            step(
                "agg",
                "duckdb.processor",
                "processor",
                {"query": "SELECT count(*) FROM input"},
                needs=["broken"],
            ),
            step(
                "write-old",
                "filesystem.parquet_writer",
                "writer",
                {"path": "old.parquet"},
                needs=["agg"],
            ),
            step(
                "write-good",
                "filesystem.csv_writer",
                "writer",
                {"path": "good.csv"},
                needs=["good"],
            ),
        ],
    )
    assert outcome.exit_code == 4
    assert outcome.failed_step == "broken"
    assert "missing.csv" in (outcome.error or "") and "\n" not in (outcome.error or "")
    by_id = {s.step_id: s.status for s in outcome.steps}
    assert by_id == {
        "broken": "failed",
        "good": "ok",
        "agg": "skipped",
        "write-old": "skipped",
        "write-good": "ok",
    }
    assert (tmp_path / "old.parquet").read_bytes() == b"previous content"
    assert (tmp_path / "good.csv").exists()

    events = read_events(run_dir)
    skipped = {e["step"]: e for e in events if e["event"] == "step_skipped"}
    assert set(skipped) == {"agg", "write-old"}
    assert all(
        e["cause"] == "broken" and "'broken' failed" in e["reason"] for e in skipped.values()
    )
    failed = [e for e in events if e["event"] == "step_failed"]
    assert [e["step"] for e in failed] == ["broken"] and failed[0]["error_type"] == "DriverError"
    assert events[-1]["event"] == "run_finished" and events[-1]["status"] == "failed"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status["exit_code"] == 4
    assert status["failed_step"] == "broken" and status["skipped_steps"] == ["agg", "write-old"]
    log = (run_dir / "run.log").read_text()
    assert "Traceback" in log and "missing.csv" in log


def test_run_records(tmp_path: Path) -> None:
    _orders(tmp_path)
    manifest = write_manifest(
        tmp_path / "build",
        [
            step("orders", CSV, "extractor", {"path": "orders.csv"}),
            step("out", "filesystem.csv_writer", "writer", {"path": "copy.csv"}, needs=["orders"]),
        ],
    )
    outcome = run_manifest(manifest.parent, project_dir=tmp_path, environ={})
    assert outcome.exit_code == 0, outcome.error
    run_dir = outcome.run_dir
    assert run_dir is not None and run_dir.parent == tmp_path / "runs"
    assert (run_dir / "manifest.yaml").read_bytes() == manifest.read_bytes()
    assert (run_dir / "cfg/orders.json").read_bytes() == (
        manifest.parent / "cfg/orders.json"
    ).read_bytes()
    assert (run_dir / "artifacts/out").is_dir()
    events = read_events(run_dir)
    assert events[0]["event"] == "run_started"
    for event in events:
        assert event["run_id"] == outcome.run_id and event["ts"].endswith("Z")
        assert set(event) >= {"run_id", "step", "ts", "event"}
    finished = [e for e in events if e["event"] == "step_finished"]
    assert {e["step"]: (e["rows_in"], e["rows_out"]) for e in finished} == {
        "orders": (3, 3),
        "out": (3, 3),
    }
    assert all(isinstance(e["duration_ms"], int) for e in finished)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"]["out"]["rows_out"] == 3 and metrics["steps"]["out"]["bytes"] > 0
    assert set(metrics["steps"]["orders"]) == {
        "status",
        "rows_in",
        "rows_out",
        "bytes",
        "duration_ms",
        "rows_per_s",
    }
    status = json.loads((run_dir / "status.json").read_text())
    assert status == status | {"status": "ok", "exit_code": 0, "failed_step": None, "error": None}
    assert duckdb.connect(str(run_dir / "run.duckdb")).execute(
        "SELECT count(*) FROM orders"
    ).fetchone() == (3,)


def test_no_keep_intermediate_removes_run_database(tmp_path: Path) -> None:
    _orders(tmp_path)
    outcome, run_dir = run_steps(
        tmp_path,
        [step("orders", CSV, "extractor", {"path": "orders.csv"})],
        keep_intermediate=False,
    )
    assert outcome.exit_code == 0
    assert not (run_dir / "run.duckdb").exists()
    assert (run_dir / "status.json").exists()


def test_explicit_run_dir(tmp_path: Path) -> None:
    _orders(tmp_path)
    outcome, run_dir = run_steps(
        tmp_path,
        [step("orders", CSV, "extractor", {"path": "orders.csv"})],
        run_dir=tmp_path / "here",
    )
    assert outcome.exit_code == 0 and run_dir == (tmp_path / "here").resolve()
    assert (tmp_path / "here/events.jsonl").exists()


def test_tampered_manifest_refused_unless_allowed(tmp_path: Path) -> None:
    _orders(tmp_path)
    manifest = write_manifest(
        tmp_path / "build", [step("orders", CSV, "extractor", {"path": "orders.csv"})]
    )
    cfg = tmp_path / "build/cfg/orders.json"
    cfg.write_text(cfg.read_text().replace("orders.csv", "other.csv"))
    refused = run_manifest(manifest, project_dir=tmp_path, environ={})
    assert refused.exit_code == 3 and "modified" in (refused.error or "")
    assert not (tmp_path / "runs").exists()
    (tmp_path / "other.csv").write_text("x\n1\n")
    allowed = run_manifest(manifest, project_dir=tmp_path, environ={}, allow_modified=True)
    assert allowed.exit_code == 0, allowed.error
    assert allowed.warnings and "fingerprints" in allowed.warnings[0]


def test_edited_manifest_body_refused(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "build", [step("orders", CSV, "extractor", {"path": "orders.csv"})]
    )
    manifest.write_text(manifest.read_text().replace("name: test-pipeline", "name: renamed"))
    outcome = run_manifest(manifest, project_dir=tmp_path, environ={})
    assert outcome.exit_code == 3 and "fingerprint" in (outcome.error or "")


def test_schema_violation_refused_even_with_allow_modified(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "build", [step("orders", CSV, "extractor", {"path": "orders.csv"})]
    )
    manifest.write_text(manifest.read_text().replace("role: extractor", "role: loader"))
    outcome = run_manifest(manifest, project_dir=tmp_path, environ={}, allow_modified=True)
    assert outcome.exit_code == 3 and "schema" in (outcome.error or "")


def test_unknown_driver_and_bad_order_refused(tmp_path: Path) -> None:
    unknown = write_manifest(tmp_path / "a", [step("x", "nosuch.driver", "extractor", {})])
    assert run_manifest(unknown, project_dir=tmp_path, environ={}).exit_code == 3
    reordered = write_manifest(
        tmp_path / "b",
        [
            step("late", "filesystem.csv_writer", "writer", {"path": "x.csv"}, needs=["early"]),
            step("early", CSV, "extractor", {"path": "x.csv"}),
        ],
    )
    outcome = run_manifest(reordered, project_dir=tmp_path, environ={})
    assert outcome.exit_code == 3 and "topological" in (outcome.error or "")


# ------------------------------------------------------------- writers failing mid-write


def _context(tmp_path: Path, config: dict[str, object]) -> tuple[LocalStepContext, RunDatabase]:
    database = RunDatabase(tmp_path / "run.duckdb")
    ctx = LocalStepContext(
        step_id="w",
        config=config,
        connection=None,
        inputs={},
        upstream=(),
        artifacts_dir=tmp_path / "artifacts",
        project_dir=tmp_path,
        database=database,
    )
    return ctx, database


def _failing_reader() -> pa.RecordBatchReader:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])

    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array(range(1000)), pa.array(["new"] * 1000)], schema=schema)
        raise OSError("source connection dropped")

    return pa.RecordBatchReader.from_batches(schema, batches())


@pytest.mark.parametrize(
    ("writer", "name", "extra"),
    [
        (CsvWriter(), "out.csv", {}),
        (CsvWriter(), "out.csv", {"write_mode": "append"}),
        (ParquetWriter(), "out.parquet", {}),
    ],
)
def test_file_writer_failing_mid_write_keeps_old_file(
    tmp_path: Path, writer: CsvWriter | ParquetWriter, name: str, extra: dict[str, object]
) -> None:
    target = tmp_path / name
    target.write_bytes(b"old bytes\n")
    ctx, database = _context(tmp_path, {"path": name, **extra})
    try:
        with pytest.raises(Exception, match="source connection dropped"):
            writer.write(ctx, _failing_reader())
    finally:
        database.close()
    assert target.read_bytes() == b"old bytes\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_duckdb_writer_failing_mid_write_keeps_old_table(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 1 AS id, 'old' AS v")
    con.close()
    for mode in ("replace", "append", "upsert"):
        ctx, database = _context(
            tmp_path, {"path": "t.duckdb", "table": "t", "write_mode": mode, "primary_key": ["id"]}
        )
        try:
            with pytest.raises(Exception, match="source connection dropped"):
                DuckDBWriter().write(ctx, _failing_reader())
        finally:
            database.close()
        check = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
        assert check.execute("SELECT * FROM t").fetchall() == [(1, "old")], mode
        assert check.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (1,), mode
        check.close()


def test_input_reader_streams_bounded_batches(tmp_path: Path) -> None:
    database = RunDatabase(tmp_path / "run.duckdb")
    try:
        database.thread_cursor().execute(
            'CREATE TABLE "up-stream" AS SELECT range AS n FROM range(25000)'
        )
        ctx = LocalStepContext(
            step_id="w",
            config={"batch_size": 4096},
            connection=None,
            inputs={"df": "up-stream"},
            upstream=("up-stream",),
            artifacts_dir=tmp_path / "a",
            project_dir=tmp_path,
            database=database,
        )
        sizes = [batch.num_rows for batch in ctx.input_reader()]
        assert sum(sizes) == 25000 and max(sizes) <= 4096 and len(sizes) >= 7
        assert ctx.rows_read == 25000
        assert sum(b.num_rows for b in ctx.input_reader("df")) == 25000
        ctx.close()
    finally:
        database.close()


# ------------------------------------------------------------- plan, units, drivers


def _csv(path: Path, rows: int) -> None:
    path.write_text("id,name\n" + "".join(f"{i},n{i % 3}\n" for i in range(rows)))


def test_each_unit_kind_runs_and_run_started_records_the_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: Counter[str] = Counter()

    def counted(driver: object) -> None:
        made[type(driver).__name__] += 1

    for cls in {driver_class(driver_id) for driver_id in DRIVERS}:
        monkeypatch.setattr(cls, "__init__", counted)
    for name in ("big", "raw", "a", "b"):
        _csv(tmp_path / f"{name}.csv", 100)
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    con.execute("CREATE TABLE t AS SELECT range AS id FROM range(10)")
    con.close()
    outcome, run_dir = run_steps(
        tmp_path,
        [
            step("big", CSV, "extractor", {"path": "big.csv"}),
            step(
                "agg",
                "duckdb.processor",
                "processor",
                {"query": "SELECT * FROM input"},
                needs=["big"],
            ),
            step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["agg"]),
            step("raw", CSV, "extractor", {"path": "raw.csv"}),
            step("copy", "filesystem.csv_writer", "writer", {"path": "copy.csv"}, needs=["raw"]),
            step("a", CSV, "extractor", {"path": "a.csv"}),
            step("b", CSV, "extractor", {"path": "b.csv"}),
            step(
                "joined",
                "duckdb.processor",
                "processor",
                {"query": "SELECT count(*) AS n FROM a JOIN b USING (id)"},
                needs=["a", "b"],
            ),
            step("src", "duckdb.extractor", "extractor", {"path": "db.duckdb", "table": "t"}),
            step(
                "dst", "duckdb.writer", "writer", {"path": "db.duckdb", "table": "u"}, needs=["src"]
            ),
        ],
        environ={"OSIRIS_INPLACE_MIN_BYTES": "0"},
    )
    assert outcome.exit_code == 0, outcome.error
    assert {s.step_id: s.rows_out for s in outcome.steps} == {
        "big": 100,
        "agg": 100,
        "out": 100,
        "raw": 100,
        "copy": 100,
        "a": 100,
        "b": 100,
        "joined": 1,
        "src": 10,
        "dst": 10,
    }
    run_started = read_events(run_dir)[0]
    assert run_started["units"] == [
        {"kind": "view_chain", "steps": ["big", "agg", "out"]},
        {"kind": "stream", "steps": ["raw", "copy"]},
        {"kind": "file_view", "steps": ["a"]},
        {"kind": "file_view", "steps": ["b"]},
        {"kind": "step", "steps": ["joined"]},
        {"kind": "step", "steps": ["src"]},
        {"kind": "step", "steps": ["dst"]},
    ]
    # one driver instance per step, whatever the unit did with it
    assert made == {
        "CsvExtractor": 4,
        "DuckDBProcessor": 2,
        "CsvWriter": 2,
        "DuckDBExtractor": 1,
        "DuckDBWriter": 1,
    }


def test_unresolvable_connection_starts_a_run_with_no_units(tmp_path: Path) -> None:
    outcome, run_dir = run_steps(
        tmp_path,
        [step("src", "mysql.extractor", "extractor", {"table": "t"}, connection="@mysql.nope")],
    )
    assert outcome.exit_code == 5
    events = read_events(run_dir)
    assert [e["event"] for e in events] == ["run_started", "run_finished"]
    assert events[0]["units"] == []


def test_driver_that_cannot_be_loaded_fails_only_its_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = registry.load_driver

    def load(driver_id: str) -> object:
        if driver_id == "mysql.extractor":
            raise ModuleNotFoundError("No module named 'pymysql'")
        return real(driver_id)

    monkeypatch.setattr(registry, "load_driver", load)
    _orders(tmp_path)
    outcome, _ = run_steps(
        tmp_path,
        [
            step("db", "mysql.extractor", "extractor", {"table": "t"}),
            step("out", "filesystem.csv_writer", "writer", {"path": "db.csv"}, needs=["db"]),
            step("orders", CSV, "extractor", {"path": "orders.csv"}),
        ],
    )
    assert outcome.exit_code == 4 and outcome.failed_step == "db"
    steps = {s.step_id: s for s in outcome.steps}
    assert steps["db"].error == "ModuleNotFoundError: No module named 'pymysql'"
    assert steps["out"].status == "skipped" and steps["orders"].status == "ok"
