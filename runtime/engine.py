"""The local engine: runs a Plan's steps in dependency order on a bounded thread pool.

Where step outputs live
-----------------------
Every extractor and processor output is a relation in the run's own on-disk DuckDB database
(``runs/<run_id>/run.duckdb``) named after the step, so intermediate results can be inspected
afterwards. By default (``materialize="auto"``) three shortcuts apply where copying into run.duckdb
measured far slower than the job itself (bench/local_bench.py, 5M-row CSV: CREATE TABLE in
run.duckdb plus its checkpoint took ~3 s, the whole group-by in plain DuckDB ~1.1 s):

* **Streaming extract -> write.** When an extractor's output has exactly one consumer, that
  consumer is a writer, and the writer has no other upstream step, the engine hands the
  extractor's Arrow RecordBatchReader straight to ``Writer.write`` (bounded batches; the writer
  pulls, so backpressure is natural and memory stays flat). Nothing of that extractor is stored
  in run.duckdb. Rows and bytes are counted on the stream exactly as the materialised path counts
  them. Both steps get ``step_started`` (the extractor's carries ``streamed_to``, the writer's
  ``streamed_from``) and then ``step_finished``/``step_failed``, the extractor's first.
  Failures:

  - ``extract()`` raises before any row flows (missing file, refused connection): the extractor
    failed, the writer never started and is skipped - exactly as when materialising;
  - the extractor fails mid-stream: the extractor is reported failed with its own error; the
    writer is reported failed too ("input stream from step ... failed; the write was rolled
    back"); writers are transactional, so the target is left as it was; exit 4 with the
    extractor as ``failed_step``;
  - the writer fails: the writer is reported failed; the extractor is reported ``ok`` - it did
    not fail - with the rows it delivered before the writer stopped reading.

  Not streamed: a duckdb.extractor -> duckdb.writer pair on the same database file (one process
  may open a DuckDB file only once), and file sources below the size threshold (below).

* **File extracts read in place.** A file extractor (CSV/Parquet: drivers offering
  ``source_query``) whose only consumer is a processor becomes a VIEW over the source file(s)
  in run.duckdb instead of a table; the processor reads the file directly, once, as plain
  DuckDB would. The view stays in run.duckdb, so the extract can still be inspected afterwards
  while the source file exists (it re-reads the file: if the file changed, so does the view).
  Row counts stay exact: when that processor has no other input, the count comes from DuckDB's
  profile of the processor's own scan if it shows every READ_CSV scan read the whole source
  (otherwise - a LIMIT that stopped early, compressed input - the view is counted, re-reading
  it; Parquet counts come from its metadata). Events: extractor ``step_started``
  (``read_in_place_by``), processor ``step_started`` (``reads_in_place``), extractor
  ``step_finished``, processor ``step_finished``. If the processor fails, the view is read in
  full: when the file itself cannot be read, the extractor is reported failed (and is the
  run's ``failed_step``), as it would have been when copying; otherwise it is ``ok``. A view
  does not type-check columns the processor never reads (a table copy fails on a bad value in
  any column), so such a run can succeed where a materialised one fails; use
  ``OSIRIS_MATERIALIZE=all`` for the strict copy. Sources that cannot be re-read later
  (databases, APIs) are always materialised.

* **Processors read by one writer are views.** A processor (``duckdb.processor``) whose only
  consumer is a writer with no other input becomes VIEW <step_id> in run.duckdb (its aliases -
  ``input``, ``df_<id>``, ... - are CTEs inside it) and the writer reads the view, so extract
  -> processor -> writer over a large file is one DuckDB query, ``COPY (...) TO``, as plain
  DuckDB would run it (bench/local_bench.py, 1M rows: 0.40 s -> 0.27 s for the two steps, no
  table to write and checkpoint). The view stays inspectable: its inputs are in run.duckdb.
  The processor's rows_out is what the writer read. Events: each view's ``step_started``
  (``read_in_place_by``; its reader's carries ``reads_in_place``), then every
  ``step_finished`` in order, each view's lasting until its reader finished. Failures: a
  query that does not bind fails the processor and skips the writer; when the write fails,
  each view is read in full, in order, and the first that cannot be read is the failed step
  (the steps after it fail with "its input, step ... failed"); if all can be read, the
  writer failed and the views are ``ok``. File writers are atomic and database writers
  transactional, so a failing query leaves the target as it was.

The first two shortcuts apply to file sources of at least $OSIRIS_INPLACE_MIN_BYTES bytes
(default 32 MiB; sources of unknown size, i.e. databases, always stream): below that, copying
is cheap and the copy is a snapshot that stays inspectable even if the file changes or
disappears. A processor view needs no such threshold: what it reads is in run.duckdb.

pyarrow is imported only where batches flow (streams, Arrow extracts, reader-fed writers):
loading it costs ~25 ms and ~40 MiB of RSS, and a run that stays inside DuckDB needs none of it.

``materialize="all"`` (``run_manifest(materialize="all")``, or ``OSIRIS_MATERIALIZE=all`` in the
environment, e.g. ``OSIRIS_MATERIALIZE=all oml-run build/``) turns the shortcuts off: every
extractor and processor output is then a table in run.duckdb, for inspection and debugging.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from osiris.runtime.connections import ResolvedConnection
from osiris.runtime.context import LocalStepContext, RunDatabase, counting_reader
from osiris.runtime.drivers.base import (
    DriverError,
    Extractor,
    Processor,
    RunDatabaseSink,
    RunDatabaseSource,
    StepResult,
    ViewProcessor,
    Writer,
)
from osiris.runtime.drivers.registry import load_driver
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.events import (
    STEP_FAILED,
    STEP_FINISHED,
    STEP_SKIPPED,
    STEP_STARTED,
    EventLog,
    RunLog,
)
from osiris.runtime.manifest import Plan, PlanStep
from osiris.runtime.rundir import RunPaths
from osiris.runtime.secrets import Redactor
from osiris.runtime.sql import quote_ident

if TYPE_CHECKING:
    import pyarrow as pa

StepStatus = Literal["ok", "failed", "skipped"]
MaterializeMode = Literal["auto", "all"]
MATERIALIZE_MODES: tuple[str, ...] = ("auto", "all")
MATERIALIZE_ENV = "OSIRIS_MATERIALIZE"
INPLACE_ENV = "OSIRIS_INPLACE_MIN_BYTES"
# File sources smaller than this are always copied into run.duckdb: copying is cheap there (no
# measurable gain from the shortcuts), and the copy is a snapshot that stays inspectable even
# if the file changes or disappears later.
INPLACE_MIN_BYTES = 32 * 2**20


def inplace_min_bytes(environ: Mapping[str, str]) -> int:
    """$OSIRIS_INPLACE_MIN_BYTES or 32 MiB: the smallest file source that is streamed to its
    writer or read in place as a view."""
    try:
        return max(0, int(environ.get(INPLACE_ENV, INPLACE_MIN_BYTES)))
    except ValueError:
        return INPLACE_MIN_BYTES


def materialize_mode(value: str | None, environ: Mapping[str, str]) -> MaterializeMode:
    """The materialisation mode: an explicit value, else $OSIRIS_MATERIALIZE, else "auto".
    Raises ValueError for anything else."""
    chosen = (value or environ.get(MATERIALIZE_ENV) or "auto").strip().lower()
    if chosen not in MATERIALIZE_MODES:
        raise ValueError(
            f"materialize mode {chosen!r} is not one of {', '.join(MATERIALIZE_MODES)}"
            f" (from {'the option' if value else MATERIALIZE_ENV})"
        )
    return cast(MaterializeMode, chosen)


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
    configuration: bool = False  # failed for a configuration reason (exit 5), e.g. credentials

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
        materialize: MaterializeMode = "auto",
        inplace_min_bytes: int = INPLACE_MIN_BYTES,
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
        self.materialize = materialize
        self.inplace_min_bytes = inplace_min_bytes
        self._rows_out: dict[str, int] = {}
        self.streams, self.views, self.processor_views = self._shortcuts()
        self.chains = self._chains()

    # ------------------------------------------------------------------ planning

    def _shortcuts(self) -> tuple[dict[str, PlanStep], frozenset[str], frozenset[str]]:
        """Which extractors stream into their writer, which are views over their files, and
        which processors are views read by their writer."""
        if self.materialize == "all":
            return {}, frozenset(), frozenset()
        consumers: dict[str, list[PlanStep]] = {s.id: [] for s in self.plan.steps}
        for step in self.plan.steps:
            for upstream in step.upstream:
                consumers.setdefault(upstream, []).append(step)
        streams: dict[str, PlanStep] = {}
        views: set[str] = set()
        processor_views: set[str] = set()
        for step in self.plan.steps:
            if step.role not in ("extractor", "processor") or len(consumers[step.id]) != 1:
                continue
            (consumer,) = consumers[step.id]
            driver = _driver_or_none(step.driver)
            if step.role == "processor":
                if (
                    consumer.role == "writer"
                    and consumer.upstream == (step.id,)
                    and isinstance(driver, ViewProcessor)
                ):
                    processor_views.add(step.id)
            elif consumer.role == "writer" and consumer.upstream == (step.id,):
                if isinstance(driver, Extractor) and isinstance(
                    _driver_or_none(consumer.driver), Writer
                ):
                    streams[step.id] = consumer
            elif consumer.role == "processor" and isinstance(driver, RunDatabaseSource):
                views.add(step.id)
        return streams, frozenset(views), frozenset(processor_views)

    def _chains(self) -> dict[str, tuple[PlanStep, ...]]:
        """Runs of steps executed together, keyed by their first step: views, each read only by
        the next step, ending in the one step whose query reads them all (module doc)."""
        by_upstream = {s.upstream: s for s in self.plan.steps if len(s.upstream) == 1}
        viewed = self.views | self.processor_views
        chains: dict[str, tuple[PlanStep, ...]] = {}
        claimed: set[str] = set()
        for step in self.plan.steps:
            if step.id in claimed:
                continue
            chain = [step]
            # a view read together with other inputs ends the chain: it is made on its own
            while chain[-1].id in viewed and (chain[-1].id,) in by_upstream:
                chain.append(by_upstream[(chain[-1].id,)])
            if len(chain) > 1:
                chains[step.id] = tuple(chain)
                claimed.update(s.id for s in chain)
        return chains

    # ------------------------------------------------------------------ scheduling

    def run(self) -> tuple[StepOutcome, ...]:
        outcomes: dict[str, StepOutcome] = {}
        pending = list(self.plan.steps)
        running: dict[Future[tuple[StepOutcome, ...]], PlanStep] = {}
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="osiris-step") as pool:
            while pending or running:
                for step in list(pending):
                    if step not in pending:  # claimed by a streamed pair below
                        continue
                    if step.id in outcomes:  # skipped because of an earlier failure
                        pending.remove(step)
                        continue
                    if len(running) >= self.max_parallel:
                        break
                    if all(outcomes.get(u, _NOT_DONE).status == "ok" for u in step.upstream):
                        pending.remove(step)
                        writer = self.streams.get(step.id)
                        chain = self.chains.get(step.id, ())
                        if writer is not None and writer in pending:
                            pending.remove(writer)
                            running[pool.submit(self._execute_stream, step, writer)] = step
                        elif chain and all(later in pending for later in chain[1:]):
                            for later in chain[1:]:
                                pending.remove(later)
                            running[pool.submit(self._execute_chain, chain)] = step
                        else:
                            running[pool.submit(self._execute_one, step)] = step
                if not running:
                    if pending:  # cannot happen for a verified plan; never spin
                        raise RuntimeError("no runnable step: the plan is not in topological order")
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    finished = future.result()
                    for outcome in finished:
                        outcomes[outcome.step_id] = outcome
                        self._rows_out[outcome.step_id] = outcome.rows_out
                    for outcome in finished:
                        if outcome.status == "failed":
                            self._skip_downstream(self.plan.step(outcome.step_id), outcomes)
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

    def _execute_one(self, step: PlanStep) -> tuple[StepOutcome, ...]:
        return (self._execute(step),)

    def _execute(self, step: PlanStep) -> StepOutcome:
        started = time.perf_counter()
        self._started(step)
        ctx = self._context(step)
        try:
            measured = self._run_role(step, ctx)
        except Exception as err:
            return self._failed(step, err, started, rows_in=ctx.rows_read)
        finally:
            ctx.close()
        return self._succeeded(step, measured, started)

    def _started(self, step: PlanStep, **fields: Any) -> None:
        self.events.emit(STEP_STARTED, step.id, driver=step.driver, role=step.role, **fields)
        note = "".join(f", {k} {v}" for k, v in fields.items())
        self.log.write(f"started ({step.role}, {step.driver}{note})", step.id)

    def _failed(
        self,
        step: PlanStep,
        err: BaseException,
        started: float,
        *,
        rows_in: int = 0,
        message: str | None = None,
    ) -> StepOutcome:
        duration = _ms_since(started)
        text = self.redactor.redact(message or describe_error(err))
        self.log.write(
            f"failed after {duration} ms: {text}\n" + "".join(traceback.format_exception(err)),
            step.id,
        )
        self.events.emit(
            STEP_FAILED,
            step.id,
            error=text,
            error_type=type(err).__name__,
            duration_ms=duration,
        )
        return StepOutcome(
            step.id,
            step.driver,
            step.role,
            "failed",
            rows_in=rows_in,
            duration_ms=duration,
            error=text,
            error_type=type(err).__name__,
            configuration=isinstance(err, ConfigurationError),
        )

    def _succeeded(
        self, step: PlanStep, measured: _Measured, started: float, *, ended: float | None = None
    ) -> StepOutcome:
        duration = _ms_since(started, ended)
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
            rows_in = self._upstream_rows(step)
            return _Measured(result.rows_in if rows_in is None else rows_in, rows_out, result.bytes)
        return self._write(step, driver, ctx)

    def _large_source(self, driver: Any, ctx: LocalStepContext) -> bool:
        """A file source of at least inplace_min_bytes, or a source of unknown size."""
        measure = getattr(driver, "source_bytes", None)
        return measure is None or int(measure(ctx)) >= self.inplace_min_bytes

    def _upstream_rows(self, step: PlanStep) -> int | None:
        """Rows of a step's input relations, from the upstream outcomes (no re-scan)."""
        total = 0
        for upstream in dict.fromkeys(step.upstream):
            if self.plan.step(upstream).role == "writer":
                continue  # an ordering dependency: no relation behind it
            if upstream not in self._rows_out:
                return None
            total += self._rows_out[upstream]
        return total

    def _extract(self, step: PlanStep, driver: Any, ctx: LocalStepContext) -> _Measured:
        cursor = ctx.run_db()
        table = quote_ident(step.id)
        query = driver.source_query(ctx) if isinstance(driver, RunDatabaseSource) else None
        if query:
            if step.id in self.views and self._large_source(driver, ctx):
                cursor.execute(f"CREATE VIEW {table} AS {driver.view_query(ctx, cursor)}")
            else:
                cursor.execute(f"CREATE TABLE {table} AS {query}")
            rows = self.database.row_count(step.id)
            ctx.progress(rows)
            return _Measured(rows, rows, 0)
        if not isinstance(driver, Extractor):
            raise DriverError(f"driver {step.driver} cannot run as an extractor")
        import pyarrow as pa

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

    # ------------------------------------------------------------------ extract -> write

    def _execute_stream(self, source: PlanStep, sink: PlanStep) -> tuple[StepOutcome, ...]:
        """Run an extractor and its only consumer, a writer, as one stream (see module doc)."""
        if not self._worth_streaming(source, sink):
            first = self._execute(source)
            return (first,) if first.status != "ok" else (first, self._execute(sink))
        import pyarrow as pa

        started = time.perf_counter()
        self._started(source, streamed_to=sink.id)
        src_ctx = self._context(source)
        try:
            extractor: Any = load_driver(source.driver)
            reader = extractor.extract(src_ctx)
            if not isinstance(reader, pa.RecordBatchReader):
                raise DriverError(
                    f"driver {source.driver} did not return an Arrow RecordBatchReader"
                )
        except Exception as err:  # nothing streamed: the writer is skipped, as when materialising
            src_ctx.close()
            return (self._failed(source, err, started),)
        sink_started = time.perf_counter()
        self._started(sink, streamed_from=source.id)
        sink_ctx = self._context(sink)
        tap = _StreamTap(reader, (src_ctx.progress, sink_ctx.progress))
        result: StepResult | None = None
        write_error: Exception | None = None
        try:
            writer: Any = load_driver(sink.driver)
            result = writer.write(sink_ctx, tap.reader())
        except Exception as err:
            write_error = err
        finally:
            tap.close()
            src_ctx.close()
            sink_ctx.close()
        if tap.error is not None:
            source_outcome = self._failed(source, tap.error, started, rows_in=tap.rows)
            cause = write_error or tap.error
            message = f"input stream from step '{source.id}' failed: {source_outcome.error}; " + (
                "the write was rolled back"
                if write_error is not None
                else "the writer did not report the failure; the target may hold a partial load"
            )
            sink_outcome = self._failed(
                sink, cause, sink_started, rows_in=tap.rows, message=message
            )
            return source_outcome, sink_outcome
        streamed = _Measured(tap.rows, tap.rows, tap.bytes)
        source_outcome = self._succeeded(source, streamed, started, ended=tap.ended)
        if write_error is not None or result is None:
            error = write_error or DriverError(f"driver {sink.driver} returned no result")
            return source_outcome, self._failed(sink, error, sink_started, rows_in=tap.rows)
        written = _Measured(tap.rows, result.rows_out, result.bytes or tap.bytes)
        return source_outcome, self._succeeded(sink, written, sink_started)

    # ------------------------------------------------------------------ views -> their reader

    def _execute_chain(self, chain: tuple[PlanStep, ...]) -> tuple[StepOutcome, ...]:
        """Steps whose outputs are views (a file read in place, a processor's query), each read
        only by the next, run with the last step, whose one query reads them all (module doc)."""
        done: list[StepOutcome] = []
        source = self._inplace_source(chain[0]) if chain[0].role == "extractor" else None
        if chain[0].role == "extractor" and source is None:  # small or unreadable: a table
            first = self._execute(chain[0])
            if first.status != "ok":
                return (first,)
            done.append(first)
            chain = chain[1:]
        if len(chain) == 1:
            return (*done, self._execute(chain[0]))
        *views, last = chain
        rows_in = done[0].rows_out if done else None  # into the first view
        started: dict[str, float] = {}
        for index, step in enumerate(views):
            started[step.id] = time.perf_counter()
            fields = {"read_in_place_by": chain[index + 1].id}
            if index:
                fields["reads_in_place"] = views[index - 1].id
            self._started(step, **fields)
            ctx = self._context(step)
            try:
                self._define_view(step, ctx)
            except Exception as err:  # its reader never starts: it is skipped by the caller
                return (
                    *done,
                    *self._views_before(views[:index], started, rows_in),
                    self._failed(step, err, started[step.id]),
                )
            finally:
                ctx.close()
        last_started = time.perf_counter()
        self._started(last, reads_in_place=views[-1].id)
        ctx = self._context(last)
        ctx.profile_main_query = True
        error: Exception | None = None
        measured = _Measured(0, 0, 0)
        try:
            measured = self._run_role(last, ctx)
        except Exception as err:
            error = err
        finally:
            ctx.close()
        ended = time.perf_counter()
        rows: dict[str, int] = {}
        for index, step in enumerate(views):
            counted: int | None = None
            if error is None and step.role == "processor":
                counted = measured.rows_in  # what its reader read
            elif error is None and source is not None:
                counted = scanned_rows(ctx.main_query_profile, *source)
            if counted is None:
                try:
                    # After a failure, read every column: the first view that cannot be read
                    # is the step that failed, as it would have when copying.
                    counted = self._count_view(step.id, every_column=error is not None)
                except Exception as err:
                    outcomes = self._view_outcomes(views[:index], rows, started, ended, rows_in)
                    failed = self._failed(step, err, started[step.id])
                    cause = f"its input, step '{step.id}', failed: {failed.error}"
                    after = [
                        self._failed(later, err, started[later.id], message=cause)
                        for later in views[index + 1 :]
                    ]
                    return (
                        *done,
                        *outcomes,
                        failed,
                        *after,
                        self._failed(last, error or err, last_started, message=cause),
                    )
                ended = time.perf_counter()
            rows[step.id] = counted
        outcomes = self._view_outcomes(views, rows, started, ended, rows_in)
        if error is not None:
            return (*done, *outcomes, self._failed(last, error, last_started))
        measured = _Measured(rows[views[-1].id], measured.rows_out, measured.bytes)
        return (*done, *outcomes, self._succeeded(last, measured, last_started))

    def _views_before(
        self, views: list[PlanStep], started: Mapping[str, float], rows_in: int | None
    ) -> list[StepOutcome]:
        """Outcomes of views made before a later one in their chain failed to bind: each is read
        in full once (a file that cannot be read fails its extract, as copying would)."""
        rows: dict[str, int] = {}
        for index, step in enumerate(views):
            try:
                rows[step.id] = self._count_view(step.id, every_column=True)
            except Exception as err:
                done = self._view_outcomes(
                    views[:index], rows, started, time.perf_counter(), rows_in
                )
                return [*done, self._failed(step, err, started[step.id])]
        return self._view_outcomes(views, rows, started, time.perf_counter(), rows_in)

    def _inplace_source(self, step: PlanStep) -> tuple[list[str], int] | None:
        """(files, bytes) of a file extract large enough to read in place, else None."""
        ctx = self._context(step)
        try:
            driver: Any = load_driver(step.driver)
            query = driver.source_query(ctx) if isinstance(driver, RunDatabaseSource) else None
            if not query or not self._large_source(driver, ctx):
                return None
            return driver.source_files(ctx), int(driver.source_bytes(ctx))
        except Exception:  # the extractor step reports it, the ordinary way
            return None
        finally:
            ctx.close()

    def _define_view(self, step: PlanStep, ctx: LocalStepContext) -> None:
        driver: Any = load_driver(step.driver)
        if step.role == "extractor":  # a file large enough to read in place
            con = ctx.run_db()
            con.execute(f"CREATE VIEW {quote_ident(step.id)} AS {driver.view_query(ctx, con)}")
            return
        if not isinstance(driver, ViewProcessor):
            raise DriverError(f"driver {step.driver} cannot define a view")
        driver.define_view(ctx)

    def _view_outcomes(
        self,
        views: list[PlanStep],
        rows: Mapping[str, int],
        started: Mapping[str, float],
        ended: float,
        rows_in: int | None,
    ) -> list[StepOutcome]:
        """Outcomes of views read by their chain's last step: each ran as long as that read.
        rows_in: rows into the first view when known (else from the upstream outcomes)."""
        outcomes = []
        for step in views:
            count = rows[step.id]
            into = count if step.role == "extractor" else rows_in
            if into is None:
                into = self._upstream_rows(step) or 0
            measured = _Measured(into, count, 0)
            if self.on_progress is not None:
                self.on_progress(step.id, count)
            outcomes.append(self._succeeded(step, measured, started[step.id], ended=ended))
            rows_in = count
        return outcomes

    def _count_view(self, name: str, *, every_column: bool) -> int:
        if not every_column:
            return self.database.row_count(name)
        cursor = self.database.new_cursor()
        try:
            found = cursor.execute(
                f"SELECT count(*), count(COLUMNS(*)) FROM {quote_ident(name)}"
            ).fetchone()
        finally:
            cursor.close()
        return int(found[0]) if found else 0

    def _worth_streaming(self, source: PlanStep, sink: PlanStep) -> bool:
        source_ctx, sink_ctx = self._context(source), self._context(sink)
        try:
            if _same_duckdb_file(source_ctx, sink_ctx, source, sink):
                return False
            return self._large_source(load_driver(source.driver), source_ctx)
        except Exception:  # e.g. a missing file: let the extractor report it
            return False
        finally:
            source_ctx.close()
            sink_ctx.close()


