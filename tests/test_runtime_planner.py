"""The planner, pure: manifest steps + run options + probed facts -> execution units; and the probe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import pytest

from osiris.runtime.context import RunDatabase, StepContexts
from osiris.runtime.drivers.registry import StepDrivers, driver_class
from osiris.runtime.manifest import ManifestStep
from osiris.runtime.planner import (
    INPLACE_MIN_BYTES,
    ExecutionPlan,
    Facts,
    FileViewUnit,
    PlanOptions,
    SourceFiles,
    StepUnit,
    StreamUnit,
    ViewChainUnit,
    plan,
)
from osiris.runtime.probe import probe

CSV = "filesystem.csv_extractor"
CSV_OUT = "filesystem.csv_writer"
PROCESSOR = "duckdb.processor"
LARGE = INPLACE_MIN_BYTES
SMALL = INPLACE_MIN_BYTES - 1
AUTO = PlanOptions()


def step(step_id: str, driver: str, needs: tuple[str, ...] = ()) -> ManifestStep:
    role = driver_class(driver).abilities.roles[0]
    return ManifestStep(
        id=step_id,
        component=driver,
        component_version="0.1.0",
        driver=driver,
        mode={"extractor": "read", "processor": "transform", "writer": "write"}[role],
        role=role,
        needs=needs,
        inputs=MappingProxyType({}),
        connection=None,
        cfg_path=f"cfg/{step_id}.json",
        cfg_sha256="sha256:0",
        config=MappingProxyType({}),
        cfg_bytes=b"{}",
    )


def facts(
    steps: list[ManifestStep],
    sizes: dict[str, int] | None = None,
    shared: frozenset[tuple[str, str]] = frozenset(),
) -> Facts:
    """What the probe would find: every driver's declared abilities; `sizes` of file sources
    that exist (a missing one could not be measured), each read from /data/<id>.csv."""
    sizes = sizes or {}
    return Facts(
        abilities={s.id: driver_class(s.driver).abilities for s in steps},
        source_bytes=sizes,
        source_files={step_id: (f"/data/{step_id}.csv",) for step_id in sizes},
        shared_database_files=shared,
    )


def units(steps: list[ManifestStep], found: Facts, options: PlanOptions = AUTO) -> list[Any]:
    execution_plan = plan(steps, options, found)
    _check_covers_every_step_once_in_order(steps, execution_plan)
    return list(execution_plan.units)


def _check_covers_every_step_once_in_order(
    steps: list[ManifestStep], execution_plan: ExecutionPlan
) -> None:
    planned = [s.id for unit in execution_plan.units for s in unit.steps]
    assert sorted(planned) == sorted(s.id for s in steps)
    done: set[str] = set()
    for unit in execution_plan.units:
        inside = {s.id for s in unit.steps}
        assert all(u in done for s in unit.steps for u in s.upstream if u not in inside)
        done |= inside


# ------------------------------------------------------------- extract -> write streams


def test_large_file_streams_into_its_only_writer() -> None:
    steps = [step("src", CSV), step("out", CSV_OUT, ("src",))]
    assert units(steps, facts(steps, {"src": LARGE})) == [StreamUnit(steps[0], steps[1])]


def test_small_file_is_copied_not_streamed() -> None:
    steps = [step("src", CSV), step("out", CSV_OUT, ("src",))]
    assert units(steps, facts(steps, {"src": SMALL})) == [StepUnit(steps[0]), StepUnit(steps[1])]
    # the threshold is an option: 0 streams every file
    zero = PlanOptions(inplace_min_bytes=0)
    assert units(steps, facts(steps, {"src": 10}), zero) == [StreamUnit(steps[0], steps[1])]


def test_file_that_could_not_be_measured_is_not_streamed() -> None:
    steps = [step("src", CSV), step("out", CSV_OUT, ("src",))]
    assert units(steps, facts(steps)) == [StepUnit(steps[0]), StepUnit(steps[1])]


def test_database_sources_of_unknown_size_always_stream() -> None:
    steps = [step("src", "mysql.extractor"), step("out", "postgres.writer", ("src",))]
    assert units(steps, facts(steps)) == [StreamUnit(steps[0], steps[1])]


def test_same_duckdb_file_is_not_streamed() -> None:
    steps = [step("src", "duckdb.extractor"), step("out", "duckdb.writer", ("src",))]
    shared = facts(steps, shared=frozenset({("src", "out")}))
    assert units(steps, shared) == [StepUnit(steps[0]), StepUnit(steps[1])]
    assert units(steps, facts(steps)) == [StreamUnit(steps[0], steps[1])]


def test_extract_with_two_consumers_is_not_streamed() -> None:
    steps = [step("src", CSV), step("a", CSV_OUT, ("src",)), step("b", CSV_OUT, ("src",))]
    assert units(steps, facts(steps, {"src": LARGE})) == [StepUnit(s) for s in steps]


def test_writer_with_two_inputs_is_not_streamed_into() -> None:
    steps = [
        step("one", "mysql.extractor"),
        step("two", "mysql.extractor"),
        step("out", "postgres.writer", ("one", "two")),
    ]
    assert units(steps, facts(steps)) == [StepUnit(s) for s in steps]


def test_materialize_all_runs_every_step_on_its_own() -> None:
    steps = [
        step("src", CSV),
        step("out", CSV_OUT, ("src",)),
        step("raw", CSV),
        step("agg", PROCESSOR, ("raw",)),
        step("write", CSV_OUT, ("agg",)),
    ]
    found = facts(steps, {"src": LARGE, "raw": LARGE})
    everything = PlanOptions(materialize="all", inplace_min_bytes=0)
    assert units(steps, found, everything) == [StepUnit(s) for s in steps]


# ------------------------------------------------------------- views and view chains


def test_large_file_processor_writer_is_one_view_chain() -> None:
    steps = [step("src", CSV), step("agg", PROCESSOR, ("src",)), step("out", CSV_OUT, ("agg",))]
    assert units(steps, facts(steps, {"src": LARGE})) == [
        ViewChainUnit((steps[0], steps[1]), steps[2], SourceFiles(("/data/src.csv",), LARGE))
    ]


def test_large_file_read_by_a_processor_with_other_readers_ends_the_chain() -> None:
    steps = [
        step("src", CSV),
        step("agg", PROCESSOR, ("src",)),
        step("a", CSV_OUT, ("agg",)),
        step("b", CSV_OUT, ("agg",)),
    ]
    assert units(steps, facts(steps, {"src": LARGE})) == [
        ViewChainUnit((steps[0],), steps[1], SourceFiles(("/data/src.csv",), LARGE)),
        StepUnit(steps[2]),
        StepUnit(steps[3]),
    ]


def test_small_file_is_copied_and_its_processor_is_still_a_view() -> None:
    steps = [step("src", CSV), step("agg", PROCESSOR, ("src",)), step("out", CSV_OUT, ("agg",))]
    assert units(steps, facts(steps, {"src": SMALL})) == [
        StepUnit(steps[0]),
        ViewChainUnit((steps[1],), steps[2], None),
    ]


def test_processor_view_read_by_a_database_writer() -> None:
    steps = [
        step("src", "postgres.extractor"),
        step("other", "postgres.extractor"),
        step("joined", PROCESSOR, ("src", "other")),
        step("out", "mysql.writer", ("joined",)),
    ]
    assert units(steps, facts(steps)) == [
        StepUnit(steps[0]),
        StepUnit(steps[1]),
        ViewChainUnit((steps[2],), steps[3], None),
    ]


def test_processor_read_by_a_writer_with_other_inputs_is_a_table() -> None:
    steps = [
        step("src", "postgres.extractor"),
        step("agg", PROCESSOR, ("src",)),
        step("out", "mysql.writer", ("agg", "src")),
    ]
    assert units(steps, facts(steps)) == [StepUnit(s) for s in steps]


def test_large_file_read_by_a_processor_with_other_inputs_is_a_view_on_its_own() -> None:
    steps = [
        step("big", CSV),
        step("small", CSV),
        step("joined", PROCESSOR, ("big", "small")),
    ]
    assert units(steps, facts(steps, {"big": LARGE, "small": SMALL})) == [
        FileViewUnit(steps[0]),
        StepUnit(steps[1]),
        StepUnit(steps[2]),
    ]


def test_file_whose_query_does_not_build_is_copied() -> None:
    steps = [step("src", CSV), step("agg", PROCESSOR, ("src",))]
    found = facts(steps, {"src": LARGE})
    unreadable = Facts(found.abilities, found.source_bytes, {}, frozenset())
    assert units(steps, unreadable) == [StepUnit(steps[0]), StepUnit(steps[1])]


# ------------------------------------------------------------- a mixed DAG


def test_on_a_cluster_steps_share_no_run_database() -> None:
    """--engine dask: no views (each task has its own DuckDB file); a stream only between ends
    that stage (a partitioned unit of one partition), incremental extractors included (the
    partition's job carries their state)."""
    cluster = PlanOptions(cluster=True)
    files = [
        step("big", CSV),
        step("calc", PROCESSOR, ("big",)),
        step("out", CSV_OUT, ("calc",)),
        step("copy", CSV),
        step("copied", CSV_OUT, ("copy",)),
    ]
    found = facts(files, {"big": LARGE, "copy": LARGE})
    assert units(files, found, cluster) == [StepUnit(s) for s in files]
    dbs = [step("src", "mysql.extractor"), step("dst", "postgres.writer", ("src",))]
    assert units(dbs, facts(dbs), cluster) == [StreamUnit(dbs[0], dbs[1])]
    incremental = replace(dbs[0], config=MappingProxyType({"incremental": {"cursor_column": "u"}}))
    dbs = [incremental, dbs[1]]
    assert units(dbs, facts(dbs), cluster) == [StreamUnit(dbs[0], dbs[1])]
    assert units(dbs, facts(dbs)) == [StreamUnit(dbs[0], dbs[1])]


def test_mixed_dag() -> None:
    steps = [
        step("orders", CSV),  # large file -> processor -> writer: one query
        step("customers", "mysql.extractor"),  # read by two processors: a table
        step("totals", PROCESSOR, ("orders",)),
        step("by-country", PROCESSOR, ("customers",)),
        step("vip", PROCESSOR, ("customers", "by-country")),
        step("write-totals", "filesystem.parquet_writer", ("totals",)),
        step("archive", "duckdb.extractor"),  # streams into PostgreSQL
        step("to-pg", "postgres.writer", ("archive",)),
        step("write-vip", "duckdb.writer", ("vip",)),  # a processor view's reader
        step("after", "filesystem.parquet_extractor", ("write-totals",)),  # ordering only
        step("after-copy", CSV_OUT, ("after",)),
    ]
    found = facts(steps, {"orders": LARGE, "after": SMALL})
    execution_plan = plan(steps, AUTO, found)
    _check_covers_every_step_once_in_order(steps, execution_plan)
    assert execution_plan.describe() == [
        {"kind": "view_chain", "steps": ["orders", "totals", "write-totals"]},
        {"kind": "step", "steps": ["customers"]},
        {"kind": "step", "steps": ["by-country"]},
        {"kind": "view_chain", "steps": ["vip", "write-vip"]},
        {"kind": "stream", "steps": ["archive", "to-pg"]},
        {"kind": "step", "steps": ["after"]},
        {"kind": "step", "steps": ["after-copy"]},
    ]
    assert [s.id for s in execution_plan.downstream("customers")] == [
        "by-country",
        "vip",
        "write-vip",
    ]
    assert [s.id for s in execution_plan.downstream("orders")] == [
        "totals",
        "write-totals",
        "after",
        "after-copy",
    ]


# ------------------------------------------------------------- the probe


def _probe(tmp_path: Path, steps: list[ManifestStep], connections: dict[str, Any]) -> Facts:
    database = RunDatabase(tmp_path / "run.duckdb")
    contexts = StepContexts(database, connections, tmp_path, lambda step_id: tmp_path / step_id)
    found = probe(steps, StepDrivers({s.id: s.driver for s in steps}), contexts.for_step)
    assert not (tmp_path / "run.duckdb").exists()  # probing opens no database
    return found


def _configured(
    base: ManifestStep, config: dict[str, Any], connection: str | None = None
) -> ManifestStep:
    return replace(base, config=MappingProxyType(config), connection=connection)


def test_probe_measures_file_sources_and_finds_shared_database_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n2\n")
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    con.execute("CREATE TABLE t AS SELECT 1 AS id")
    con.close()
    steps = [
        _configured(step("a", CSV), {"path": "a.csv"}),
        _configured(step("gone", CSV), {"path": "missing.csv"}),
        _configured(step("bad", CSV), {"path": "a.csv", "compression": "rar"}),
        _configured(step("src", "duckdb.extractor"), {"table": "t"}, "@duckdb.local"),
        _configured(step("same", "duckdb.writer", ("src",)), {"path": "db.duckdb", "table": "u"}),
        _configured(step("other", "duckdb.writer", ("src",)), {"path": "x.duckdb", "table": "u"}),
        _configured(step("unknown", "duckdb.writer", ("src",)), {"table": "u"}),
    ]
    found = _probe(tmp_path, steps, {"@duckdb.local": {"path": "db.duckdb"}})
    size = (tmp_path / "a.csv").stat().st_size
    assert found.source_bytes == {"a": size, "bad": size}
    assert found.source_files == {"a": (str(tmp_path / "a.csv"),)}  # bad: its query cannot build
    # no path at all: we cannot tell, which counts as the same file
    assert found.shared_database_files == {("src", "same"), ("src", "unknown")}
    assert found.abilities["a"].sized_source and found.abilities["src"].database_file


@pytest.mark.parametrize("driver", ["mysql.extractor", "postgres.writer", PROCESSOR])
def test_probe_leaves_steps_without_measurable_sources_alone(tmp_path: Path, driver: str) -> None:
    steps = [step("x", driver)]
    found = _probe(tmp_path, steps, {})
    assert (found.source_bytes, found.source_files, found.shared_database_files) == (
        {},
        {},
        frozenset(),
    )
