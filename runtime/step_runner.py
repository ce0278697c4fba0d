"""Running one step in process: its driver and context, its role's work, its reported outcome."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from osiris.runtime.context import LocalStepContext, StepContexts
from osiris.runtime.drivers.base import DriverError, StepResult
from osiris.runtime.drivers.registry import StepDrivers
from osiris.runtime.drivers.replay import as_stream, consume_with_replay
from osiris.runtime.manifest import ManifestStep
from osiris.runtime.outcomes import Measured, StepOutcome, StepReporter
from osiris.runtime.publish import Publications
from osiris.runtime.tap import StreamTap

if TYPE_CHECKING:
    import pyarrow as pa

StepWork = Callable[[ManifestStep, LocalStepContext], Measured]


class StepRunner:
    """What every unit strategy of the local executor runs and reports steps with. Without a
    reporter (a step task on a cluster's worker) it only does the roles' work: the client
    reports."""

    def __init__(
        self,
        steps: Sequence[ManifestStep],
        *,
        drivers: StepDrivers,
        contexts: StepContexts,
        reporter: StepReporter | None = None,
    ) -> None:
        self.steps = {step.id: step for step in steps}
        self.drivers = drivers
        self.contexts = contexts
        self.database = contexts.database  # the run's, which every step context shares
        self._reporter = reporter
        self.publications = Publications()  # writers' deferred loads (--atomic)
        self._rows_out: dict[str, int] = {}

    @property
    def reporter(self) -> StepReporter:
        if self._reporter is None:
            raise RuntimeError("this StepRunner does the roles' work only: it reports nothing")
        return self._reporter

    def record(self, outcome: StepOutcome) -> None:
        """Remember what a finished step produced: the rows its readers read."""
        self.record_rows(outcome.step_id, outcome.rows_out)

    def record_rows(self, step_id: str, rows: int) -> None:
        self._rows_out[step_id] = rows

    def driver(self, step: ManifestStep) -> Any:
        """The step's driver (raises what loading it raised, if it could not be loaded)."""
        return self.drivers[step.id]

    def context(self, step: ManifestStep) -> LocalStepContext:
        ctx = self.contexts.for_step(step)
        ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return ctx

    def run(self, step: ManifestStep, work: StepWork | None = None) -> StepOutcome:
        """Run one step on its own, doing `work` (by default what its role does)."""
        started = time.perf_counter()
        self.reporter.started(step)
        ctx = self.context(step)
        try:
            measured = (work or self.run_role)(step, ctx)
        except Exception as err:
            return self.reporter.failed(step, err, started, rows_in=ctx.rows_read)
        finally:
            ctx.close()
        return self.reporter.succeeded(step, measured, started)

    def run_role(self, step: ManifestStep, ctx: LocalStepContext) -> Measured:
        ctx.raise_if_cancelled()
        driver = self.driver(step)
        if step.role == "extractor":
            return self._extract(step, driver, ctx)
        if step.role == "processor":
            return self._transform(step, driver, ctx)
        return self._write(step, driver, ctx)

    def read_in_place(self, step: ManifestStep, ctx: LocalStepContext) -> Measured:
        """A file extract as VIEW <step_id> over its files; counting its rows reads them."""
        self.driver(step).define_view(ctx)
        rows = self.database.row_count(step.id)
        ctx.progress(rows)
        return Measured(rows, rows, 0)

    def upstream_rows(self, step: ManifestStep) -> int | None:
        """Rows of a step's input relations, from the upstream outcomes (no re-scan)."""
        total = 0
        for upstream in dict.fromkeys(step.upstream):
            if self.steps[upstream].role == "writer":
                continue  # an ordering dependency: no relation behind it
            if upstream not in self._rows_out:
                return None
            total += self._rows_out[upstream]
        return total

    def _extract(self, step: ManifestStep, driver: Any, ctx: LocalStepContext) -> Measured:
        query = driver.source_query(ctx) if driver.abilities.native_source else None
        if query:
            self.database.create_table(step.id, query)
            rows = self.database.row_count(step.id)
            ctx.progress(rows)
            return Measured(rows, rows, 0)
        if "extractor" not in driver.abilities.roles:
            raise DriverError(f"driver {step.driver} cannot run as an extractor")
        tap = StreamTap(
            as_stream(driver.extract(ctx), step.driver), (ctx.progress,), ctx.raise_if_cancelled
        )
        try:
            consume_with_replay(tap, lambda data: self.database.store(step.id, data))
        finally:
            tap.close()
        return Measured(tap.rows, tap.rows, tap.bytes)

    def _transform(self, step: ManifestStep, driver: Any, ctx: LocalStepContext) -> Measured:
        if "processor" not in driver.abilities.roles:
            raise DriverError(f"driver {step.driver} cannot run as a processor")
        result = driver.transform(ctx)
        if not self.database.table_exists(step.id):
            raise DriverError(f"processor {step.id} did not create its output table")
        rows_out = result.rows_out or self.database.row_count(step.id)
        rows_in = self.upstream_rows(step)
        return Measured(result.rows_in if rows_in is None else rows_in, rows_out, result.bytes)

    def write(
        self, step: ManifestStep, driver: Any, ctx: LocalStepContext, data: pa.RecordBatchReader
    ) -> StepResult:
        """driver.write, keeping a deferred publication (--atomic) for the run's publish phase."""
        self._can_defer(step, driver, ctx)
        return self._hold(step, driver.write(ctx, data))

    def finish_parts(
        self,
        step: ManifestStep,
        driver: Any,
        ctx: LocalStepContext,
        schema: pa.Schema,
        parts: list[Any],
    ) -> StepResult:
        """driver.finish_parts (a partitioned load's one publishing step), with write()'s
        --atomic rules: its publication is kept for the run's publish phase."""
        self._can_defer(step, driver, ctx)
        return self._hold(step, driver.finish_parts(ctx, schema, parts))

    def _can_defer(self, step: ManifestStep, driver: Any, ctx: LocalStepContext) -> None:
        if ctx.defer_publish and not driver.abilities.deferred_publish:
            raise DriverError(f"driver {step.driver} cannot defer publishing its target (--atomic)")

    def _hold(self, step: ManifestStep, result: StepResult) -> StepResult:
        if result.pending is not None:
            self.publications.hold(step.id, result.pending)
        return result

    def _write(self, step: ManifestStep, driver: Any, ctx: LocalStepContext) -> Measured:
        source = ctx.input_table()
        if driver.abilities.run_database_sink:
            self._can_defer(step, driver, ctx)
            result = driver.write_from_run_db(ctx, source)
            if result is not None:
                self._hold(step, result)
                return Measured(result.rows_in, result.rows_out, result.bytes)
        if "writer" not in driver.abilities.roles:
            raise DriverError(f"driver {step.driver} cannot run as a writer")
        result = self.write(step, driver, ctx, ctx.input_reader())
        rows_in = ctx.rows_read or result.rows_in
        return Measured(rows_in, result.rows_out, result.bytes or ctx.bytes_read)
