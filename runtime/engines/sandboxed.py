"""The sandboxed engine: ship a verified manifest to a SandboxPort, run the same runtime there,
stream its events back into the local runs/<run_id>/, fetch the records, always end the sandbox."""

from __future__ import annotations

import glob
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

from osiris.runtime.cancel import CancelToken
from osiris.runtime.connections import (
    ConnectionResolver,
    SandboxConnections,
    local_hosts,
    sandbox_connections,
    validation_mode,
)
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import connections_file, run_project_dir
from osiris.runtime.engines.port import Limits, Process, SandboxError, SandboxPort
from osiris.runtime.engines.remote import (
    INPUT_ARCHIVE,
    OUTPUT_ARCHIVE,
    PROJECT_MEMBER,
    RUNS_MEMBER,
)
from osiris.runtime.engines.wheel import extras_for, runtime_wheel
from osiris.runtime.errors import ConfigurationError, ManifestError
from osiris.runtime.manifest import VerifiedManifest, load_manifest
from osiris.runtime.outcomes import StepOutcome
from osiris.runtime.rundir import RUNS_DIR, RunPaths, create_run_dir
from osiris.runtime.runner import RunObserver, RunOutcome
from osiris.runtime.secrets import Redactor

INTERRUPT_GRACE_SECONDS = 20.0  # after SIGINT, how long the sandbox may take to roll back
POLL_SECONDS = 0.2
_FILE_DRIVERS = ("filesystem.",)
_DATABASE_FILE_DRIVERS = ("duckdb.extractor", "duckdb.writer")


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    """The run flags a sandboxed run passes on, and the sandbox's limits."""

    connections: Path | None = None
    secrets_file: Path | None = None
    project_dir: Path | None = None
    run_dir: Path | None = None
    allow_modified: bool = False
    keep_intermediate: bool = True
    max_parallel: int | None = None
    validation: str | None = None
    materialize: str | None = None
    atomic: bool = False
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class ProjectFiles:
    """Project-relative files a run reads (sent to the sandbox) and writes (fetched back)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def project_files(
    manifest: VerifiedManifest, resolver: ConnectionResolver, project: Path
) -> ProjectFiles:
    """The files the steps name (filesystem paths, DuckDB databases); ConfigurationError for a
    path outside the project: the sandbox has only the project's files."""
    inputs: dict[str, None] = {}
    outputs: dict[str, None] = {}
    for step in manifest.steps:
        raw: Any = None
        if step.driver.startswith(_FILE_DRIVERS):
            raw = step.config.get("path")
        elif step.driver in _DATABASE_FILE_DRIVERS:
            fields = resolver.resolve(step.connection).fields if step.connection else {}
            raw = fields.get("path") or fields.get("database") or step.config.get("path")
        if raw is None:
            continue
        for item in raw if isinstance(raw, list) else [raw]:
            rel = _project_relative(str(item), project, step.id)
            if step.role == "writer":
                outputs[rel] = None
            matches = glob.glob(str(project / rel)) if glob.has_magic(rel) else [str(project / rel)]
            for match in matches:
                if os.path.isfile(match):
                    inputs[Path(match).relative_to(project).as_posix()] = None
    return ProjectFiles(tuple(inputs), tuple(o for o in outputs if not glob.has_magic(o)))


