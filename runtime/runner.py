"""run_manifest(): the Python API behind `oml-run` and `osiris run` — verify, resolve, execute, record."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from osiris.runtime.cancel import CancelToken
from osiris.runtime.connections import (
    ConnectionResolver,
    LiveConnection,
    ResolvedConnection,
    validation_mode,
)
from osiris.runtime.context import RunDatabase, StepContexts
from osiris.runtime.contract.connections import pinned_overrides
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import connections_file, run_project_dir
from osiris.runtime.contract.scratch import hold_lock
from osiris.runtime.debris import RunDebris, Swept, remover, sweep
from osiris.runtime.drivers.registry import StepDrivers
from osiris.runtime.engines.partitions import EngineOptions, cluster_engine
from osiris.runtime.errors import ConfigurationError, ManifestError
from osiris.runtime.events import (
    RUN_FINISHED,
    RUN_STARTED,
    STATE_ADVANCED,
    EventLog,
    ProgressLog,
    RunLog,
    environment,
    utc_now,
    write_json,
)
from osiris.runtime.executor import LocalExecutor, default_parallelism
from osiris.runtime.manifest import VerifiedManifest, load_manifest
from osiris.runtime.outcomes import StepOutcome, StepReporter
from osiris.runtime.planner import (
    ExecutionPlan,
    PlanOptions,
    inplace_min_bytes,
    materialize_mode,
    plan,
)
from osiris.runtime.probe import probe
from osiris.runtime.publish import Publications, PublishReport
from osiris.runtime.records.state import PendingStates, StateError
from osiris.runtime.rundir import RUNS_DIR, RunPaths, create_run_dir
from osiris.runtime.secrets import Redactor
from osiris.runtime.step_runner import StepRunner


class RunObserver(Protocol):
    """Receives a run's events as they happen (the terminal view implements this)."""

    def on_event(self, event: dict[str, Any]) -> None: ...

    def on_progress(self, step_id: str, rows: int) -> None: ...

    def on_warning(self, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The result of run_manifest; exit_code is what `oml-run` exits with."""

    status: str  # ok | failed | cancelled
    exit_code: int
    run_id: str | None = None
    run_dir: Path | None = None
    pipeline: str | None = None
    steps: tuple[StepOutcome, ...] = ()
    error: str | None = None
    failed_step: str | None = None
    duration_ms: int = 0
    warnings: tuple[str, ...] = field(default=())
    note: str | None = None  # what a failed run already changed (targets published) or not

    def summary(self) -> dict[str, Any]:
        """The JSON summary object printed by `oml-run --format json`."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "pipeline": self.pipeline,
            "failed_step": self.failed_step,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "note": self.note,
            "steps": [
                {
                    "id": s.step_id,
                    "driver": s.driver,
                    "role": s.role,
                    "status": s.status,
                    "rows_in": s.rows_in,
                    "rows_out": s.rows_out,
                    "bytes": s.bytes,
                    "duration_ms": s.duration_ms,
                    "rows_per_s": s.rows_per_s,
                    "error": s.error,
                }
                for s in self.steps
            ],
        }


