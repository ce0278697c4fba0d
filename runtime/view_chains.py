"""Running a view chain unit in process: views over files and queries, read by one last query."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from osiris.runtime.duckdb_settings import scanned_rows
from osiris.runtime.manifest import ManifestStep
from osiris.runtime.outcomes import Measured, StepOutcome
from osiris.runtime.planner import ViewChainUnit
from osiris.runtime.step_runner import StepRunner


def run_view_chain(runner: StepRunner, unit: ViewChainUnit) -> tuple[StepOutcome, ...]:
    """Every view's outcome, then the reader's; failure attribution in docs/runtime.md."""
    views, last, report = unit.views, unit.reader, runner.reporter
    started: dict[str, float] = {}
    for index, step in enumerate(views):
        started[step.id] = time.perf_counter()
        fields = {"read_in_place_by": unit.steps[index + 1].id}
        if index:
            fields["reads_in_place"] = views[index - 1].id
        report.started(step, **fields)
        ctx = runner.context(step)
        try:
            runner.driver(step).define_view(ctx)
        except Exception as err:  # its reader never starts: it is skipped by the executor
            return (
                *_views_before(runner, views[:index], started),
                report.failed(step, err, started[step.id]),
            )
        finally:
            ctx.close()
    last_started = time.perf_counter()
    report.started(last, reads_in_place=views[-1].id)
    ctx = runner.context(last)
    ctx.profile_main_query = True
    error: Exception | None = None
    measured = Measured(0, 0, 0)
    try:
        measured = runner.run_role(last, ctx)
    except Exception as err:
        error = err
    finally:
        ctx.close()
    ended = time.perf_counter()
    if error is not None and report.cancel.cancelled:  # no view is read again to blame one
        return (
            *(report.cancelled(step, started[step.id]) for step in views),
            report.cancelled(last, last_started, err=error),
        )
    rows: dict[str, int] = {}
    for index, step in enumerate(views):
        counted: int | None = None
        if error is None and step.role == "processor":
            counted = measured.rows_in  # what its reader read
        elif error is None and unit.source is not None:
            counted = scanned_rows(ctx.main_query_profile, unit.source.paths, unit.source.bytes)
        if counted is None:
            try:
                # After a failure, read every column: the first view that cannot be read
                # is the step that failed, as it would have when copying.
                counted = runner.database.row_count(step.id, every_column=error is not None)
            except Exception as err:
                outcomes = _view_outcomes(runner, views[:index], rows, started, ended)
                failed = report.failed(step, err, started[step.id])
                cause = f"its input, step '{step.id}', failed: {failed.error}"
                after = [
                    report.failed(later, err, started[later.id], message=cause)
                    for later in views[index + 1 :]
                ]
                return (
                    *outcomes,
                    failed,
                    *after,
                    report.failed(last, error or err, last_started, message=cause),
                )
            ended = time.perf_counter()
        rows[step.id] = counted
    outcomes = _view_outcomes(runner, views, rows, started, ended)
    if error is not None:
        return (*outcomes, report.failed(last, error, last_started))
    measured = Measured(rows[views[-1].id], measured.rows_out, measured.bytes)
    return (*outcomes, report.succeeded(last, measured, last_started))


def _views_before(
    runner: StepRunner, views: Sequence[ManifestStep], started: Mapping[str, float]
) -> list[StepOutcome]:
    """Outcomes of views made before a later one in their chain failed to bind: each is read
    in full once (a file that cannot be read fails its extract, as copying would)."""
    rows: dict[str, int] = {}
    for index, step in enumerate(views):
        try:
            rows[step.id] = runner.database.row_count(step.id, every_column=True)
        except Exception as err:
            done = _view_outcomes(runner, views[:index], rows, started, time.perf_counter())
            return [*done, runner.reporter.failed(step, err, started[step.id])]
    return _view_outcomes(runner, views, rows, started, time.perf_counter())


def _view_outcomes(
    runner: StepRunner,
    views: Sequence[ManifestStep],
    rows: Mapping[str, int],
    started: Mapping[str, float],
    ended: float,
) -> list[StepOutcome]:
    """Outcomes of views read by their chain's last step: each ran as long as that read."""
    outcomes = []
    rows_in: int | None = None  # into the next view: what the one before it produced
    for step in views:
        count = rows[step.id]
        into = count if step.role == "extractor" else rows_in
        if into is None:
            into = runner.upstream_rows(step) or 0
        if runner.contexts.on_progress is not None:
            runner.contexts.on_progress(step.id, count)
        measured = Measured(into, count, 0)
        outcomes.append(runner.reporter.succeeded(step, measured, started[step.id], ended=ended))
        rows_in = count
    return outcomes
