"""One step as one task on another machine (a Dask worker): its job, its result, and the run.

The worker gets the step, its connection's resolved fields (in memory only, as a partition's job)
and its upstream steps' outputs as Arrow tables. It stores those in a private DuckDB database under
the upstream step ids and runs the step with the local engine's role code (StepRunner.run_role),
so a processor's SQL sees its inputs exactly as it would in run.duckdb. An extractor's or
processor's output goes back as an Arrow table, which stays on the cluster (the client keeps a
reference); the log lines, counts and any incremental state go back to the client, which
reports them."""

from __future__ import annotations

import dataclasses
import pickle
import secrets
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osiris.runtime.cancel import CancelToken
from osiris.runtime.context import RunDatabase, StepContexts
from osiris.runtime.contract.scratch import ScratchDir
from osiris.runtime.debris import Ledger, run_tag
from osiris.runtime.drivers.base import DriverError, Part
from osiris.runtime.drivers.registry import StepDrivers
from osiris.runtime.manifest import ManifestStep
from osiris.runtime.outcomes import Measured
from osiris.runtime.records.state import CarriedState, CursorState, StateError
from osiris.runtime.sql import quote_ident, quote_literal
from osiris.runtime.step_runner import StepRunner

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True, slots=True)
class StepJob:
    """Everything one step needs on a worker, picklable. The connection's fields (secrets
    included) travel in memory only: never in a task's key, never written to disk."""

    step: ManifestStep
    upstream: tuple[ManifestStep, ...]  # the steps it reads (their roles count its rows in)
    connection: Mapping[str, Any] | None
    project_dir: str  # the client's: relative paths resolve against it (a shared filesystem)
    artifacts_dir: str  # the client's runs/<id>/artifacts/<step>, used if the worker sees it
    run_id: str  # names the task's scratch directory; its tag is in the names of what it stages
    state: CursorState | StateError | None = None  # what the last successful run left
    part: Part | None = None  # a writer stages its load here; the client publishes it


@dataclass(frozen=True, slots=True)
class StepTaskResult:
    """What a step task hands back. table stays on the cluster: the client asks for the
    result without it (without_table) and passes the whole one to downstream tasks."""

    worker: str
    seconds: float
    logs: tuple[str, ...]
    measured: Measured | None = None
    table: pa.Table | None = None  # an extractor's or processor's output
    schema: pa.Schema | None = None  # a staged part's columns, for finish_parts
    state: CursorState | None = None  # held by the step: committed only if the run succeeds
    error: BaseException | None = None

    def without_table(self) -> StepTaskResult:
        return dataclasses.replace(self, table=None)


def portable_step(step: ManifestStep) -> ManifestStep:
    """The step with plain dicts in place of read-only mappings (which do not pickle)."""
    return dataclasses.replace(
        step,
        inputs=dict(step.inputs),
        config=dict(step.config),
        partition=dict(step.partition) if step.partition is not None else None,
    )


def run_step_task(
    job: StepJob,
    inputs: Mapping[str, pa.Table],
    *,
    worker: str = "local",
    cancel: CancelToken | None = None,
    on_rows: Callable[[int], None] | None = None,
    ledger: Callable[[str, Path], Ledger] | None = None,
) -> StepTaskResult:
    """Run one step in a scratch directory of its own, `$TMPDIR/osiris-<run_id>-step-<id>-<hex>/`
    (locked while the task runs, swept on that machine if its process dies; removed before
    returning); never raises for the step's own failure: the result carries the error."""
    token = cancel or CancelToken()
    started = time.perf_counter()
    logs: list[str] = []
    step = job.step
    states = CarriedState(job.state)
    with ScratchDir(f"{job.run_id}-step-{step.id}-{secrets.token_hex(3)}") as scratch:
        private = scratch.path
        artifacts = Path(job.artifacts_dir)
        if not artifacts.is_dir():  # not the client's filesystem: kept only for the task
            artifacts = private / "artifacts"
            artifacts.mkdir()
        # in memory, spilling into the private dir past the memory limit: the tables live
        # only as long as the task, so writing them to a file would only cost time
        database = RunDatabase(Path(":memory:"))
        database.thread_cursor().execute(f"SET temp_directory = {quote_literal(str(private))}")
        contexts = StepContexts(
            database,
            {step.connection: job.connection} if step.connection and job.connection else {},
            Path(job.project_dir),
            lambda _step_id: artifacts,
            on_progress=(lambda _step_id, rows: on_rows(rows)) if on_rows else None,
            on_log=lambda _step_id, message: logs.append(message),
            debris=ledger(job.run_id, private) if ledger else None,
            cancel=token,
            states=states,
            scratch_dir=private,
            run_tag=run_tag(job.run_id),
        )
        runner = StepRunner(
            (step, *job.upstream), drivers=StepDrivers({step.id: step.driver}), contexts=contexts
        )

        def result(**fields: Any) -> StepTaskResult:
            seconds = time.perf_counter() - started
            return StepTaskResult(worker, seconds, tuple(logs), state=states.held, **fields)

        try:
            with token.on_cancel(database.interrupt):
                for name, table in inputs.items():
                    database.store(name, table.to_reader())
                    runner.record_rows(name, table.num_rows)
                ctx = runner.context(step)
                try:
                    if job.part is not None:
                        reader = ctx.input_reader()
                        rows = runner.driver(step).stage_part(ctx, reader, job.part)
                        measured = Measured(ctx.rows_read, rows, ctx.bytes_read)
                        return result(measured=measured, schema=reader.schema)
                    measured = runner.run_role(step, ctx)
                    if step.role == "writer":
                        return result(measured=measured)
                    cursor = database.new_cursor()
                    output = cursor.sql(f"SELECT * FROM {quote_ident(step.id)}").to_arrow_table()
                    return result(measured=measured, table=output)
                finally:
                    ctx.close()
        except Exception as err:
            return result(error=_portable(err, worker))
        finally:
            database.close(discard=True)


def _portable(err: Exception, worker: str) -> BaseException:
    """err with the worker's traceback as a note (the client logs it), or - if it cannot
    travel to the client - a DriverError with its text."""
    err.add_note(f"(on worker {worker})\n" + "".join(traceback.format_exception(err)).rstrip())
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return DriverError(f"{type(err).__name__}: {err}")
    return err
