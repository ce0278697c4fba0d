"""The run directory: unique sortable run ids and the layout of runs/<run_id>/."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from osiris.runtime.contract.manifest import MANIFEST_FILE

RUNS_DIR = "runs"
EVENTS_FILE = "events.jsonl"
METRICS_FILE = "metrics.json"
STATUS_FILE = "status.json"
LOG_FILE = "run.log"
PROGRESS_FILE = "progress.jsonl"
LOCK_FILE = ".lock"
DATABASE_FILE = "run.duckdb"


def new_run_id(now: datetime | None = None) -> str:
    """UTC timestamp + random suffix, e.g. 20261125T064512Z-3f9a1c: sorts by start time."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where each artifact of one run lives."""

    run_id: str
    root: Path

    @property
    def events(self) -> Path:
        return self.root / EVENTS_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def status(self) -> Path:
        return self.root / STATUS_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def progress(self) -> Path:
        return self.root / PROGRESS_FILE

    @property
    def lock(self) -> Path:
        """Held (flock) by the live run for its whole life: a run folder whose lock can be
        taken and that has no status.json belongs to a run that died."""
        return self.root / LOCK_FILE

    @property
    def database(self) -> Path:
        return self.root / DATABASE_FILE

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_FILE

    def artifacts(self, step_id: str) -> Path:
        return self.root / "artifacts" / step_id


def create_run_dir(project_dir: Path, run_dir: Path | None = None) -> RunPaths:
    """Make a fresh runs/<run_id>/ under project_dir, or use run_dir (must be new or empty)."""
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if any(run_dir.iterdir()):
            raise FileExistsError(f"run directory {run_dir} is not empty")
        return RunPaths(new_run_id(), run_dir.resolve())
    parent = project_dir / RUNS_DIR
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = new_run_id()
        try:
            (parent / run_id).mkdir()
        except FileExistsError:
            continue
        return RunPaths(run_id, (parent / run_id).resolve())
