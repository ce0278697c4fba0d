"""run_manifest(): the Python API behind `oml-run` and `osiris run` — verify, resolve, execute, record."""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from osiris.runtime.connections import ConnectionResolver, ResolvedConnection, validation_mode
from osiris.runtime.context import RunDatabase, StepContexts
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import connections_file, run_project_dir
from osiris.runtime.drivers.registry import StepDrivers
from osiris.runtime.errors import ConfigurationError, ManifestError
from osiris.runtime.events import RUN_FINISHED, RUN_STARTED, EventLog, RunLog, utc_now, write_json
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
from osiris.runtime.rundir import RunPaths, create_run_dir
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

    status: str  # ok | failed
    exit_code: int
    run_id: str | None = None
    run_dir: Path | None = None
    pipeline: str | None = None
    steps: tuple[StepOutcome, ...] = ()
    error: str | None = None
    failed_step: str | None = None
    duration_ms: int = 0
    warnings: tuple[str, ...] = field(default=())

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
) -> RunOutcome:
    """Verify and execute a compiled manifest in process. Never raises for user errors: the
    outcome's exit_code says what happened (0, 3, 4, 5; 1 for internal errors).

    materialize: "auto" (default) lets plain extract -> write edges stream and single-use file
    extracts be views over their files; "all" stores every step's output as a table in
    run.duckdb for inspection. Unset, $OSIRIS_MATERIALIZE decides (see docs/runtime.md)."""
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
        options = PlanOptions(materialize_mode(materialize, env), inplace_min_bytes(env))
    except ValueError as err:
        return RunOutcome("failed", ExitCode.CONFIGURATION, pipeline=pipeline, error=str(err))
    try:
        paths = create_run_dir(project, Path(run_dir) if run_dir else None)
    except OSError as err:
        return RunOutcome(
            "failed", ExitCode.CONFIGURATION, pipeline=pipeline, error=f"run directory: {err}"
        )
    resolver = ConnectionResolver(
        connections_file(connections, env, project),
        redactor=redactor,
        secrets_file=Path(secrets_file) if secrets_file else None,
        dotenv=project / ".env",
        environ=env,
        validation=mode,
    )
    run = _Run(verified, paths, project, redactor, resolver, observer)
    return run.execute(
        keep_intermediate=keep_intermediate,
        max_parallel=max_parallel or default_parallelism(),
        options=options,
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
        observer: RunObserver | None,
    ) -> None:
        self.manifest = manifest
        self.paths = paths
        self.project = project
        self.redactor = redactor
        self.resolver = resolver
        self.observer = observer
        self.started_at = utc_now()
        self.started = time.perf_counter()
        self.warnings: list[str] = []
        self.connection_warnings: list[str] = []  # reported once the run has started
        self.log = RunLog(paths.log, redactor)
        self.events = EventLog(paths.events, paths.run_id, redactor)
        if observer is not None:
            self.events.subscribe(observer.on_event)

    def execute(
        self, *, keep_intermediate: bool, max_parallel: int, options: PlanOptions
    ) -> RunOutcome:
        """Resolve connections, load drivers, probe, plan, announce, execute, record."""
        steps: tuple[StepOutcome, ...] = ()
        try:
            self._copy_manifest()
            try:
                connections = self._resolve_connections()
            except ConfigurationError:
                self._announce(ExecutionPlan(self.manifest.steps, ()), max_parallel, options)
                raise
            database = RunDatabase(self.paths.database)
            try:
                contexts = StepContexts(
                    database,
                    {ref: connection.fields for ref, connection in connections.items()},
                    self.project,
                    self.paths.artifacts,
                    on_progress=self.observer.on_progress if self.observer else None,
                    on_log=lambda step_id, message: self.log.write(message, step_id),
                )
                drivers = StepDrivers({step.id: step.driver for step in self.manifest.steps})
                facts = probe(self.manifest.steps, drivers, contexts.for_step)
                execution_plan = plan(self.manifest.steps, options, facts)
                self._announce(execution_plan, max_parallel, options)
                runner = StepRunner(
                    self.manifest.steps,
                    drivers=drivers,
                    contexts=contexts,
                    reporter=StepReporter(self.events, self.log, self.redactor),
                )
                steps = LocalExecutor(runner, max_parallel=max_parallel).run(execution_plan)
            finally:
                database.close(discard=not keep_intermediate)
            failed = [s for s in steps if s.status == "failed"]
            if failed:
                first = failed[0]
                error = f"step '{first.step_id}' ({first.driver}) failed: {first.error}"
                code = ExitCode.CONFIGURATION if first.configuration else ExitCode.RUN_FAILED
                outcome = self._finish("failed", code, steps, error, first.step_id)
            else:
                outcome = self._finish("ok", ExitCode.OK, steps, None, None)
        except ConfigurationError as err:
            self.log.write(f"configuration error: {err}")
            outcome = self._finish("failed", err.exit_code, steps, str(err), None)
        except Exception as err:
            self.log.write("internal error:\n" + "".join(traceback.format_exception(err)))
            message = f"internal error ({type(err).__name__}); details in {self.paths.log}"
            outcome = self._finish("failed", ExitCode.INTERNAL, steps, message, None)
        finally:
            self.events.close()
            self.log.close()
        if not keep_intermediate:
            for leftover in (self.paths.database, self.paths.database.with_suffix(".duckdb.wal")):
                leftover.unlink(missing_ok=True)
            tmp = self.paths.database.with_suffix(".duckdb.tmp")
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
        return outcome

    def _announce(
        self, execution_plan: ExecutionPlan, max_parallel: int, options: PlanOptions
    ) -> None:
        """run_started, with the plan's units (none when nothing will run), then the warnings."""
        self.events.emit(
            RUN_STARTED,
            pipeline=self.manifest.pipeline_name,
            manifest_fingerprint=self.manifest.fingerprint,
            modified=self.manifest.modified,
            engine="local",
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
        """Before the run starts: the planner's facts may depend on them (a DuckDB file's path)."""
        resolved: dict[str, ResolvedConnection] = {}
        for step in self.manifest.steps:
            if step.connection and step.connection not in resolved:
                try:
                    connection = self.resolver.resolve(step.connection)
                except ConfigurationError as err:
                    raise ConfigurationError(f"step '{step.id}': {err}") from None
                resolved[step.connection] = connection
                self.connection_warnings.extend(connection.warnings)
        return resolved

    def _finish(
        self,
        status: str,
        exit_code: int,
        steps: tuple[StepOutcome, ...],
        error: str | None,
        failed_step: str | None,
    ) -> RunOutcome:
        duration = round((time.perf_counter() - self.started) * 1000)
        error = self.redactor.redact(error) if error else None
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
        )
        write_json(self.paths.metrics, _metrics(outcome), self.redactor)
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
                "error": error,
                "started_at": self.started_at,
                "finished_at": utc_now(),
                "duration_ms": duration,
                "manifest_fingerprint": self.manifest.fingerprint,
                "modified": self.manifest.modified,
                "warnings": list(self.warnings),
            },
            self.redactor,
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
