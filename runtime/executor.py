"""Executors run an execution plan's units; the local one runs them in process on a thread pool."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol, assert_never

from osiris.runtime.cancel import CancelToken
from osiris.runtime.outcomes import StepOutcome
from osiris.runtime.partitioned import PartMap, resolved_fields, run_partitioned, thread_map
from osiris.runtime.planner import (
    ExecutionPlan,
    FileViewUnit,
    PartitionedUnit,
    StepUnit,
    StreamUnit,
    Unit,
    ViewChainUnit,
)
from osiris.runtime.step_runner import StepRunner, StepWork
from osiris.runtime.streams import run_stream
from osiris.runtime.view_chains import run_view_chain

POLL_SECONDS = 0.2
# How a partitioned unit's partitions run: (runner, on_rows(partition, rows)) -> their runner.
PartitionRunner = Callable[[StepRunner, Callable[[int, int], None]], PartMap]


@dataclass(frozen=True, slots=True)
class Cluster:
    """An engine of its own (a Dask cluster): how a unit's partitions run there, and the work
    that runs any other step there as one task (for StepRunner.run)."""

    partitions: PartitionRunner
    steps: Callable[[StepRunner], StepWork]


def default_parallelism() -> int:
    """2 to 4 worker threads, by CPU count."""
    return min(4, max(2, os.cpu_count() or 2))


class Executor(Protocol):
    """Runs every unit of a plan and reports each step: an engine is an executor of the plan."""

    def run(self, plan: ExecutionPlan) -> tuple[StepOutcome, ...]:
        """Every step's outcome, in manifest order."""
        ...


class LocalExecutor:
    """Runs units in process: independent ones on parallel threads, each unit as its kind says.
    A step that fails skips every step downstream of it. Once the run is cancelled no unit
    starts; the running ones unwind (their steps are cancelled through the token's hooks), every
    worker thread is joined, and the steps that never ran are reported cancelled."""

    def __init__(
        self,
        runner: StepRunner,
        *,
        max_parallel: int | None = None,
        cancel: CancelToken | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self.runner = runner
        self.max_parallel = max(1, max_parallel or default_parallelism())
        self.cancel = cancel or runner.reporter.cancel
        # by default a unit's partitions run on threads of this process, max_parallel at a time
        self.partitions: PartitionRunner = (
            cluster.partitions
            if cluster
            else lambda runner, on_rows: thread_map(runner, self.max_parallel, on_rows)
        )
        # on a cluster every other step is a task too (None: in this process), and a
        # database-to-database stream is a unit of one partition: no rows pass through here
        self.step_work: StepWork | None = cluster.steps(runner) if cluster else None
        self.remote = cluster is not None

    def run(self, plan: ExecutionPlan) -> tuple[StepOutcome, ...]:
        outcomes: dict[str, StepOutcome] = {}
        pending = list(plan.units)
        running: dict[Future[tuple[StepOutcome, ...]], Unit] = {}
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="osiris-step") as pool:
            while pending or running:
                for unit in [] if self.cancel.cancelled else list(pending):
                    if unit.steps[0].id in outcomes:  # skipped because of an earlier failure
                        pending.remove(unit)
                        continue
                    if len(running) >= self.max_parallel:
                        break
                    if _ready(unit, outcomes):
                        pending.remove(unit)
                        running[pool.submit(self._run_unit, unit)] = unit
                if not running:
                    if pending and not self.cancel.cancelled:  # never spin on a bad plan
                        raise RuntimeError("no runnable unit: the plan is not in dependency order")
                    break
                # A timeout, so a cancel from another thread is noticed without a unit ending.
                done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    finished = future.result()
                    for outcome in finished:
                        outcomes[outcome.step_id] = outcome
                        self.runner.record(outcome)
                    for outcome in finished:
                        if outcome.status == "failed":
                            self._skip_downstream(plan, outcome.step_id, outcomes)
        for step in plan.steps:
            if step.id not in outcomes:  # the run was cancelled before it could start
                outcomes[step.id] = self.runner.reporter.cancelled(step, None)
        return tuple(outcomes[step.id] for step in plan.steps)

    def _run_unit(self, unit: Unit) -> tuple[StepOutcome, ...]:
        match unit:
            case StepUnit():
                return (self.runner.run(unit.step, self.step_work),)
            case FileViewUnit():
                return (self.runner.run(unit.step, self.runner.read_in_place),)
            case StreamUnit():
                if self.remote:  # a cluster plan streams only between ends that stage
                    return self._run_unit(PartitionedUnit(unit.source, unit.sink))
                return run_stream(self.runner, unit)
            case ViewChainUnit():
                return run_view_chain(self.runner, unit)
            case PartitionedUnit():
                return run_partitioned(
                    self.runner,
                    unit,
                    lambda ref: resolved_fields(self.runner, ref),
                    lambda on_rows: self.partitions(self.runner, on_rows),
                )
            case _:
                assert_never(unit)

    def _skip_downstream(
        self, plan: ExecutionPlan, failed: str, outcomes: dict[str, StepOutcome]
    ) -> None:
        for step in plan.downstream(failed):
            if step.id not in outcomes:
                blocked_by = [u for u in step.upstream if u == failed or u in outcomes]
                outcomes[step.id] = self.runner.reporter.skipped(step, failed, blocked_by)


def _ready(unit: Unit, outcomes: dict[str, StepOutcome]) -> bool:
    """Every step the unit depends on outside itself has succeeded."""
    inside = {step.id for step in unit.steps}
    return all(
        upstream in outcomes and outcomes[upstream].status == "ok"
        for step in unit.steps
        for upstream in step.upstream
        if upstream not in inside
    )
