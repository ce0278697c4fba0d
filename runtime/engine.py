"""The local engine: runs a Plan's steps in dependency order on a bounded thread pool."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from runtime.connections import ResolvedConnection
from runtime.context import LocalStepContext, RunDatabase, counting_reader
from runtime.drivers.base import (
    DriverError,
    Extractor,
    Processor,
    RunDatabaseSink,
    RunDatabaseSource,
    StepResult,
    Writer,
)
from runtime.drivers.registry import load_driver
from runtime.events import STEP_FAILED, STEP_FINISHED, STEP_SKIPPED, STEP_STARTED, EventLog, RunLog
from runtime.manifest import Plan, PlanStep
from runtime.rundir import RunPaths
from runtime.secrets import Redactor
from runtime.sql import quote_ident

StepStatus = Literal["ok", "failed", "skipped"]


def default_parallelism() -> int:
    """2 to 4 worker threads, by CPU count."""
    return min(4, max(2, os.cpu_count() or 2))


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What happened to one step."""

    step_id: str
    driver: str
    role: str
    status: StepStatus
    rows_in: int = 0
    rows_out: int = 0
    bytes: int = 0
    duration_ms: int = 0
    error: str | None = None
    error_type: str | None = None
    cause: str | None = None  # for a skipped step: the failed step that caused it

    @property
    def rows_per_s(self) -> float:
        rows = max(self.rows_in, self.rows_out)
        return round(rows * 1000 / self.duration_ms, 1) if self.duration_ms > 0 else float(rows)


@dataclass(frozen=True, slots=True)
class _Measured:
    rows_in: int
    rows_out: int
    bytes: int


