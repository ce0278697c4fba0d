"""A run folder read back into a RunSummary: status, steps, timings, failure, params, environment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from osiris.runtime.contract.manifest import MANIFEST_FILE
from osiris.runtime.contract.scratch import take_lock
from osiris.runtime.rundir import (
    EVENTS_FILE,
    LOCK_FILE,
    METRICS_FILE,
    PROGRESS_FILE,
    STATUS_FILE,
)


@dataclass(frozen=True, slots=True)
class StepSummary:
    """One step of a run as its records tell it; times are seconds since the run started."""

    id: str
    driver: str
    role: str
    status: str  # ok | failed | skipped | cancelled | running | not_run
    rows_in: int = 0
    rows_out: int = 0
    bytes: int = 0
    duration_ms: int = 0
    rows_per_s: float = 0.0
    start: float | None = None
    end: float | None = None
    error: str | None = None
    detail: str | None = None
    needs: tuple[str, ...] = ()
    # (seconds since the run started, running row total): the step's progress samples
    progress: tuple[tuple[float, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "driver": self.driver,
            "role": self.role,
            "status": self.status,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "bytes": self.bytes,
            "duration_ms": self.duration_ms,
            "rows_per_s": self.rows_per_s,
            "start_s": self.start,
            "end_s": self.end,
            "error": self.error,
            "detail": self.detail,
            "needs": list(self.needs),
        }


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run folder says about its run."""

    run_id: str
    folder: Path
    pipeline: str | None
    status: str  # ok | failed | cancelled | running | interrupted
    exit_code: int | None
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None
    steps: tuple[StepSummary, ...] = ()
    failed_step: str | None = None
    error: str | None = None
    error_detail: str | None = None
    note: str | None = None
    warnings: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    manifest_fingerprint: str | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    # (upstream, downstream, kind): kind "data", or "stream" / "view" when the plan fused them
    edges: tuple[tuple[str, str, str], ...] = ()

    @property
    def rows_moved(self) -> int:
        """Rows the run's writers wrote."""
        return sum(s.rows_out for s in self.steps if s.role == "writer" and s.status == "ok")

    @property
    def max_parallel_seen(self) -> int:
        """The most steps that ran at the same moment."""
        moments = sorted(
            [(s.start, 1) for s in self.steps if s.start is not None and s.end is not None]
            + [(s.end, -1) for s in self.steps if s.start is not None and s.end is not None]
        )
        best = running = 0
        for _, change in moments:
            running += change
            best = max(best, running)
        return best

    def to_dict(self, *, steps: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "run_dir": str(self.folder),
            "pipeline": self.pipeline,
            "status": self.status,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            "rows_moved": self.rows_moved,
            "failed_step": self.failed_step,
            "error": self.error,
        }
        if steps:
            data.update(
                error_detail=self.error_detail,
                note=self.note,
                warnings=list(self.warnings),
                params=dict(self.params),
                manifest_fingerprint=self.manifest_fingerprint,
                environment=dict(self.environment),
                steps=[s.to_dict() for s in self.steps],
                edges=[list(e) for e in self.edges],
            )
        return data


