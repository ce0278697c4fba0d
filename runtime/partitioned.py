"""Running a partitioned unit: each partition streams into its own staging table, then one publish."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osiris.runtime.cancel import CancelToken
from osiris.runtime.connections import LiveConnection
from osiris.runtime.context import LocalStepContext, RunDatabase
from osiris.runtime.debris import PartScratch
from osiris.runtime.drivers.base import DriverError, Part, track_parts
from osiris.runtime.drivers.incremental import after
from osiris.runtime.drivers.registry import load_driver
from osiris.runtime.drivers.replay import as_stream, consume_with_replay
from osiris.runtime.events import PARTITION_FINISHED
from osiris.runtime.outcomes import Measured, StepOutcome
from osiris.runtime.partitions import PARTITION_WHERE
from osiris.runtime.planner import PartitionedUnit
from osiris.runtime.records.state import CarriedState, CursorState, StateError
from osiris.runtime.step_runner import StepRunner
from osiris.runtime.tap import StreamTap

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True, slots=True)
class PartEnd:
    """One side of a partition: a step's driver, config and resolved connection fields."""

    step_id: str
    driver: str
    config: Mapping[str, Any]
    connection: Mapping[str, Any] | None  # secrets included: in memory only, never a task key


@dataclass(frozen=True, slots=True)
class PartJob:
    """Everything one partition needs, picklable for a Dask worker."""

    run_id: str  # names the partition's scratch directory; its tag is in the part tables' names
    index: int
    predicate: str | None
    source: PartEnd
    sink: PartEnd
    part: Part
    project_dir: str  # the client's, absolute: relative config paths resolve against it anywhere
    state: CursorState | StateError | None = None  # the source's incremental state, if it has one


@dataclass(frozen=True, slots=True)
class PartResult:
    index: int
    rows: int
    bytes: int
    seconds: float
    worker: str
    schema: pa.Schema | None = None
    error: str | None = None
    in_source: bool = False  # the error came from the extractor (else from the load)
    state: CursorState | None = None  # the highest cursor value this partition read
    logs: tuple[tuple[str, str], ...] = ()  # (step id, message) the drivers logged


# Runs the jobs (in threads, or as tasks on a cluster); results in any order.
PartMap = Callable[[Sequence[PartJob]], list[PartResult]]


def _context(
    end: PartEnd,
    side: PartScratch,
    project_dir: str,
    cancel: CancelToken,
    on_rows: Callable[[int], None] | None,
    logs: list[tuple[str, str]],
    states: CarriedState | None = None,
) -> Any:
    """A worker-side context: every file it makes is inside the partition's scratch directory,
    relative paths resolve against the client's project dir, and it lists nothing in a ledger
    (PartScratch raises); its log lines and held state go back to the client."""
    return LocalStepContext(
        step_id=end.step_id,
        config=end.config,
        connection=end.connection,
        inputs={},
        upstream=(),
        artifacts_dir=side.scratch_dir / "artifacts",
        project_dir=Path(project_dir),
        database=RunDatabase(side.scratch_dir / "unused.duckdb"),  # never opened
        on_progress=(lambda _step, rows: on_rows(rows)) if on_rows else None,
        on_log=lambda step_id, message: logs.append((step_id, message)),
        debris=side,
        cancel=cancel,
        states=states,
    )


def run_part(
    job: PartJob,
    *,
    worker: str = "local",
    cancel: CancelToken | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> PartResult:
    """Extract one partition and load it into its staging place (on whichever machine runs it)."""
    token = cancel or CancelToken()
    started = time.perf_counter()
    source = dataclasses.replace(
        job.source, config={**job.source.config, PARTITION_WHERE: job.predicate}
    )
    side = PartScratch(job.run_id, job.index)
    logs: list[tuple[str, str]] = []
    states = CarriedState(job.state)
    src_ctx = _context(source, side, job.project_dir, token, None, logs, states)
    sink_ctx = _context(job.sink, side, job.project_dir, token, on_rows, logs)
    tap: StreamTap | None = None
    try:
        stream = as_stream(load_driver(source.driver).extract(src_ctx), source.driver)
        tap = StreamTap(stream, (), token.raise_if_cancelled)
        sink_driver = load_driver(job.sink.driver)
        rows = consume_with_replay(
            tap, lambda data: sink_driver.stage_part(sink_ctx, data, job.part)
        )
        seconds = time.perf_counter() - started
        return PartResult(
            job.index, rows, tap.bytes, seconds, worker, tap.schema, state=states.held,
            logs=tuple(logs),
        )  # fmt: skip
    except Exception as err:
        in_source = tap is None or tap.error is not None
        return PartResult(
            job.index,
            tap.rows if tap else 0,
            tap.bytes if tap else 0,
            time.perf_counter() - started,
            worker,
            error=str(err) or type(err).__name__,
            in_source=in_source,
            logs=tuple(logs),
        )
    finally:
        try:
            if tap is not None:
                tap.close()
        finally:
            side.close()


def highest_state(states: Iterable[CursorState | None]) -> CursorState | None:
    """The partitions' states as one: the highest cursor value any of them read."""
    found: CursorState | None = None
    for state in states:
        if state is not None and (found is None or after(state.last_value, found.last_value)):
            found = state
    return found


def resolved_fields(runner: StepRunner, ref: str | None) -> Mapping[str, Any] | None:
    """A connection's fields as they are now (secrets included), for a partition's job."""
    if ref is None:
        return None
    found = runner.contexts.connections.get(ref)
    return found.fields() if isinstance(found, LiveConnection) else found


def thread_map(runner: StepRunner, parallel: int, on_rows: Callable[[int, int], None]) -> PartMap:
    """Partitions on up to `parallel` threads of this process; a failure cancels the others'
    remaining work only through the run's own cancel token."""

    def run(jobs: Sequence[PartJob]) -> list[PartResult]:
        def one(job: PartJob) -> PartResult:
            return run_part(
                job,
                cancel=runner.reporter.cancel,
                on_rows=lambda rows: on_rows(job.index, rows),
            )

        with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="osiris-part") as pool:
            return list(pool.map(one, jobs))

    return run