def one_line(text: str) -> str:
    """Collapse a (possibly multi-line) error message into one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def describe_error(err: BaseException) -> str:
    """A user-facing, one-line description of why a step failed."""
    if isinstance(err, DriverError):
        return one_line(str(err)) or type(err).__name__
    return one_line(f"{type(err).__name__}: {err}")


class LocalEngine:
    """Executes a plan in process against runs/<id>/run.duckdb."""

    def __init__(
        self,
        plan: Plan,
        *,
        paths: RunPaths,
        database: RunDatabase,
        connections: Mapping[str, ResolvedConnection],
        project_dir: Path,
        events: EventLog,
        log: RunLog,
        redactor: Redactor,
        max_parallel: int | None = None,
        on_progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.plan = plan
        self.paths = paths
        self.database = database
        self.connections = connections
        self.project_dir = project_dir
        self.events = events
        self.log = log
        self.redactor = redactor
        self.max_parallel = max(1, max_parallel or default_parallelism())
        self.on_progress = on_progress

    # ------------------------------------------------------------------ scheduling

    def run(self) -> tuple[StepOutcome, ...]:
        outcomes: dict[str, StepOutcome] = {}
        pending = list(self.plan.steps)
        running: dict[Future[StepOutcome], PlanStep] = {}
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="osiris-step") as pool:
            while pending or running:
                for step in list(pending):
                    if step.id in outcomes:  # skipped because of an earlier failure
                        pending.remove(step)
                        continue
                    if len(running) >= self.max_parallel:
                        break
                    if all(outcomes.get(u, _NOT_DONE).status == "ok" for u in step.upstream):
                        pending.remove(step)
                        running[pool.submit(self._execute, step)] = step
                if not running:
                    if pending:  # cannot happen for a verified plan; never spin
                        raise RuntimeError("no runnable step: the plan is not in topological order")
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    step = running.pop(future)
                    outcome = future.result()
                    outcomes[step.id] = outcome
                    if outcome.status == "failed":
                        self._skip_downstream(step, outcomes)
        return tuple(outcomes[s.id] for s in self.plan.steps)

    def _skip_downstream(self, failed: PlanStep, outcomes: dict[str, StepOutcome]) -> None:
        for step_id in self.plan.downstream(failed.id):
            if step_id in outcomes:
                continue
            step = self.plan.step(step_id)
            reason = f"upstream step '{failed.id}' failed"
            outcomes[step_id] = StepOutcome(
                step.id, step.driver, step.role, "skipped", error=reason, cause=failed.id
            )
            blocked_by = [u for u in step.upstream if u == failed.id or u in outcomes]
            self.events.emit(
                STEP_SKIPPED, step.id, reason=reason, cause=failed.id, upstream=blocked_by
            )
            self.log.write(f"skipped: {reason}", step.id)

    # ------------------------------------------------------------------ one step

    def _execute(self, step: PlanStep) -> StepOutcome:
        started = time.perf_counter()
        self.events.emit(STEP_STARTED, step.id, driver=step.driver, role=step.role)
        self.log.write(f"started ({step.role}, {step.driver})", step.id)
        ctx = self._context(step)
        try:
            measured = self._run_role(step, ctx)
        except Exception as err:
            duration = _ms_since(started)
            message = self.redactor.redact(describe_error(err))
            self.log.write(
                f"failed after {duration} ms: {message}\n"
                + "".join(traceback.format_exception(err)),
                step.id,
            )
            self.events.emit(
                STEP_FAILED,
                step.id,
                error=message,
                error_type=type(err).__name__,
                duration_ms=duration,
            )
            return StepOutcome(
                step.id,
                step.driver,
                step.role,
                "failed",
                rows_in=ctx.rows_read,
                duration_ms=duration,
                error=message,
                error_type=type(err).__name__,
            )
        finally:
            ctx.close()
        duration = _ms_since(started)
        outcome = StepOutcome(
            step.id,
            step.driver,
            step.role,
            "ok",
            rows_in=measured.rows_in,
            rows_out=measured.rows_out,
            bytes=measured.bytes,
            duration_ms=duration,
        )
        self.events.emit(
            STEP_FINISHED,
            step.id,
            duration_ms=duration,
            rows_in=outcome.rows_in,
            rows_out=outcome.rows_out,
            bytes=outcome.bytes,
            rows_per_s=outcome.rows_per_s,
        )
        self.log.write(
            f"finished in {duration} ms: rows_in={outcome.rows_in} rows_out={outcome.rows_out}",
            step.id,
        )
        return outcome

    def _context(self, step: PlanStep) -> LocalStepContext:
        resolved = self.connections.get(step.connection) if step.connection else None
        artifacts = self.paths.artifacts(step.id)
        artifacts.mkdir(parents=True, exist_ok=True)
        return LocalStepContext(
            step_id=step.id,
            config=step.config,
            connection=resolved.fields if resolved else None,
            inputs=step.inputs,
            upstream=step.upstream,
            artifacts_dir=artifacts,
            project_dir=self.project_dir,
            database=self.database,
            on_progress=self.on_progress,
            on_log=lambda step_id, message: self.log.write(message, step_id),
        )

    def _run_role(self, step: PlanStep, ctx: LocalStepContext) -> _Measured:
        driver: Any = load_driver(step.driver)
        if step.role == "extractor":
            return self._extract(step, driver, ctx)
        if step.role == "processor":
            if not isinstance(driver, Processor):
                raise DriverError(f"driver {step.driver} cannot run as a processor")
            result = driver.transform(ctx)
            if not self.database.table_exists(step.id):
                raise DriverError(f"processor {step.id} did not create its output table")
            rows_out = result.rows_out or self.database.row_count(step.id)
            return _Measured(result.rows_in, rows_out, result.bytes)
        return self._write(step, driver, ctx)

    def _extract(self, step: PlanStep, driver: Any, ctx: LocalStepContext) -> _Measured:
        cursor = ctx.run_db()
        table = quote_ident(step.id)
        query = driver.source_query(ctx) if isinstance(driver, RunDatabaseSource) else None
        if query:
            cursor.execute(f"CREATE TABLE {table} AS {query}")
            rows = self.database.row_count(step.id)
            ctx.progress(rows)
            return _Measured(rows, rows, 0)
        if not isinstance(driver, Extractor):
            raise DriverError(f"driver {step.driver} cannot run as an extractor")
        reader = driver.extract(ctx)
        if not isinstance(reader, pa.RecordBatchReader):
            raise DriverError(f"driver {step.driver} did not return an Arrow RecordBatchReader")
        seen = {"rows": 0, "bytes": 0}

        def count(batch: pa.RecordBatch) -> None:
            seen["rows"] += batch.num_rows
            seen["bytes"] += batch.nbytes
            ctx.progress(batch.num_rows)

        view = f"osiris_extract_{step.id.replace('-', '_')}"
        cursor.register(view, counting_reader(reader, count))
        try:
            cursor.execute(f"CREATE TABLE {table} AS SELECT * FROM {quote_ident(view)}")
        finally:
            cursor.unregister(view)
        return _Measured(seen["rows"], seen["rows"], seen["bytes"])

    def _write(self, step: PlanStep, driver: Any, ctx: LocalStepContext) -> _Measured:
        source = ctx.input_table()
        result: StepResult | None = None
        if isinstance(driver, RunDatabaseSink):
            result = driver.write_from_run_db(ctx, source)
            if result is not None:
                return _Measured(result.rows_in, result.rows_out, result.bytes)
        if not isinstance(driver, Writer):
            raise DriverError(f"driver {step.driver} cannot run as a writer")
        result = driver.write(ctx, ctx.input_reader())
        rows_in = ctx.rows_read or result.rows_in
        return _Measured(rows_in, result.rows_out, result.bytes or ctx.bytes_read)


_NOT_DONE = StepOutcome("", "", "", "skipped")


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
