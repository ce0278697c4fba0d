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
from osiris.runtime.context import RunDatabase
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import connections_file
from osiris.runtime.contract.project import project_dir as find_project_dir
from osiris.runtime.engine import (
    INPLACE_MIN_BYTES,
    LocalEngine,
    MaterializeMode,
    StepOutcome,
    default_parallelism,
    inplace_min_bytes,
    materialize_mode,
)
from osiris.runtime.errors import ConfigurationError, ManifestError
from osiris.runtime.events import RUN_FINISHED, RUN_STARTED, EventLog, RunLog, utc_now, write_json
from osiris.runtime.manifest import Plan, load_plan
from osiris.runtime.rundir import RunPaths, create_run_dir
from osiris.runtime.secrets import Redactor


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
    """Verify and execute a compiled manifest with the local engine. Never raises for user
    errors: the outcome's exit_code says what happened (0, 3, 4, 5; 1 for internal errors).

    materialize: "auto" (default) lets plain extract -> write edges stream and single-use file
    extracts be views over their files; "all" stores every step's output as a table in
    run.duckdb for inspection. Unset, $OSIRIS_MATERIALIZE decides (see runtime.engine)."""
    env = dict(os.environ if environ is None else environ)
    redactor = Redactor()
    try:
        plan = load_plan(manifest, allow_modified=allow_modified)
    except ManifestError as err:
        return RunOutcome("failed", err.exit_code, error=str(err))
    project = Path(project_dir).resolve() if project_dir else find_project_dir().resolve()
    try:
        mode = validation_mode(validation, env)
    except ConfigurationError as err:
        return RunOutcome("failed", err.exit_code, pipeline=plan.pipeline_name, error=str(err))
    try:
        materialization = materialize_mode(materialize, env)
    except ValueError as err:
        return RunOutcome(
            "failed", ExitCode.CONFIGURATION, pipeline=plan.pipeline_name, error=str(err)
        )
    try:
        paths = create_run_dir(project, Path(run_dir) if run_dir else None)
    except OSError as err:
        return RunOutcome(
            "failed",
            ExitCode.CONFIGURATION,
            pipeline=plan.pipeline_name,
            error=f"run directory: {err}",
        )
    resolver = ConnectionResolver(
        connections_file(connections, env, project),
        redactor=redactor,
        secrets_file=Path(secrets_file) if secrets_file else None,
        environ=env,
        validation=mode,
    )
    run = _Run(plan, paths, project, redactor, resolver, observer)
    return run.execute(
        keep_intermediate=keep_intermediate,
        max_parallel=max_parallel or default_parallelism(),
        materialize=materialization,
        inplace_min_bytes=inplace_min_bytes(env),
    )


class _Run:
    """One execution: owns the run directory's records from start to finish."""

    def __init__(
        self,
        plan: Plan,
        paths: RunPaths,
        project: Path,
        redactor: Redactor,
        resolver: ConnectionResolver,
        observer: RunObserver | None,
    ) -> None:
        self.plan = plan
        self.paths = paths
        self.project = project
        self.redactor = redactor
        self.resolver = resolver
        self.observer = observer
        self.started_at = utc_now()
        self.started = time.perf_counter()
        self.warnings: list[str] = []
        self.log = RunLog(paths.log, redactor)
        self.events = EventLog(paths.events, paths.run_id, redactor)
        if observer is not None:
            self.events.subscribe(observer.on_event)

    def execute(
        self,
        *,
        keep_intermediate: bool,
        max_parallel: int,
        materialize: MaterializeMode = "auto",
        inplace_min_bytes: int = INPLACE_MIN_BYTES,
    ) -> RunOutcome:
        steps: tuple[StepOutcome, ...] = ()
        try:
            self._copy_manifest()
            self.events.emit(
                RUN_STARTED,
                pipeline=self.plan.pipeline_name,
                manifest_fingerprint=self.plan.fingerprint,
                modified=self.plan.modified,
                engine="local",
                max_parallel=max_parallel,
                materialize=materialize,
                steps=[{"id": s.id, "driver": s.driver, "role": s.role} for s in self.plan.steps],
            )
            self.log.write(f"run {self.paths.run_id}: pipeline {self.plan.pipeline_name}")
            if self.plan.modified:
                self._warn(
                    "manifest does not match its fingerprints; running it (--allow-modified)"
                )
            connections = self._resolve_connections()
            database = RunDatabase(self.paths.database)
            try:
                engine = LocalEngine(
                    self.plan,
                    paths=self.paths,
                    database=database,
                    connections=connections,
                    project_dir=self.project,
                    events=self.events,
                    log=self.log,
                    redactor=self.redactor,
                    max_parallel=max_parallel,
                    on_progress=self.observer.on_progress if self.observer else None,
                    materialize=materialize,
                    inplace_min_bytes=inplace_min_bytes,
                )
                steps = engine.run()
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

    def _warn(self, message: str) -> None:
        text = self.redactor.redact(message)
        self.warnings.append(text)
        self.log.write(f"warning: {text}")
        if self.observer is not None:
            self.observer.on_warning(text)

    def _copy_manifest(self) -> None:
        self.paths.manifest.write_bytes(self.plan.manifest_bytes)
        for step in self.plan.steps:
            target = self.paths.root / step.cfg_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(step.cfg_bytes)

    def _resolve_connections(self) -> dict[str, ResolvedConnection]:
        resolved: dict[str, ResolvedConnection] = {}
        for step in self.plan.steps:
            if step.connection and step.connection not in resolved:
                try:
                    connection = self.resolver.resolve(step.connection)
                except ConfigurationError as err:
                    raise ConfigurationError(f"step '{step.id}': {err}") from None
                resolved[step.connection] = connection
                for warning in connection.warnings:
                    self._warn(warning)
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
            pipeline=self.plan.pipeline_name,
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
                "pipeline": self.plan.pipeline_name,
                "status": status,
                "exit_code": exit_code,
                "failed_step": failed_step,
                "failed_steps": [s.step_id for s in steps if s.status == "failed"],
                "skipped_steps": [s.step_id for s in steps if s.status == "skipped"],
                "error": error,
                "started_at": self.started_at,
                "finished_at": utc_now(),
                "duration_ms": duration,
                "manifest_fingerprint": self.plan.fingerprint,
                "modified": self.plan.modified,
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