class _Rows:
    """Per-partition running totals summed into the steps' progress."""

    def __init__(self, report: Callable[[int], None]) -> None:
        self.report = report
        self.rows: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, index: int, rows: int) -> None:
        with self.lock:
            self.rows[index] = max(rows, self.rows.get(index, 0))
            total = sum(self.rows.values())
        self.report(total)


def run_partitioned(
    runner: StepRunner,
    unit: PartitionedUnit,
    connection: Callable[[str | None], Mapping[str, Any] | None],
    make_map: Callable[[Callable[[int, int], None]], PartMap],
) -> tuple[StepOutcome, ...]:
    """Both steps' outcomes: partitions staged by make_map's runner, then the writer's one
    publishing step from here. A failed partition fails the unit; its staging places stay in
    the run's ledger, which removes them before the run ends."""
    source, sink, report = unit.source, unit.sink, runner.reporter
    started = time.perf_counter()
    report.started(source, streamed_to=sink.id)
    report.started(sink, streamed_from=source.id)
    src_ctx, sink_ctx = runner.context(source), runner.context(sink)
    src_driver, sink_driver = runner.driver(source), runner.driver(sink)

    def report_rows(rows: int) -> None:
        src_ctx.progress(rows)
        sink_ctx.progress(rows)

    rows_seen = _Rows(report_rows)
    try:
        try:
            preds = (  # no partition: the whole read as one task (on a cluster)
                src_driver.partitions(src_ctx, source.partition) if source.partition else [None]
            )
            parts = sink_driver.part_tables(sink_ctx, len(preds))
            entries = track_parts(sink_ctx, parts)
        except Exception as err:
            return report.failed(source, err, started), report.skipped(sink, source.id, [source.id])
        debris = runner.contexts.debris
        run_id = debris.run_id if debris is not None else sink_ctx.run_tag
        state: CursorState | StateError | None = None
        if source.config.get("incremental"):  # each partition reads the same window
            try:
                state = src_ctx.load_state()
            except StateError as err:
                state = err
        jobs = [
            PartJob(
                run_id,
                i,
                pred,
                PartEnd(
                    source.id, source.driver, dict(source.config), connection(source.connection)
                ),
                PartEnd(sink.id, sink.driver, dict(sink.config), connection(sink.connection)),
                part,
                str(sink_ctx.project_dir.absolute()),
                state,
            )
            for i, (pred, part) in enumerate(zip(preds, parts, strict=True))
        ]
        results = sorted(make_map(rows_seen)(jobs), key=lambda r: r.index)
        for result in results:
            for step_id, line in result.logs:
                ctx = src_ctx if step_id == source.id else sink_ctx
                ctx.log(f"partition {result.index + 1} of {len(jobs)}: {line}")
            report.events.emit(
                PARTITION_FINISHED,
                sink.id,
                source=source.id,
                partition=result.index,
                partitions=len(jobs),
                worker=result.worker,
                rows=result.rows,
                seconds=round(result.seconds, 3),
                status="failed" if result.error else "ok",
                error=report.redactor.redact(result.error) if result.error else None,
            )
        rows = sum(r.rows for r in results)
        data_bytes = sum(r.bytes for r in results)
        failed = [r for r in results if r.error]
        if failed:
            first = failed[0]
            message = f"partition {first.index + 1} of {len(jobs)} failed: {first.error}"
            if report.cancel.cancelled:
                return (
                    report.cancelled(source, started, rows_in=rows),
                    report.cancelled(sink, started, rows_in=rows),
                )
            error = DriverError(message + "; the target was left as it was")
            source_outcome = (
                report.failed(source, error, started, rows_in=rows)
                if first.in_source
                else report.succeeded(source, Measured(rows, rows, data_bytes), started)
            )
            return source_outcome, report.failed(sink, error, started, rows_in=rows)
        highest = highest_state(r.state for r in results)
        if highest is not None:  # committed with the others only if the whole run succeeds
            src_ctx.hold_state(highest)
        source_outcome = report.succeeded(source, Measured(rows, rows, data_bytes), started)
        sink_started = time.perf_counter()
        try:
            schema = next(r.schema for r in results if r.schema is not None)
            published = runner.finish_parts(sink, sink_driver, sink_ctx, schema, parts)
        except Exception as err:
            if report.cancel.cancelled:
                return source_outcome, report.cancelled(sink, sink_started, rows_in=rows, err=err)
            return source_outcome, report.failed(sink, err, sink_started, rows_in=rows)
        if not sink_ctx.defer_publish:  # published: the parts were dropped with it
            for entry in entries:
                sink_ctx.untrack(entry)
        sink_ctx.progress(published.rows_out)
        return source_outcome, report.succeeded(
            sink, Measured(rows, published.rows_out, data_bytes), started
        )
    finally:
        src_ctx.close()
        sink_ctx.close()