class _StreamTap:
    """Wraps an extractor's reader for its writer: counts rows and bytes, reports progress to
    both steps, and records an error raised by the extractor (as opposed to the writer)."""

    def __init__(
        self, source: pa.RecordBatchReader, progress: tuple[Callable[[int], None], ...]
    ) -> None:
        self.source = source
        self.progress = progress
        self.rows = 0
        self.bytes = 0
        self.error: BaseException | None = None
        self.ended: float | None = None
        self._batches: Generator[pa.RecordBatch, None, None] | None = None

    def reader(self) -> pa.RecordBatchReader:
        import pyarrow as pa

        self._batches = self._iterate()
        return pa.RecordBatchReader.from_batches(self.source.schema, self._batches)

    def _iterate(self) -> Generator[pa.RecordBatch, None, None]:
        batches = iter(self.source)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                self.ended = time.perf_counter()
                return
            except BaseException as err:
                self.error = err
                self.ended = time.perf_counter()
                raise
            self.rows += batch.num_rows
            self.bytes += batch.nbytes
            for report in self.progress:
                report(batch.num_rows)
            yield batch

    def close(self) -> None:
        """Release the extractor's resources even if the writer stopped reading early."""
        if self._batches is not None:
            with contextlib.suppress(Exception):
                self._batches.close()
        with contextlib.suppress(Exception):
            self.source.close()


