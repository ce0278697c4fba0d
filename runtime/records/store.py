"""The runs of a project: runs/<run_id>/ folders listed newest first, found by id or `last`,
and garbage-collected (never a live run, never one whose leftovers the next run must sweep)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from osiris.runtime.records.summary import (
    RunSummary,
    is_running,
    parse_ts,
    read_json,
    read_lines,
    read_run,
)
from osiris.runtime.rundir import EVENTS_FILE, RUNS_DIR, STATUS_FILE

LEDGER_FILE = "debris.jsonl"  # runtime.debris: what a dead run left for the next run to sweep


class RunNotFound(LookupError):
    """No run (or more than one) answers to the reference given."""


def runs_dir(project: Path) -> Path:
    return project / RUNS_DIR


def run_folders(runs: Path) -> list[Path]:
    """Every run folder under runs/, newest first (run ids sort by start time)."""
    if not runs.is_dir():
        return []
    found = [
        entry
        for entry in runs.iterdir()
        if entry.is_dir()
        and not entry.is_symlink()
        and ((entry / EVENTS_FILE).is_file() or (entry / STATUS_FILE).is_file())
    ]
    return sorted(found, key=_start_key, reverse=True)


def _start_key(folder: Path) -> tuple[str, str, str]:
    """Run ids sort by their start second; within one second, by the recorded start time."""
    status = read_json(folder / STATUS_FILE)
    started = status.get("started_at")
    if not isinstance(started, str):
        first = read_lines(folder / EVENTS_FILE)[:1]
        started = str(first[0].get("ts", "")) if first else ""
    return (folder.name[:16], started, folder.name)


def list_runs(
    runs: Path, *, limit: int | None = None, status: str | None = None
) -> list[RunSummary]:
    found = []
    for folder in run_folders(runs):
        summary = read_run(folder)
        if status is None or summary.status == status:
            found.append(summary)
            if limit is not None and len(found) >= limit:
                break
    return found


def find_run(runs: Path, ref: str) -> Path:
    """`last`, a run id, a unique prefix of one, or the path of a run folder (a run given
    --run-dir elsewhere)."""
    given = Path(ref)
    if given.is_dir() and ((given / EVENTS_FILE).is_file() or (given / STATUS_FILE).is_file()):
        return given.absolute()
    folders = run_folders(runs)
    if ref == "last":
        if not folders:
            raise RunNotFound(f"no runs in {runs}")
        return folders[0]
    exact = [f for f in folders if f.name == ref]
    if exact:
        return exact[0]
    matches = [f for f in folders if f.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(f.name for f in matches[:5])
        raise RunNotFound(f"run id {ref!r} is ambiguous in {runs}: {names}")
    raise RunNotFound(f"no run {ref!r} in {runs} (`osiris runs list` shows them)")


def folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total


@dataclass(frozen=True, slots=True)
class GcEntry:
    """A run gc looked at: deleted (or would be, with --dry-run) or kept, and why."""

    run_id: str
    folder: Path
    delete: bool
    reason: str
    bytes: int

    def to_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.folder),
            "delete": self.delete,
            "reason": self.reason,
            "bytes": self.bytes,
        }


def _started(folder: Path, summary: RunSummary) -> datetime | None:
    moment = parse_ts(summary.started_at)
    if moment is not None:
        return moment
    try:
        return datetime.strptime(folder.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(folder.stat().st_mtime, UTC)


def plan_gc(
    runs: Path,
    *,
    keep: int | None,
    older_than_days: float | None,
    now: datetime | None = None,
) -> list[GcEntry]:
    """Which runs to delete: beyond the newest `keep` and (when given) started more than
    `older_than_days` ago. A live run and a dead run with leftovers in its ledger are kept."""
    moment = now or datetime.now(UTC)
    plan = []
    for index, folder in enumerate(run_folders(runs)):
        summary = read_run(folder)
        size = folder_bytes(folder)
        started = _started(folder, summary)
        if is_running(folder):
            plan.append(GcEntry(summary.run_id, folder, False, "running", size))
            continue
        if (folder / LEDGER_FILE).is_file():
            reason = "has leftovers the next run sweeps"
            plan.append(GcEntry(summary.run_id, folder, False, reason, size))
            continue
        reasons = []
        if keep is not None:
            if index < keep:
                plan.append(
                    GcEntry(summary.run_id, folder, False, f"among the newest {keep}", size)
                )
                continue
            reasons.append(f"beyond the newest {keep}")
        if older_than_days is not None:
            if started is not None and moment - started < timedelta(days=older_than_days):
                reason = f"newer than {older_than_days:g} days"
                plan.append(GcEntry(summary.run_id, folder, False, reason, size))
                continue
            reasons.append(f"older than {older_than_days:g} days")
        plan.append(GcEntry(summary.run_id, folder, True, ", ".join(reasons), size))
    return plan


def delete_runs(plan: list[GcEntry]) -> list[GcEntry]:
    """Delete the planned folders (run.duckdb and all); the entries deleted. A run that came
    alive meanwhile is never touched."""
    done = []
    for entry in plan:
        if not entry.delete or is_running(entry.folder):
            continue
        shutil.rmtree(entry.folder, ignore_errors=True)
        if not entry.folder.exists():
            done.append(entry)
    return done
