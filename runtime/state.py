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