def scanned_rows(profile: str | None, files: list[str], size: int) -> int | None:
    """Rows of a CSV source (one path or glob, as configured) read by a query, from DuckDB's
    JSON profile of that query, or None when the profile does not prove it: every READ_CSV scan
    in the plan must be of exactly this source and have read all of its bytes (so a LIMIT that
    stopped early, or compressed input, does not qualify), and all of them must agree."""
    if not profile or len(files) != 1:
        return None
    try:
        tree = json.loads(profile)
    except ValueError:
        return None
    scans: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TABLE_SCAN":
                scans.append(node)
            for child in node.get("children") or []:
                walk(child)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree.get("operator") if isinstance(tree, dict) else None)
    counts = set()
    for scan in scans:
        info = scan.get("extra_info") or {}
        function = info.get("Function")
        if function is None and scan.get("bytes_scanned"):
            return None  # a file scan we cannot identify (e.g. a streaming LIMIT)
        if function != "READ_CSV":
            continue
        if info.get("Filename(s)") != files[0] or scan.get("bytes_scanned") != size:
            return None
        counts.add(scan.get("rows_scanned"))
    if len(counts) != 1:
        return None
    (rows,) = counts
    return rows if isinstance(rows, int) and rows >= 0 else None


def _driver_or_none(driver_id: str) -> Any:
    try:
        return load_driver(driver_id)
    except Exception:  # unknown or unimportable: the step itself will report it
        return None


def _same_duckdb_file(
    source_ctx: LocalStepContext, sink_ctx: LocalStepContext, source: PlanStep, sink: PlanStep
) -> bool:
    """True for a duckdb.extractor -> duckdb.writer pair on one file (cannot be open twice)."""
    if not (source.driver.startswith("duckdb.") and sink.driver.startswith("duckdb.")):
        return False
    from osiris.runtime.drivers.duckdb_driver import database_path

    try:
        return database_path(source_ctx).resolve() == database_path(sink_ctx).resolve()
    except Exception:
        return True  # cannot tell: take the safe, materialising path


_NOT_DONE = StepOutcome("", "", "", "skipped")


def _ms_since(started: float, ended: float | None = None) -> int:
    return round(((ended or time.perf_counter()) - started) * 1000)