def run_manifest(
    manifest: Path | str,
    *,
    connections: Path | str | None = None,
    secrets_file: Path | str | None = None,
    project_dir: Path | str | None = None,
    run_dir: Path | str | None = None,
    allow_modified: bool = False,
    keep_intermediate: bool = True,
    max_parallel: int | None = None,
    validation: str | None = None,
    environ: Mapping[str, str] | None = None,
    observer: RunObserver | None = None,
    materialize: str | None = None,
    atomic: bool = False,
    cancel: CancelToken | None = None,
    engine: str = "local",
    engine_options: EngineOptions | None = None,
) -> RunOutcome:
    """Verify and execute a compiled manifest in process. Never raises for user errors: the
    outcome's exit_code says what happened (0, 3, 4, 5; 1 for internal errors).

    materialize: "auto" (default) lets plain extract -> write edges stream and single-use file
    extracts be views over their files; "all" stores every step's output as a table in
    run.duckdb for inspection. Unset, $OSIRIS_MATERIALIZE decides (see docs/runtime.md).

    atomic: every writer stages its load and the run publishes them all only once every step
    has succeeded (otherwise each writer publishes when it finishes; docs/runtime.md, Writers).
    cancel: a CancelToken another thread may cancel; the running steps are stopped and rolled
    back, and the outcome is "cancelled" with exit code 130 (143 when cancelled for SIGTERM).
    engine: the --engine name run_started records; "dask" runs partitions on the cluster
    engine_options names (a sandboxed engine runs this in its sandbox)."""
    env = dict(os.environ if environ is None else environ)
    redactor = Redactor()
    try:
        verified = load_manifest(manifest, allow_modified=allow_modified)
    except ManifestError as err:
        return RunOutcome("failed", err.exit_code, error=str(err))
    pipeline = verified.pipeline_name
    project = Path(project_dir or run_project_dir(Path(manifest), env, connections, Path.cwd()))
    project = project.resolve()
    try:
        mode = validation_mode(validation, env)
    except ConfigurationError as err:
        return RunOutcome("failed", err.exit_code, pipeline=pipeline, error=str(err))
    try:
        options = PlanOptions(
            materialize_mode(materialize, env), inplace_min_bytes(env), cluster=engine == "dask"
        )
    except ValueError as err:
        return RunOutcome("failed", ExitCode.CONFIGURATION, pipeline=pipeline, error=str(err))
    try:
        paths = create_run_dir(project, Path(run_dir) if run_dir else None)
    except OSError as err:
        return RunOutcome(
            "failed", ExitCode.CONFIGURATION, pipeline=pipeline, error=f"run directory: {err}"
        )
    try:
        debris = RunDebris(paths.run_id, paths.root)
    except OSError as err:
        return RunOutcome(
            "failed", ExitCode.CONFIGURATION, pipeline=pipeline, error=f"temp directory: {err}"
        )
    resolver = ConnectionResolver(
        connections_file(connections, env, project),
        redactor=redactor,
        secrets_file=Path(secrets_file) if secrets_file else None,
        dotenv=project / ".env",
        environ=env,
        validation=mode,
    )
    run = _Run(
        verified, paths, project, redactor, resolver, debris, observer, cancel or CancelToken()
    )
    run.engine = engine
    run.engine_options = engine_options or EngineOptions()
    return run.execute(
        keep_intermediate=keep_intermediate,
        max_parallel=max_parallel or default_parallelism(),
        options=options,
        atomic=atomic,
    )


