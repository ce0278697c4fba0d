"""Running a stream unit in process: an extractor's Arrow batches straight into its writer."""

from __future__ import annotations

import time

from osiris.runtime.drivers.base import DriverError, StepResult
from osiris.runtime.drivers.replay import as_stream, consume_with_replay
from osiris.runtime.outcomes import Measured, StepOutcome
from osiris.runtime.planner import StreamUnit
from osiris.runtime.step_runner import StepRunner
from osiris.runtime.tap import StreamTap


def run_stream(runner: StepRunner, unit: StreamUnit) -> tuple[StepOutcome, ...]:
    """Both steps' outcomes, the extractor's first; failure attribution in docs/runtime.md."""
    source, sink, report = unit.source, unit.sink, runner.reporter
    started = time.perf_counter()
    report.started(source, streamed_to=sink.id)
    src_ctx = runner.context(source)
    try:
        stream = as_stream(runner.driver(source).extract(src_ctx), source.driver)
    except Exception as err:  # nothing streamed: the writer is skipped, as when materialising
        src_ctx.close()
        return (report.failed(source, err, started),)
    sink_started = time.perf_counter()
    report.started(sink, streamed_from=source.id)
    sink_ctx = runner.context(sink)
    tap = StreamTap(stream, (src_ctx.progress, sink_ctx.progress), sink_ctx.raise_if_cancelled)
    result: StepResult | None = None
    write_error: Exception | None = None
    try:
        result = consume_with_replay(
            tap, lambda data: runner.write(sink, runner.driver(sink), sink_ctx, data)
        )
    except Exception as err:
        write_error = err
    finally:
        tap.close()
        src_ctx.close()
        sink_ctx.close()
    if write_error is not None and report.cancel.cancelled:
        delivered = tap.ended is not None and tap.error is None
        source_outcome = (
            report.succeeded(
                source, Measured(tap.rows, tap.rows, tap.bytes), started, ended=tap.ended
            )
            if delivered
            else report.cancelled(source, started, rows_in=tap.rows, err=tap.error)
        )
        sink_outcome = report.cancelled(sink, sink_started, rows_in=tap.rows, err=write_error)
        return source_outcome, sink_outcome
    if tap.error is not None:
        source_outcome = report.failed(source, tap.error, started, rows_in=tap.rows)
        cause = write_error or tap.error
        message = f"input stream from step '{source.id}' failed: {source_outcome.error}; " + (
            "the write was rolled back"
            if write_error is not None
            else "the writer did not report the failure; the target may hold a partial load"
        )
        sink_outcome = report.failed(sink, cause, sink_started, rows_in=tap.rows, message=message)
        return source_outcome, sink_outcome
    streamed = Measured(tap.rows, tap.rows, tap.bytes)
    source_outcome = report.succeeded(source, streamed, started, ended=tap.ended)
    if write_error is not None or result is None:
        error = write_error or DriverError(f"driver {sink.driver} returned no result")
        return source_outcome, report.failed(sink, error, sink_started, rows_in=tap.rows)
    written = Measured(tap.rows, result.rows_out, result.bytes or tap.bytes)
    return source_outcome, report.succeeded(sink, written, sink_started)
