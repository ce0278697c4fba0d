"""The dask engine: every unit of the plan runs as tasks on a `distributed` cluster.

A partitioned unit is one task per partition; every other step is one task of its own. A task
receives its job (drivers, configs, the connections' resolved fields) as an argument, in memory
only: nothing secret is in a task's key. The data flows from the source to the target on the
workers (a step's output table from its worker to the next step's); only counts, log lines and
states come back to the client. A task's temp files live in a scratch directory its worker
process locks (runtime/debris.PartScratch, runtime/step_tasks.py): each task first sweeps those
of dead processes on its machine, as a run does when it starts. A task whose client went away
(its future released) stops as if cancelled, so a killed client leaves no task creating tables
after the next run's sweep."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osiris.runtime.cancel import CancelToken
from osiris.runtime.context import LocalStepContext
from osiris.runtime.contract.scratch import ScratchDir, sweep_scratch
from osiris.runtime.debris import Ledger, run_tag
from osiris.runtime.drivers.base import DriverError, Part, track_parts
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.events import STEP_TASK_FINISHED
from osiris.runtime.executor import Cluster, PartitionRunner
from osiris.runtime.manifest import ManifestStep
from osiris.runtime.outcomes import Measured
from osiris.runtime.partitioned import PartJob, PartMap, PartResult, resolved_fields, run_part
from osiris.runtime.records.state import CursorState, StateError
from osiris.runtime.step_runner import StepRunner, StepWork
from osiris.runtime.step_tasks import StepJob, StepTaskResult, portable_step, run_step_task

CANCEL_POLL_SECONDS = 0.5
PROGRESS_SECONDS = 0.5  # at most one progress message per task this often
DEFAULT_LOCAL_WORKERS = 2


TRACK_TIMEOUT_SECONDS = 60  # the client answers at once; a silent client is gone


class _ClientLedger:
    """A step task's view of the client's run ledger: track() asks the client to list the
    thing and waits for its entry, so it is listed (on the client's disk) before it exists;
    a worker that dies then leaves it to the client's run, or the next run's sweep."""

    def __init__(self, queue: Any, replies: str, run_id: str, scratch_dir: Path) -> None:
        self.queue = queue
        self.replies = replies
        self.run_id = run_id
        self.tag = run_tag(run_id)
        self.scratch_dir = scratch_dir

    def track(self, kind: str, **fields: str | None) -> int:
        from distributed import Variable

        request = uuid.uuid4().hex
        reply = Variable(f"{self.replies}-{request}")
        self.queue.put(("track", request, kind, fields), timeout=TRACK_TIMEOUT_SECONDS)
        try:
            entry = reply.get(timeout=TRACK_TIMEOUT_SECONDS)
        except TimeoutError:
            raise DriverError(f"the client did not list the {kind} in the run's ledger") from None
        finally:
            with contextlib.suppress(Exception):
                reply.delete()
        if isinstance(entry, str):  # the client could not list it: say why, make nothing
            raise DriverError(entry)
        return int(entry)

    def untrack(self, entry: int) -> None:
        self.queue.put(("untrack", entry), timeout=TRACK_TIMEOUT_SECONDS)


@dataclass(frozen=True, slots=True)
class _TaskChannel:
    token: CancelToken
    on_rows: Callable[[int], None]
    worker: str
    queue: Any  # the client's message queue (rows, ledger requests)
    replies: str  # the name prefix of the client's answers to ledger requests

    def ledger(self, run_id: str, scratch_dir: Path) -> _ClientLedger:
        return _ClientLedger(self.queue, self.replies, run_id, scratch_dir)


@contextlib.contextmanager
def _task_channel(cancel_event: str, messages: str, progress_key: object) -> Iterator[_TaskChannel]:
    """In a task, after sweeping dead workers' scratch directories on this machine: a token
    cancelled once the client sets the cancel event or is gone, a progress callback that sends
    the task's running row count (keyed) to the client now and then, the worker's address,
    and the client's ledger (for step tasks)."""
    from distributed import Event, Queue, get_worker

    worker = get_worker()
    key = worker.get_current_task()
    sweep_scratch()  # dead workers' task scratch directories on this machine
    token = CancelToken()
    done = threading.Event()
    event = Event(cancel_event)
    queue = Queue(messages)
    sent = [0.0]

    def on_rows(rows: int) -> None:
        now = time.monotonic()
        if now - sent[0] >= PROGRESS_SECONDS:
            sent[0] = now
            with contextlib.suppress(Exception):  # progress is a courtesy: never fail on it
                queue.put(("rows", progress_key, rows), timeout=1)

    def abandoned() -> bool:
        """The scheduler released the task: its client was closed or died."""
        task = worker.state.tasks.get(key)
        return task is None or task.state == "cancelled"

    def watch() -> None:
        while not done.wait(CANCEL_POLL_SECONDS):
            with contextlib.suppress(Exception):
                if abandoned() or event.is_set():
                    token.cancel()
                    return

    watcher = threading.Thread(target=watch, name="osiris-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield _TaskChannel(token, on_rows, worker.address, queue, f"{messages}-reply")
    finally:
        done.set()


@contextlib.contextmanager
def _channel(
    client: Any,
    cancel: CancelToken,
    on_rows: Callable[[Any, int], None],
    ledger: Ledger | None = None,
) -> Iterator[tuple[str, str, str]]:
    """On the client, while tasks run: (tag, cancel event, message queue) for _task_channel.
    The run's cancellation sets the event; the tasks' progress reaches on_rows(key, rows), and
    their ledger requests the run's ledger (answered at once: the task waits)."""
    from distributed import Event, Queue, Variable

    tag = uuid.uuid4().hex[:12]
    name, messages = f"osiris-cancel-{tag}", f"osiris-messages-{tag}"
    event = Event(name, client=client)
    queue = Queue(messages, client=client)
    stop = threading.Event()

    def handle(message: tuple[Any, ...]) -> bool:
        """False once the client's own end-of-tasks mark arrives (after all they sent)."""
        kind, *rest = message
        if kind == "end":
            return False
        if kind == "rows":
            on_rows(rest[0], rest[1])
        elif kind == "track":
            request, what, fields = rest
            try:
                if ledger is None:
                    raise DriverError("this run keeps no ledger")
                answer: int | str = ledger.track(what, **fields)
            except Exception as err:  # the task raises it: nothing is made
                answer = str(err) or type(err).__name__
            Variable(f"{messages}-reply-{request}", client=client).set(answer)
        elif kind == "untrack" and ledger is not None:
            ledger.untrack(rest[0])
        return True

    def drain() -> None:
        while True:
            try:  # waits for the next message: a ledger request is answered at once
                if not handle(queue.get(timeout=PROGRESS_SECONDS)):
                    return
            except TimeoutError:
                continue
            except Exception:  # the cluster went away: the tasks' results will say
                if stop.wait(PROGRESS_SECONDS):
                    return

    reader = threading.Thread(target=drain, name="osiris-dask-messages", daemon=True)
    reader.start()
    try:
        with cancel.on_cancel(event.set):
            yield tag, name, messages
    finally:
        stop.set()
        with contextlib.suppress(Exception):  # behind everything the tasks sent
            queue.put(("end",), timeout=5)
        reader.join(timeout=10)


def _remote_part(job: PartJob, cancel_event: str, messages: str) -> PartResult:
    """The task: one partition on a worker (its client named and listed its part)."""
    with _task_channel(cancel_event, messages, job.index) as channel:
        return run_part(job, worker=channel.worker, cancel=channel.token, on_rows=channel.on_rows)


def _cluster_map(client: Any) -> PartitionRunner:
    from distributed import as_completed

    def make(runner: StepRunner, on_rows: Callable[[int, int], None]) -> PartMap:
        def run(jobs: Sequence[PartJob]) -> list[PartResult]:
            results: list[PartResult] = []
            with _channel(client, runner.reporter.cancel, on_rows) as (tag, name, progress):
                futures = {
                    client.submit(
                        _remote_part,
                        job,
                        name,
                        progress,
                        key=f"osiris-part-{tag}-{job.index}",
                        pure=False,
                    ): job
                    for job in jobs
                }
                for future in as_completed(futures):
                    job = futures[future]
                    try:
                        result = future.result()
                    except Exception as err:  # the worker died or the task could not run
                        result = PartResult(job.index, 0, 0, 0.0, "?", error=f"task failed: {err}")
                    on_rows(result.index, result.rows)
                    results.append(result)
            return results

        return run

    return make


def _remote_step(
    job: StepJob, inputs: Mapping[str, StepTaskResult], cancel_event: str, progress: str
) -> StepTaskResult:
    """The task: one step on a worker, its inputs the upstream tasks' results (moved here by
    Dask from wherever they ran)."""
    tables = {name: found.table for name, found in inputs.items() if found.table is not None}
    with _task_channel(cancel_event, progress, job.step.id) as channel:
        return run_step_task(
            job,
            tables,
            worker=channel.worker,
            cancel=channel.token,
            on_rows=channel.on_rows,
            ledger=channel.ledger,
        )


def _without_table(result: StepTaskResult) -> StepTaskResult:
    return result.without_table()


class _ClusterSteps:
    """Steps as tasks. An extractor's or processor's output stays on the worker that made it;
    the client keeps its Future (per step id) and hands it to the downstream tasks, so Dask
    moves the table worker to worker and this process never holds the rows."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.outputs: dict[str, Any] = {}  # step id -> Future of its StepTaskResult
        self.readers: dict[str, int] = {}  # step id -> its readers that have not run yet
        self.lock = threading.Lock()

    def work(self, runner: StepRunner) -> StepWork:
        for step in runner.steps.values():
            for upstream in step.upstream:
                self.readers[upstream] = self.readers.get(upstream, 0) + 1
        return lambda step, ctx: self._run(runner, step, ctx)

    def _run(self, runner: StepRunner, step: ManifestStep, ctx: LocalStepContext) -> Measured:
        try:
            return self._run_step(runner, step, ctx)
        finally:
            self._release_inputs(step)

    def _release_inputs(self, step: ManifestStep) -> None:
        """Once its last reader has run, a table is dropped from the cluster's memory."""
        with self.lock:
            for upstream in step.upstream:
                self.readers[upstream] -= 1
                if not self.readers[upstream]:
                    self.outputs.pop(upstream, None)

    def _run_step(self, runner: StepRunner, step: ManifestStep, ctx: LocalStepContext) -> Measured:
        driver = runner.driver(step)
        stages = step.role == "writer" and bool(driver.abilities.partitioned_sink)
        if step.role == "writer" and ctx.defer_publish and not stages:
            # --atomic: a worker cannot hand back a load to publish later; it runs here
            ctx.log("runs in the client: with --atomic its target is published at the end")
            self._fetch_inputs(runner, step)
            return runner.run_role(step, ctx)
        if not stages:
            return self._submit(runner, step, ctx).measured or Measured(0, 0, 0)
        # stage on the worker, publish from here: --atomic and one transaction, as partitions
        parts = driver.part_tables(ctx, 1)
        entries = track_parts(ctx, parts)
        staged = self._submit(runner, step, ctx, parts[0])
        assert staged.measured is not None and staged.schema is not None
        published = runner.finish_parts(step, driver, ctx, staged.schema, parts)
        if not ctx.defer_publish:  # published: the part went with it
            for entry in entries:
                ctx.untrack(entry)
        ctx.progress(published.rows_out)
        return Measured(staged.measured.rows_in, published.rows_out, staged.measured.bytes)

    def _submit(
        self,
        runner: StepRunner,
        step: ManifestStep,
        ctx: LocalStepContext,
        part: Part | None = None,
    ) -> StepTaskResult:
        """Run the step as one task and wait for it; report its worker, log lines and state."""
        with self.lock:
            inputs = {u: self.outputs[u] for u in step.upstream if u in self.outputs}
        state: CursorState | StateError | None = None
        if step.role == "extractor":
            try:
                state = ctx.load_state()
            except StateError as err:  # the step reports it, as it would locally
                state = err
        job = StepJob(
            portable_step(step),
            tuple(portable_step(runner.steps[u]) for u in step.upstream),
            resolved_fields(runner, step.connection),
            str(ctx.project_dir.absolute()),
            str(ctx.artifacts_dir.absolute()),
            runner.contexts.debris.run_id if runner.contexts.debris else ctx.run_tag,
            state,
            part,
        )
        report = runner.reporter

        def on_rows(_key: Any, rows: int) -> None:
            ctx.progress(rows)

        with _channel(self.client, report.cancel, on_rows, runner.contexts.debris) as (
            tag,
            name,
            progress,
        ):
            future = self.client.submit(
                _remote_step, job, inputs, name, progress, key=f"osiris-step-{tag}", pure=False
            )
            try:
                if step.role == "writer":
                    result = future.result()
                else:  # the table stays where it is
                    summary = self.client.submit(
                        _without_table, future, key=f"osiris-step-{tag}-result", pure=False
                    )
                    result = summary.result()
            except Exception as err:  # the worker died or the task could not run
                raise DriverError(f"task failed: {err}") from None
        report.events.emit(
            STEP_TASK_FINISHED,
            step.id,
            worker=result.worker,
            seconds=round(result.seconds, 3),
            status="failed" if result.error else "ok",
        )
        for line in result.logs:
            ctx.log(line)
        if result.state is not None:
            ctx.hold_state(result.state)
        if result.error is not None:
            raise result.error
        if step.role != "writer":
            with self.lock:
                self.outputs[step.id] = future
        return result

    def _fetch_inputs(self, runner: StepRunner, step: ManifestStep) -> None:
        """The step's input tables into the client's run.duckdb (a writer that runs here)."""
        with self.lock:
            for name in step.upstream:
                if name in self.outputs and not runner.database.table_exists(name):
                    table = self.outputs[name].result().table
                    runner.database.store(name, table.to_reader())


def _cluster(client: Any) -> Cluster:
    return Cluster(_cluster_map(client), _ClusterSteps(client).work)


@contextlib.contextmanager
def dask_cluster(scheduler: str | None, workers: int | None) -> Iterator[Cluster]:
    """Connect to the scheduler, or start a LocalCluster of `workers` processes, for a run."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigurationError(
            "--engine dask needs the 'distributed' package: pip install 'osiris-oml[dask]'"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as err:
            raise ConfigurationError(
                f"cannot reach the Dask scheduler {scheduler}: {err}"
            ) from None
        try:
            yield _cluster(client)
        finally:
            client.close()
        return
    # the workers' scratch space lives and dies with the run's cluster: a locked scratch
    # directory, swept by the next run if this one is killed
    with (
        ScratchDir(f"dask-{uuid.uuid4().hex[:12]}") as scratch,
        dask.config.set({"temporary-directory": str(scratch.path)}),
    ):
        try:
            cluster = LocalCluster(
                n_workers=workers or DEFAULT_LOCAL_WORKERS,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: several runs may start clusters at once
                local_directory=str(scratch.path),
            )
        except Exception as err:
            raise ConfigurationError(f"could not start a local Dask cluster: {err}") from None
        with cluster, Client(cluster) as client:
            yield _cluster(client)
