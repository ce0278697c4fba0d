"""Incremental state: each extractor's highest cursor value, kept in the project and advanced only after a successful run."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_DIR = Path(".osiris") / "state"
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class StateError(Exception):
    """A state file that cannot be read or written (message names the file, never a value)."""


def _part(name: str) -> str:
    """A pipeline or step name as one path component (ids are identifiers; anything else is
    refused rather than allowed to climb out of the state folder)."""
    if not _SAFE.match(name) or name in (".", ".."):
        raise StateError(f"name {name!r} cannot be a state file name")
    return name


def state_dir(project: Path, pipeline: str | None = None) -> Path:
    """<project>/.osiris/state, or one pipeline's folder in it."""
    root = project / STATE_DIR
    return root if pipeline is None else root / _part(pipeline)


def state_path(project: Path, pipeline: str, step: str) -> Path:
    """<project>/.osiris/state/<pipeline>/<step>.json."""
    return state_dir(project, pipeline) / f"{_part(step)}.json"


@dataclass(frozen=True, slots=True)
class CursorState:
    """What a step's state file holds: the cursor it follows and the highest value seen."""

    cursor: str  # the cursor_path or cursor_column it was recorded for
    last_value: Any
    # an API extractor's columns and their kinds, so a run that finds nothing new still has them
    columns: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"cursor": self.cursor, "last_value": self.last_value}
        if self.columns:
            doc["columns"] = [list(c) for c in self.columns]
        return doc


def read_state(path: Path) -> CursorState | None:
    """The state in a file; None when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateError(f"cannot read incremental state {path}: {err.strerror}") from None
    try:
        doc = json.loads(text)
        columns = tuple((str(n), str(k)) for n, k in doc.get("columns") or ())
        return CursorState(str(doc["cursor"]), doc["last_value"], columns)
    except (ValueError, KeyError, TypeError):
        raise StateError(
            f"incremental state {path} is not valid; fix it or run `osiris state reset`"
        ) from None


def write_state(path: Path, state: CursorState, run_id: str | None = None) -> None:
    """Replace the file atomically (temp file + rename in the same folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**state.as_json(), "run_id": run_id}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out, sort_keys=True, indent=2, default=str)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PendingStates:
    """The new cursor values of a run's steps, held until the whole run has succeeded."""

    def __init__(self, project: Path, pipeline: str) -> None:
        self.project = project
        self.pipeline = pipeline
        self._pending: dict[str, CursorState] = {}
        self._lock = threading.Lock()

    def path(self, step: str) -> Path:
        return state_path(self.project, self.pipeline, step)

    def load(self, step: str) -> CursorState | None:
        return read_state(self.path(step))

    def hold(self, step: str, state: CursorState) -> None:
        with self._lock:
            self._pending[step] = state

    def commit(self, run_id: str | None = None) -> Mapping[str, CursorState]:
        """Write every held state (the run succeeded); returns what was written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for step, state in sorted(pending.items()):
            write_state(self.path(step), state, run_id)
        return pending

    def discard(self) -> None:
        with self._lock:
            self._pending.clear()


class CarriedState:
    """A step's incremental state where the step runs away from the run (a partition, a Dask
    task): the state the client read, and the one the step holds, which goes back to the
    client (committed there only if the whole run succeeds)."""

    def __init__(self, loaded: CursorState | StateError | None) -> None:
        self.loaded = loaded
        self.held: CursorState | None = None

    def load(self, step: str) -> CursorState | None:
        if isinstance(self.loaded, StateError):
            raise self.loaded
        return self.loaded

    def hold(self, step: str, state: CursorState) -> None:
        self.held = state


@dataclass(frozen=True, slots=True)
class StoredState:
    """One state file, for `osiris state show`: its state, or why it cannot be read."""

    pipeline: str
    step: str
    path: Path
    state: CursorState | None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pipeline": self.pipeline, "step": self.step, "path": str(self.path)}
        if self.state is not None:
            out.update(cursor=self.state.cursor, last_value=self.state.last_value)
        if self.problem is not None:
            out["problem"] = self.problem
        return out


def list_states(project: Path, pipeline: str | None = None) -> list[StoredState]:
    """The project's state files (one pipeline's, when named), by pipeline then step."""
    root = state_dir(project)
    folders = [state_dir(project, pipeline)] if pipeline else sorted(root.glob("*"))
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                found.append(StoredState(folder.name, path.stem, path, read_state(path)))
            except StateError as err:
                found.append(StoredState(folder.name, path.stem, path, None, str(err)))
    return found


def reset_states(project: Path, pipeline: str, step: str | None = None) -> list[Path]:
    """Delete a pipeline's state files (one step's, when named): the next run starts from
    initial_value. Returns the files removed."""
    paths = (
        [state_path(project, pipeline, step)]
        if step
        else sorted(state_dir(project, pipeline).glob("*.json"))
    )
    removed = []
    for path in paths:
        if path.exists():
            path.unlink()
            removed.append(path)
    folder = state_dir(project, pipeline)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return removed