def _project_relative(value: str, project: Path, step_id: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or value.startswith("~") or ".." in path.parts:
        raise ConfigurationError(
            f"step '{step_id}': path {value} is not inside the project: a sandboxed run "
            f"has only the project's files (use a path relative to {project})"
        )
    return path.as_posix()


class _Stream:
    """Turns the sandbox's stdout into events, progress and warnings, as they arrive; the first
    event makes the local run directory, and every event line is appended to its events.jsonl."""

    def __init__(
        self,
        project: Path,
        run_dir: Path | None,
        observer: RunObserver | None,
        redactor: Redactor,
    ) -> None:
        self.project = project
        self.wanted_run_dir = run_dir
        self.observer = observer
        self.redactor = redactor
        self.paths: RunPaths | None = None
        self.events: IO[str] | None = None
        self.summary: dict[str, Any] | None = None
        self.stderr: list[str] = []
        self.error: str | None = None
        self.ended = _Ended()
        self._out = ""
        self._err = ""
        self._lock = threading.Lock()

    def stdout(self, chunk: str) -> None:
        with self._lock:
            self._out += chunk
            *lines, self._out = self._out.split("\n")
            for line in lines:
                self._line(line)

    def stderr_chunk(self, chunk: str) -> None:
        with self._lock:
            self._err += chunk
            *lines, self._err = self._err.split("\n")
            self.stderr.extend(self.redactor.redact(line) for line in lines if line.strip())
            del self.stderr[:-50]

    def flush(self) -> None:
        with self._lock:
            if self._out:
                self._line(self._out)
                self._out = ""
            if self._err.strip():
                self.stderr.append(self.redactor.redact(self._err))
            self._err = ""

    def _line(self, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            if line.strip():
                self.stderr.append(self.redactor.redact(line))
            return
        if not isinstance(message, dict):
            return
        if "event" in message and isinstance(message["event"], dict):
            self._event(message["event"], line)
        elif "progress" in message and self.observer is not None:
            step_id, rows = message["progress"]
            self.observer.on_progress(str(step_id), int(rows))
        elif "warning" in message and self.observer is not None:
            self.observer.on_warning(str(message["warning"]))
        elif "summary" in message and isinstance(message["summary"], dict):
            self.summary = message["summary"]

    def _event(self, event: dict[str, Any], line: str) -> None:
        if self.paths is None:
            run_id = str(event.get("run_id") or "")
            try:
                self.paths = _local_run_dir(self.project, self.wanted_run_dir, run_id)
            except (OSError, ValueError) as err:
                self.error = f"run directory: {err}"
                return
            self.events = self.paths.events.open("a", encoding="utf-8")
        if self.events is not None:
            self.events.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
            self.events.flush()
        if self.observer is not None:
            self.observer.on_event(event)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
            self.events = None


def _local_run_dir(project: Path, wanted: Path | None, run_id: str) -> RunPaths:
    """runs/<run_id>/ under the project (named by the sandbox's run id), or --run-dir."""
    if wanted is not None:
        return RunPaths(run_id, create_run_dir(project, wanted).root)
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"the sandbox reported an unusable run id {run_id!r}")
    root = project / RUNS_DIR / run_id
    root.mkdir(parents=True)
    return RunPaths(run_id, root.resolve())


def run_sandboxed(
    port: SandboxPort,
    manifest: Path | str,
    options: SandboxOptions,
    *,
    observer: RunObserver | None = None,
    cancel: CancelToken | None = None,
    environ: Mapping[str, str] | None = None,
    wheel: Callable[[], Path] = runtime_wheel,
) -> RunOutcome:
    """Verify the manifest here, then run it in port's sandbox; the outcome as run_manifest's.
    The sandbox is killed whatever happens (success, failure, cancel, timeout, an error here)."""
    env = dict(os.environ if environ is None else environ)
    cancel = cancel or CancelToken()
    started = time.perf_counter()
    try:
        verified = load_manifest(manifest, allow_modified=options.allow_modified)
    except ManifestError as err:
        return RunOutcome("failed", err.exit_code, error=str(err))
    pipeline = verified.pipeline_name

    def failed(code: int, error: str) -> RunOutcome:
        duration = round((time.perf_counter() - started) * 1000)
        return RunOutcome("failed", code, pipeline=pipeline, error=error, duration_ms=duration)

    project = Path(
        options.project_dir or run_project_dir(Path(manifest), env, options.connections, Path.cwd())
    ).resolve()
    redactor = Redactor()
    redactor.register_all(port.secrets)
    try:
        resolver = ConnectionResolver(
            connections_file(options.connections, env, project),
            redactor=redactor,
            secrets_file=options.secrets_file,
            dotenv=project / ".env",
            environ=env,
            validation=validation_mode(options.validation, env),
        )
        refs = list(dict.fromkeys(s.connection for s in verified.steps if s.connection))
        connections = sandbox_connections(resolver, refs)
        if port.remote:
            _refuse_local_hosts(resolver, refs, port.name)
        files = project_files(verified, resolver, project)
    except ConfigurationError as err:
        return failed(ExitCode.CONFIGURATION, redactor.redact(str(err)))
    stream = _Stream(project, options.run_dir, observer, redactor)
    try:
        outcome = _drive(port, verified, connections, files, options, stream, cancel, wheel)
    except SandboxError as err:
        code = ExitCode.CONFIGURATION if err.configuration else ExitCode.INTERNAL
        outcome = failed(code, redactor.redact(f"{port.name}: {err}"))
        if cancel.cancelled:  # the cancel killed the sandbox under the step that failed
            outcome = _cancelled(cancel, pipeline)
        if stream.paths is not None:  # the run had started: its folder says how it ended
            _write_status(stream.paths, outcome.status, outcome.exit_code, outcome.error or "")
            outcome = replace(outcome, run_id=stream.paths.run_id, run_dir=stream.paths.root)
    finally:
        stream.close()
        try:
            port.kill()
            unkilled = None
        except SandboxError as err:  # e2b ends it at its timeout; the user should know
            unkilled = redactor.redact(f"{err}; it ends at its timeout")
    if outcome is None:
        outcome = _outcome(stream, cancel, pipeline, started, port.name, options)
    if unkilled is not None:
        outcome = replace(
            outcome, warnings=(*outcome.warnings, unkilled), note=outcome.note or unkilled
        )
    return outcome


@dataclass(slots=True)
class _Ended:
    """How the sandboxed command ended: its exit code (None: abandoned), whether it timed out."""

    code: int | None = None
    timed_out: bool = False


def _drive(
    port: SandboxPort,
    verified: VerifiedManifest,
    connections: SandboxConnections,
    files: ProjectFiles,
    options: SandboxOptions,
    stream: _Stream,
    cancel: CancelToken,
    wheel: Callable[[], Path],
) -> RunOutcome | None:
    """Create, install, upload, run, fetch; None when the run ran (stream.ended says how), an
    outcome when it was cancelled before it started."""
    archive = _input_archive(verified, connections.text, stream.project, files)
    # Until the run starts, a cancel ends the sandbox at once (an install can take minutes).
    with cancel.on_cancel(port.kill):
        port.create(
            {"osiris_pipeline": verified.pipeline_name, "osiris_manifest": verified.fingerprint}
        )
        if cancel.cancelled:
            return _cancelled(cancel, verified.pipeline_name)
        python = port.install(wheel(), extras_for([s.driver for s in verified.steps]))
        port.put(INPUT_ARCHIVE, archive)
    argv = [python, "-m", "osiris.runtime.engines.remote", "--engine", port.name]
    argv += _flags(options) + [a for out in files.outputs for a in ("--output", out)]
    if cancel.cancelled:
        return _cancelled(cancel, verified.pipeline_name)
    process = port.start(argv, connections.environ, stream.stdout, stream.stderr_chunk)
    stream.ended = _wait(process, cancel, options.limits.timeout_s)
    stream.flush()
    if stream.ended.code is not None and stream.summary is not None:
        _fetch(port, stream, stream.project, files)
    return None


def _refuse_local_hosts(resolver: ConnectionResolver, refs: list[str], engine: str) -> None:
    for ref in refs:
        resolved = resolver.resolve(ref)
        found = local_hosts(resolved.fields)
        if found:
            raise ConfigurationError(
                f"connection @{resolved.family}.{resolved.alias}: {', '.join(found)} points at "
                f"this machine (localhost), which a {engine} sandbox cannot reach; use an "
                f"address the sandbox can reach, or --engine local"
            )


def _input_archive(
    manifest: VerifiedManifest, connections_text: str, project: Path, files: ProjectFiles
) -> bytes:
    """manifest.yaml, cfg/, the connections file (variables unresolved) and the input files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))

        add("manifest.yaml", manifest.manifest_bytes)
        for step in manifest.steps:
            add(step.cfg_path, step.cfg_bytes)
        add("osiris_connections.yaml", connections_text.encode())
        for rel in files.inputs:
            tar.add(project / rel, arcname=rel)
    return buffer.getvalue()


def _flags(options: SandboxOptions) -> list[str]:
    flags: list[str] = []
    if options.max_parallel is not None:
        flags += ["--max-parallel", str(options.max_parallel)]
    if options.validation is not None:
        flags += ["--validation", options.validation]
    if options.materialize is not None:
        flags += ["--materialize", options.materialize]
    for name, on in (
        ("--atomic", options.atomic),
        ("--allow-modified", options.allow_modified),
        ("--no-keep-intermediate", not options.keep_intermediate),
    ):
        if on:
            flags.append(name)
    return flags


def _wait(process: Process, cancel: CancelToken, timeout_s: int) -> _Ended:
    """The command's exit code (None when it had to be abandoned) and whether it timed out.
    A cancel (Ctrl-C here) is passed on as SIGINT, so the sandbox rolls back and records it."""
    deadline = time.monotonic() + timeout_s
    interrupted_at: float | None = None
    timed_out = False
    while True:
        code = process.wait(POLL_SECONDS)
        if code is not None:
            return _Ended(code, timed_out)
        now = time.monotonic()
        if interrupted_at is None and (cancel.cancelled or now > deadline):
            timed_out = not cancel.cancelled
            interrupted_at = now
            try:
                process.interrupt()
            except SandboxError:
                return _Ended(None, timed_out)
        if interrupted_at is not None and now - interrupted_at > INTERRUPT_GRACE_SECONDS:
            return _Ended(None, timed_out)


def _fetch(port: SandboxPort, stream: _Stream, project: Path, files: ProjectFiles) -> None:
    """The records into the local run directory, the written files into the project."""
    data = port.get(OUTPUT_ARCHIVE)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name.startswith(PROJECT_MEMBER):
                rel = name[len(PROJECT_MEMBER) :]
                if rel in files.outputs or any(rel.startswith(o + "/") for o in files.outputs):
                    member.name = rel
                    tar.extract(member, project, filter="data")
            elif name == RUNS_MEMBER.rstrip("/") or name.startswith(RUNS_MEMBER):
                if stream.paths is None:
                    continue
                rel = name[len(RUNS_MEMBER) :] if name.startswith(RUNS_MEMBER) else ""
                if not rel:
                    continue
                member.name = rel
                tar.extract(member, stream.paths.root, filter="data")


def _cancelled(cancel: CancelToken, pipeline: str) -> RunOutcome:
    """Cancelled before the run started in the sandbox: nothing ran, no records."""
    return RunOutcome("cancelled", cancel.exit_code, pipeline=pipeline, error=cancel.describe())


def _outcome(
    stream: _Stream,
    cancel: CancelToken,
    pipeline: str,
    started: float,
    engine: str,
    options: SandboxOptions,
) -> RunOutcome:
    duration = round((time.perf_counter() - started) * 1000)
    code, timed_out = stream.ended.code, stream.ended.timed_out
    paths = stream.paths
    run_id = paths.run_id if paths else None
    run_dir = paths.root if paths else None
    summary = stream.summary
    if summary is None or code is None:
        error: str | None
        if cancel.cancelled and not timed_out:
            status, exit_code, error = (
                "cancelled",
                cancel.exit_code,
                cancel.describe() + "; the sandbox was killed",
            )
        elif timed_out:
            status, exit_code = "failed", ExitCode.RUN_FAILED
            error = f"the run did not finish within {options.limits.timeout_s} s; the sandbox was killed"
        else:
            status, exit_code = "failed", ExitCode.INTERNAL
            tail = stream.error or (stream.stderr[-1] if stream.stderr else f"exit code {code}")
            error = f"{engine}: the sandboxed run ended without a result: {tail}"
        if paths is not None:
            _write_status(paths, status, exit_code, error)
        return RunOutcome(
            status, exit_code, run_id, run_dir, pipeline, error=error, duration_ms=duration
        )
    remote_dir = str(summary.get("run_dir") or "")
    error = summary.get("error")
    if isinstance(error, str) and remote_dir and run_dir is not None:
        error = error.replace(remote_dir, str(run_dir))
    status = str(summary.get("status"))
    exit_code = int(summary.get("exit_code", code))
    if status == "cancelled":
        exit_code = cancel.exit_code if cancel.cancelled else exit_code
    if timed_out:
        status, exit_code = "failed", ExitCode.RUN_FAILED
        error = f"the run did not finish within {options.limits.timeout_s} s; it was cancelled"
    if stream.error is not None and exit_code == 0:
        status, exit_code, error = "failed", ExitCode.CONFIGURATION, stream.error
    steps = tuple(
        StepOutcome(
            step_id=s["id"],
            driver=s["driver"],
            role=s["role"],
            status=s["status"],
            rows_in=s["rows_in"],
            rows_out=s["rows_out"],
            bytes=s["bytes"],
            duration_ms=s["duration_ms"],
            error=s["error"],
        )
        for s in summary.get("steps") or []
    )
    return RunOutcome(
        status,
        exit_code,
        run_id,
        run_dir,
        summary.get("pipeline") or pipeline,
        steps=steps,
        error=error,
        failed_step=summary.get("failed_step"),
        duration_ms=duration,
        note=summary.get("note"),
    )


def _write_status(paths: RunPaths, status: str, exit_code: int, error: str) -> None:
    """status.json for a run whose sandbox could not deliver its own records."""
    from osiris.runtime.events import write_json

    if not paths.status.exists():
        write_json(
            paths.status,
            {"run_id": paths.run_id, "status": status, "exit_code": exit_code, "error": error},
        )


def sandbox_options(args: Any) -> SandboxOptions:
    """SandboxOptions from the flags of add_run_arguments (oml-run, osiris run)."""
    limits = Limits(
        timeout_s=args.e2b_timeout or Limits().timeout_s,
        cpu=args.e2b_cpu,
        memory_mib=args.e2b_memory,
        template=args.e2b_template,
    )
    max_parallel = args.max_parallel
    if max_parallel is None and limits.cpu is not None:
        max_parallel = max(1, limits.cpu)
    return SandboxOptions(
        connections=args.connections,
        secrets_file=args.secrets_file,
        project_dir=args.project_dir,
        run_dir=args.run_dir,
        allow_modified=args.allow_modified,
        keep_intermediate=not args.no_keep_intermediate,
        max_parallel=max_parallel,
        validation=args.validation,
        materialize=args.materialize,
        atomic=args.atomic,
        limits=limits,
    )


E2B_KEY = "E2B_API_KEY"


def e2b_api_key(environ: Mapping[str, str], secrets_file: Path | None) -> str:
    """E2B_API_KEY from the environment, else from --secrets-file; ConfigurationError without."""
    from osiris.runtime.secrets import read_dotenv

    key = environ.get(E2B_KEY) or (read_dotenv(secrets_file).get(E2B_KEY) if secrets_file else None)
    if not key:
        raise ConfigurationError(
            f"--engine e2b needs {E2B_KEY}: set it in the environment or in the --secrets-file "
            "(create a key at https://e2b.dev/dashboard)"
        )
    return key