def parse_ts(text: Any) -> datetime | None:
    """An ISO-8601 timestamp of the records (…Z), or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a record file; {} when it is missing or unreadable (a run cut short)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a .jsonl record; a line cut short by a crash is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def is_running(folder: Path) -> bool:
    """A live run holds the flock on its folder's lock file."""
    lock = folder / LOCK_FILE
    if not lock.is_file():
        return False
    fd = take_lock(lock)
    if fd is None:
        return True
    import os

    os.close(fd)
    return False


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        text = (folder / MANIFEST_FILE).read_text(encoding="utf-8")
        value = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def read_run(folder: Path) -> RunSummary:
    """Summarise one run folder from whatever records it has."""
    status = read_json(folder / STATUS_FILE)
    metrics = read_json(folder / METRICS_FILE)
    events = read_lines(folder / EVENTS_FILE)
    manifest = _manifest(folder)
    started_event = next((e for e in events if e.get("event") == "run_started"), {})
    started = parse_ts(status.get("started_at")) or parse_ts(
        events[0].get("ts") if events else None
    )

    def offset(ts: Any) -> float | None:
        moment = parse_ts(ts)
        if moment is None or started is None:
            return None
        return round((moment - started).total_seconds(), 3)

    listed: list[dict[str, Any]] = [
        s
        for s in started_event.get("steps", []) or manifest.get("steps", [])
        if isinstance(s, dict)
    ]
    needs = {
        str(s.get("id")): tuple(str(n) for n in s.get("needs") or ())
        for s in manifest.get("steps", [])
        if isinstance(s, dict)
    }
    by_step: dict[str, dict[str, Any]] = {}
    for event in events:
        step = event.get("step")
        if isinstance(step, str):
            by_step.setdefault(step, {})[str(event.get("event"))] = event
    samples: dict[str, list[tuple[float, int]]] = {}
    for sample in read_lines(folder / PROGRESS_FILE):
        at = offset(sample.get("ts"))
        if isinstance(sample.get("step"), str) and at is not None:
            samples.setdefault(sample["step"], []).append((at, _int(sample.get("rows"))))
    measured: dict[str, Any] = metrics["steps"] if isinstance(metrics.get("steps"), dict) else {}
    running = not status and is_running(folder)
    steps = []
    for entry in listed:
        step_id = str(entry.get("id"))
        seen = by_step.get(step_id, {})
        numbers = measured.get(step_id) or seen.get("step_finished") or {}
        began = seen.get("step_started")
        ended = next(
            (
                seen[name]
                for name in ("step_finished", "step_failed", "step_cancelled")
                if name in seen
            ),
            None,
        )
        state = (
            "ok"
            if "step_finished" in seen
            else "failed"
            if "step_failed" in seen
            else "cancelled"
            if "step_cancelled" in seen
            else "skipped"
            if "step_skipped" in seen
            else ("running" if running else "not_run")
            if began
            else "not_run"
        )
        if isinstance(numbers, dict) and numbers.get("status") in ("ok", "failed", "cancelled"):
            state = str(numbers["status"]) if state in ("running", "not_run") else state
        failure = seen.get("step_failed") or {}
        reason = seen.get("step_skipped") or seen.get("step_cancelled") or {}
        rate = numbers.get("rows_per_s", 0) if isinstance(numbers, dict) else 0
        steps.append(
            StepSummary(
                id=step_id,
                driver=str(entry.get("driver") or ""),
                role=str(entry.get("role") or ""),
                status=state,
                rows_in=_int(numbers.get("rows_in")),
                rows_out=_int(numbers.get("rows_out")),
                bytes=_int(numbers.get("bytes")),
                duration_ms=_int(numbers.get("duration_ms"))
                or _int((ended or {}).get("duration_ms")),
                rows_per_s=float(rate) if isinstance(rate, int | float) else 0.0,
                start=offset(began.get("ts")) if began else None,
                end=offset(ended.get("ts")) if ended else None,
                error=failure.get("error") or reason.get("reason"),
                detail=failure.get("detail"),
                needs=needs.get(step_id, ()),
                progress=tuple(samples.get(step_id, ())),
            )
        )
    fused: dict[tuple[str, str], str] = {}
    for unit in started_event.get("units", []) or []:
        ids = [str(i) for i in unit.get("steps", [])] if isinstance(unit, dict) else []
        kind = "stream" if unit.get("kind") == "stream" else "view"
        if unit.get("kind") in ("stream", "view_chain"):
            for up, down in pairwise(ids):
                fused[(up, down)] = kind
    edges = tuple((up, s.id, fused.get((up, s.id), "data")) for s in steps for up in s.needs)
    env = dict(started_event.get("environment") or {})
    for key in ("engine", "max_parallel", "materialize"):
        if key in started_event:
            env[key] = started_event[key]
    finished = next((e for e in events if e.get("event") == "run_finished"), {})
    run_status = status.get("status") or finished.get("status")
    if not run_status:
        run_status = "running" if running else "interrupted"
    return RunSummary(
        run_id=str(status.get("run_id") or started_event.get("run_id") or folder.name),
        folder=folder,
        pipeline=status.get("pipeline")
        or started_event.get("pipeline")
        or (manifest.get("pipeline") or {}).get("name"),
        status=str(run_status),
        exit_code=status.get("exit_code", finished.get("exit_code")),
        started_at=status.get("started_at") or (events[0].get("ts") if events else None),
        finished_at=status.get("finished_at") or finished.get("ts"),
        duration_ms=status.get("duration_ms", finished.get("duration_ms")),
        steps=tuple(steps),
        failed_step=status.get("failed_step") or finished.get("failed_step"),
        error=status.get("error") or finished.get("error"),
        error_detail=status.get("error_detail"),
        note=status.get("note"),
        warnings=tuple(str(w) for w in status.get("warnings") or ()),
        params=manifest["params"] if isinstance(manifest.get("params"), dict) else {},
        manifest_fingerprint=status.get("manifest_fingerprint")
        or started_event.get("manifest_fingerprint"),
        environment=env,
        edges=edges,
    )


@dataclass(frozen=True, slots=True)
class StepChange:
    """One step in two runs: rows out and seconds in each (None: not in that run)."""

    id: str
    status: tuple[str | None, str | None]
    rows_out: tuple[int | None, int | None]
    duration_ms: tuple[int | None, int | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": list(self.status),
            "rows_out": list(self.rows_out),
            "duration_ms": list(self.duration_ms),
        }


def diff_runs(a: RunSummary, b: RunSummary) -> tuple[StepChange, ...]:
    """Per step of either run (a's order, then b's new steps): what changed from a to b."""
    left = {s.id: s for s in a.steps}
    right = {s.id: s for s in b.steps}
    order = [s.id for s in a.steps] + [s.id for s in b.steps if s.id not in left]
    changes = []
    for step_id in order:
        x, y = left.get(step_id), right.get(step_id)
        changes.append(
            StepChange(
                step_id,
                (x.status if x else None, y.status if y else None),
                (x.rows_out if x else None, y.rows_out if y else None),
                (x.duration_ms if x else None, y.duration_ms if y else None),
            )
        )
    return tuple(changes)
