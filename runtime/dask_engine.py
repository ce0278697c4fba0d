"""The dask engine: every partition of a partitioned unit is one task on a `distributed` cluster.

A task receives its job (drivers, configs, the connections' resolved fields) as an argument, in
memory only: nothing secret is in a task's key. The data flows from the source to the target on
the worker; only counts come back. A task's temp files live in a scratch directory its worker
process locks (runtime/debris.PartScratch): each task first sweeps those of dead processes on its
machine, as a run does when it starts. A task whose client went away (its future released) stops
as if cancelled, so a killed client leaves no task creating tables after the next run's sweep."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from osiris.runtime.cancel import CancelToken
from osiris.runtime.contract.scratch import ScratchDir, sweep_scratch
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.executor import PartitionRunner
from osiris.runtime.partitioned import PartJob, PartMap, PartResult, run_part
from osiris.runtime.step_runner import StepRunner

CANCEL_POLL_SECONDS = 0.5
PROGRESS_SECONDS = 0.5  # at most one progress message per partition this often
DEFAULT_LOCAL_WORKERS = 2


def _remote_part(job: PartJob, cancel_event: str, progress: str) -> PartResult:
    """The task: one partition on a worker; stops when the client sets the cancel event or is
    gone, and sends its running row count to the client's progress queue now and then."""
    from distributed import Event, Queue, get_worker

    worker = get_worker()
    key = worker.get_current_task()
    sweep_scratch()  # dead workers' partition scratch directories on this machine
    token = CancelToken()
    done = threading.Event()
    event = Event(cancel_event)
    queue = Queue(progress)
    sent = [0.0]

    def on_rows(rows: int) -> None:
        now = time.monotonic()
        if now - sent[0] >= PROGRESS_SECONDS:
            sent[0] = now
            with contextlib.suppress(Exception):  # progress is a courtesy: never fail on it
                queue.put((job.index, rows), timeout=1)

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
        return run_part(job, worker=worker.address, cancel=token, on_rows=on_rows)
    finally:
        done.set()


def _cluster_map(client: Any) -> PartitionRunner:
    from distributed import Event, Queue, as_completed

    def make(runner: StepRunner, on_rows: Callable[[int, int], None]) -> PartMap:
        def run(jobs: Sequence[PartJob]) -> list[PartResult]:
            tag = uuid.uuid4().hex[:12]
            name, progress = f"osiris-cancel-{tag}", f"osiris-progress-{tag}"
            event = Event(name, client=client)
            queue = Queue(progress, client=client)
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
            stop = threading.Event()

            def drain() -> None:
                while not stop.wait(PROGRESS_SECONDS):
                    try:
                        waiting = queue.get(batch=True)  # what is there now, without blocking
                    except Exception:  # the cluster went away: the tasks' results will say
                        continue
                    for index, rows in waiting:
                        on_rows(index, rows)

            reader = threading.Thread(target=drain, name="osiris-dask-progress", daemon=True)
            reader.start()
            results: list[PartResult] = []
            try:
                with runner.reporter.cancel.on_cancel(event.set):
                    for future in as_completed(futures):
                        job = futures[future]
                        try:
                            result = future.result()
                        except Exception as err:  # the worker died or the task could not run
                            result = PartResult(
                                job.index, 0, 0, 0.0, "?", error=f"task failed: {err}"
                            )
                        on_rows(result.index, result.rows)
                        results.append(result)
            finally:
                stop.set()
                reader.join(timeout=5)
            return results

        return run

    return make


@contextlib.contextmanager
def dask_partitions(scheduler: str | None, workers: int | None) -> Iterator[PartitionRunner]:
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
            yield _cluster_map(client)
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
            yield _cluster_map(client)
