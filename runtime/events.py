"""Run records written while a run executes: events.jsonl and run.log, written as given.

Records are never rewritten after serialising: whoever puts free text into a record (an error
message, a log line, a warning) redacts it first with the run's Redactor (docs/runtime.md,
"Secrets in records")."""

from __future__ import annotations

import json
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUN_STARTED = "run_started"
STEP_STARTED = "step_started"
STEP_FINISHED = "step_finished"
STEP_FAILED = "step_failed"
STEP_SKIPPED = "step_skipped"
STEP_CANCELLED = "step_cancelled"
RUN_FINISHED = "run_finished"
PARTITION_FINISHED = "partition_finished"  # one partition of a partitioned unit, per worker
STEP_TASK_FINISHED = "step_task_finished"  # a step run as one task on a cluster: its worker
STATE_ADVANCED = "state_advanced"  # a step's incremental cursor, written once the run succeeded

EventListener = Callable[[dict[str, Any]], None]


def utc_now() -> str:
    """ISO-8601 UTC timestamp with milliseconds, e.g. 2026-11-25T06:45:12.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """Appends one JSON object per line to events.jsonl and tells listeners; thread-safe."""

    def __init__(self, path: Path, run_id: str) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._run_id = run_id
        self._lock = threading.Lock()
        self._listeners: list[EventListener] = []

    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def emit(self, event: str, step: str | None = None, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"event": event, "run_id": self._run_id, "step": step}
        record["ts"] = utc_now()
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            for listener in self._listeners:
                listener(record)
        return record

    def close(self) -> None:
        with self._lock:
            self._file.close()


class RunLog:
    """run.log: timestamped lines (messages arrive with their free text already redacted)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, message: str, step: str | None = None) -> None:
        prefix = f"{utc_now()} [{step}] " if step else f"{utc_now()} "
        with self._lock:
            for line in message.splitlines() or [""]:
                self._file.write(prefix + line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class ProgressLog:
    """progress.jsonl: sampled running row totals per step, at most one line per step per
    interval (the report draws each step's rows/s from them); the file is made at the first."""

    def __init__(self, path: Path, interval: float = 0.25) -> None:
        self._path = path
        self._interval = interval
        self._file: Any = None
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def record(self, step_id: str, rows: int) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(step_id)
            if last is not None and now - last < self._interval:
                return
            self._last[step_id] = now
            if self._file is None:
                self._file = self._path.open("a", encoding="utf-8")
            line = json.dumps({"ts": utc_now(), "step": step_id, "rows": rows})
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def environment() -> dict[str, Any]:
    """Where a run ran, for its records: host, platform and the versions of the libraries
    loaded (never an environment variable or anything secret)."""
    from osiris.runtime.contract.version import toolchain_version

    versions = {"osiris": toolchain_version(), "python": platform.python_version()}
    for name in ("duckdb", "pyarrow", "psycopg", "connectorx", "pymysql"):
        module = sys.modules.get(name)
        found = getattr(module, "__version__", None) if module is not None else None
        if isinstance(found, str):
            versions[name] = found
    return {"host": socket.gethostname(), "platform": platform.platform(), "versions": versions}


def write_json(path: Path, value: Any) -> None:
    """Write a JSON document atomically (temp file + rename)."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