class _Run:
    """One execution: owns the run directory's records from start to finish."""

    def __init__(
        self,
        manifest: VerifiedManifest,
        paths: RunPaths,
        project: Path,
        redactor: Redactor,
        resolver: ConnectionResolver,
        debris: RunDebris,
        observer: RunObserver | None,
        cancel: CancelToken,
    ) -> None:
        self.manifest = manifest
        self.cancel = cancel
        self.paths = paths
        self.project = project
        self.redactor = redactor
        self.resolver = resolver
        self.debris = debris
        self.remove_leftover = remover(lambda ref: self.resolver.resolve(ref).fields)
        self.observer = observer
        self.started_at = utc_now()
        self.started = time.perf_counter()
        self.warnings: list[str] = []
        self.connection_warnings: list[str] = []  # reported once the run has started
        self.atomic = False
        self.engine = "local"
        self.engine_options = EngineOptions()
        self.advanced: dict[str, dict[str, Any]] = {}  # incremental cursors this run wrote
        # Writer steps whose targets this run changed; None: not known (the run stopped early).
        self.published: list[str] | None = None
        self.lock = hold_lock(paths.lock)  # released when the records are complete
        self.log = RunLog(paths.log)
        self.events = EventLog(paths.events, paths.run_id)
        self.progress = ProgressLog(paths.progress)
        if observer is not None:
            self.events.subscribe(observer.on_event)

    def execute(
        self, *, keep_intermediate: bool, max_parallel: int, options: PlanOptions, atomic: bool
    ) -> RunOutcome:
        """Resolve connections, load drivers, probe, plan, announce, execute, (publish,) record."""
        steps: tuple[StepOutcome, ...] = ()
        self.atomic = atomic
        if atomic:
            self.published = []  # until the publish phase, nothing is
        publishing: PublishReport | None = None
        discarded: list[str] = []  # writer steps whose staged loads were thrown away
        try:
            self._copy_manifest()
            try:
                connections = self._resolve_connections()
            except ConfigurationError:
                self._announce(ExecutionPlan(self.manifest.steps, ()), max_parallel, options)
                raise
            database = RunDatabase(self.paths.database)
            states = PendingStates(self.project, self.manifest.pipeline_name)
            try:
                contexts = StepContexts(
                    database,
                    {ref: LiveConnection(self.resolver, ref) for ref in connections},
                    self.project,
                    self.paths.artifacts,
                    on_progress=self._on_progress,
                    on_log=lambda step_id, message: self.log.write(
                        self.redactor.redact(message), step_id
                    ),
                    debris=self.debris,
                    defer_publish=atomic,
                    cancel=self.cancel,
                    states=states,
                )
                drivers = StepDrivers({step.id: step.driver for step in self.manifest.steps})
                facts = probe(self.manifest.steps, drivers, contexts.for_step)
                execution_plan = plan(self.manifest.steps, options, facts)
                self._announce(execution_plan, max_parallel, options)
                if options.cluster and options.materialize == "all":
                    self._warn(
                        "--materialize all: with --engine dask the steps' outputs stay on the "
                        "cluster's workers; run.duckdb keeps none of them"
                    )
                self._sweep()
                runner = StepRunner(
                    self.manifest.steps,
                    drivers=drivers,
                    contexts=contexts,
                    reporter=StepReporter(self.events, self.log, self.redactor, self.cancel),
                )
                try:
                    with (
                        cluster_engine(self.engine)(self.engine_options) as cluster,
                        self.cancel.on_cancel(database.interrupt),
                    ):
                        executor = LocalExecutor(
                            runner,
                            max_parallel=max_parallel,
                            cancel=self.cancel,
                            cluster=cluster,
                        )
                        steps = executor.run(execution_plan)
                    if not self.cancel.cancelled:
                        publishing = self._publish(steps, runner.publications)
                finally:  # a failed or stopped run publishes nothing more
                    for held in runner.publications.discard_all():
                        discarded.append(held.step_id)
                        self.log.write(
                            f"discarded the staged load of {held.publication.target}", held.step_id
                        )
            finally:
                self.cancel.join()  # the cancel hooks are done with connections and cursors
                database.close(discard=not keep_intermediate)
            failed = [s for s in steps if s.status == "failed"]
            if any(s.status == "cancelled" for s in steps) or (self.cancel.cancelled and discarded):
                self.log.write(self.cancel.describe())
                outcome = self._finish(
                    "cancelled", self.cancel.exit_code, steps, self.cancel.describe(), None
                )
            elif publishing is not None and publishing.failed is not None:
                outcome = self._finish(
                    "failed",
                    ExitCode.RUN_FAILED,
                    steps,
                    publishing.message(),
                    publishing.failed.step_id,
                )
            elif failed:
                first = failed[0]
                error = f"step '{first.step_id}' ({first.driver}) failed: {first.error}"
                code = ExitCode.CONFIGURATION if first.configuration else ExitCode.RUN_FAILED
                outcome = self._finish("failed", code, steps, error, first.step_id, first.detail)
            else:
                self._commit_states(states)
                outcome = self._finish("ok", ExitCode.OK, steps, None, None)
        except ConfigurationError as err:
            text = self.redactor.redact(str(err))
            self.log.write(f"configuration error: {text}")
            outcome = self._finish("failed", err.exit_code, steps, text, None)
        except Exception as err:
            self.log.write("internal error:\n" + self.redactor.traceback(err))
            message = f"internal error ({type(err).__name__}); details in {self.paths.log}"
            outcome = self._finish("failed", ExitCode.INTERNAL, steps, message, None)
        finally:
            self.debris.close()
            self.events.close()
            self.progress.close()
            self.log.close()
            os.close(self.lock)
        if not keep_intermediate:
            for leftover in (self.paths.database, self.paths.database.with_suffix(".duckdb.wal")):
                leftover.unlink(missing_ok=True)
            tmp = self.paths.database.with_suffix(".duckdb.tmp")
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
        return outcome

    def _commit_states(self, states: PendingStates) -> None:
        """Advance the incremental cursors: only here, once every step (and every publication)
        succeeded; a failed or cancelled run never gets here and leaves them as they were."""
        try:
            written = states.commit(self.paths.run_id)
        except (OSError, StateError) as err:
            raise ConfigurationError(f"writing incremental state: {err}") from None
        for step_id, state in written.items():
            self.log.write(
                self.redactor.redact(
                    f"incremental state: {state.cursor} advanced to {state.last_value!r}"
                ),
                step_id,
            )
            value = state.last_value
            shown = self.redactor.redact(value) if isinstance(value, str) else value
            self.advanced[step_id] = {"cursor": state.cursor, "value": shown}
            self.events.emit(STATE_ADVANCED, step_id, cursor=state.cursor, value=shown)

    def _on_progress(self, step_id: str, rows: int) -> None:
        self.progress.record(step_id, rows)
        if self.observer is not None:
            self.observer.on_progress(step_id, rows)

    def _publish(
        self, steps: tuple[StepOutcome, ...], publications: Publications
    ) -> PublishReport | None:
        """The final phase of an --atomic run: publish every writer's staged load once every
        step succeeded (else the caller discards them). Without --atomic, each writer
        published when it finished."""
        writers = [s.step_id for s in steps if s.role == "writer"]
        if not self.atomic:
            self.published = [s.step_id for s in steps if s.role == "writer" and s.status == "ok"]
            return None
        if not steps or any(s.status != "ok" for s in steps):
            return None
        report = publications.publish_all(writers, self.redactor.redact)
        self.published = [held.step_id for held in report.published]
        for held in report.published:
            self.log.write(f"published {held.publication.target}", held.step_id)
        if report.failed is not None:
            self.log.write(f"publishing failed: {report.error}", report.failed.step_id)
        return report

    def _announce(
        self, execution_plan: ExecutionPlan, max_parallel: int, options: PlanOptions
    ) -> None:
        """run_started, with the plan's units (none when nothing will run), then the warnings."""
        self.events.emit(
            RUN_STARTED,
            pipeline=self.manifest.pipeline_name,
            manifest_fingerprint=self.manifest.fingerprint,
            modified=self.manifest.modified,
            engine=self.engine,
            environment=environment(),
            max_parallel=max_parallel,
            materialize=options.materialize,
            steps=[{"id": s.id, "driver": s.driver, "role": s.role} for s in self.manifest.steps],
            units=execution_plan.describe(),
        )
        self.log.write(f"run {self.paths.run_id}: pipeline {self.manifest.pipeline_name}")
        if self.manifest.modified:
            self._warn("manifest does not match its fingerprints; running it (--allow-modified)")
        for warning in self.connection_warnings:
            self._warn(warning)

    def _sweep(self) -> None:
        """Remove what dead runs left behind (docs/runtime.md, "Leftovers and the sweep")."""
        try:
            swept = sweep(self.project / RUNS_DIR, self.paths.run_id, self.remove_leftover)
        except Exception as err:  # never fail a run over another's leftovers
            self._warn(f"could not sweep the leftovers of earlier runs: {err}")
            return
        for leftovers in swept:
            self._report_removed(leftovers)
            self._warn(leftovers.summary())

    def _report_removed(self, swept: Swept) -> None:
        for what in swept.removed:
            self.log.write(f"removed leftover of run {swept.run_id}: {what}")
        for what in swept.failed:
            self.log.write(
                self.redactor.redact(f"could not remove leftover of run {swept.run_id}: {what}")
            )

    def _warn(self, message: str) -> None:
        text = self.redactor.redact(message)
        self.warnings.append(text)
        self.log.write(f"warning: {text}")
        if self.observer is not None:
            self.observer.on_warning(text)

    def _copy_manifest(self) -> None:
        self.paths.manifest.write_bytes(self.manifest.manifest_bytes)
        for step in self.manifest.steps:
            target = self.paths.root / step.cfg_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(step.cfg_bytes)

    def _resolve_connections(self) -> dict[str, ResolvedConnection]:
        """Before the run starts: the planner's facts may depend on them (a DuckDB file's path),
        and a missing variable or alias stops the run before anything runs. Steps read their
        connection again when they connect (LiveConnection): secrets may rotate meanwhile."""
        resolved: dict[str, ResolvedConnection] = {}
        for step in self.manifest.steps:
            if step.connection and step.connection not in resolved:
                try:
                    connection = self.resolver.resolve(step.connection)
                except ConfigurationError as err:
                    raise ConfigurationError(f"step '{step.id}': {err}") from None
                resolved[step.connection] = connection
                self.connection_warnings.extend(connection.warnings)
            if step.connection:
                _refuse_overrides(step.id, step.config, resolved[step.connection])
        return resolved

    def _finish(
        self,
        status: str,
        exit_code: int,
        steps: tuple[StepOutcome, ...],
        error: str | None,
        failed_step: str | None,
        detail: str | None = None,
    ) -> RunOutcome:
        """error: redacted already (steps' errors are, when they are reported)."""
        # what a step could not clean up itself (a table on a connection killed on the server)
        own = self.debris.finish(self.remove_leftover)
        self._report_removed(own)
        if own.failed:
            self._warn(own.summary() + " (the next run retries)")
        duration = round((time.perf_counter() - self.started) * 1000)
        writers = [s.id for s in self.manifest.steps if s.role == "writer"]
        published = self.published
        unpublished = None if published is None else [w for w in writers if w not in published]
        note = None
        if status != "ok" and published:
            names = ", ".join(f"'{w}'" for w in published)
            note = (
                f"the targets of writer step(s) {names} were updated before the run failed "
                "(each writer publishes when it finishes; --atomic publishes only when every "
                "step succeeded)"
                if not self.atomic
                else f"the targets of writer step(s) {names} were published before publishing failed"
            )
        outcome = RunOutcome(
            status=status,
            exit_code=exit_code,
            run_id=self.paths.run_id,
            run_dir=self.paths.root,
            pipeline=self.manifest.pipeline_name,
            steps=steps,
            error=error,
            failed_step=failed_step,
            duration_ms=duration,
            warnings=tuple(self.warnings),
            note=note,
        )
        write_json(self.paths.metrics, _metrics(outcome))
        write_json(
            self.paths.status,
            {
                "run_id": self.paths.run_id,
                "pipeline": self.manifest.pipeline_name,
                "status": status,
                "exit_code": exit_code,
                "failed_step": failed_step,
                "failed_steps": [s.step_id for s in steps if s.status == "failed"],
                "skipped_steps": [s.step_id for s in steps if s.status == "skipped"],
                "cancelled_steps": [s.step_id for s in steps if s.status == "cancelled"],
                "error": error,
                **({"error_detail": detail} if detail else {}),
                "started_at": self.started_at,
                "finished_at": utc_now(),
                "duration_ms": duration,
                "manifest_fingerprint": self.manifest.fingerprint,
                "modified": self.manifest.modified,
                "warnings": list(self.warnings),
                "atomic": self.atomic,
                "published_steps": published,
                "unpublished_steps": unpublished,
                "note": note,
                "state_advanced": self.advanced,
            },
        )
        self.events.emit(
            RUN_FINISHED,
            status=status,
            exit_code=exit_code,
            duration_ms=duration,
            failed_step=failed_step,
            error=error,
        )
        self.log.write(f"run finished: {status} (exit {exit_code})")
        return outcome


def _refuse_overrides(
    step_id: str, config: Mapping[str, Any], connection: ResolvedConnection
) -> None:
    """A step may not change where its connection connects or as whom: a hand-made manifest
    must not send the connection's credentials elsewhere (omlc check reports it as OML022)."""
    pinned = pinned_overrides(config, connection.defined)
    if pinned:
        raise ConfigurationError(
            f"step '{step_id}': {', '.join(pinned)} must not be set in the step: connection "
            f"@{connection.family}.{connection.alias} decides where it connects and as whom "
            f"(move it into the connection alias in the connections file, or define a new alias)"
        )


def _metrics(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "run_id": outcome.run_id,
        "duration_ms": outcome.duration_ms,
        "steps": {
            s.step_id: {
                "status": s.status,
                "rows_in": s.rows_in,
                "rows_out": s.rows_out,
                "bytes": s.bytes,
                "duration_ms": s.duration_ms,
                "rows_per_s": s.rows_per_s,
            }
            for s in outcome.steps
        },
    }
