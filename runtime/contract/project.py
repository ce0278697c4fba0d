"""The project root and the connections file: one rule for check, compile, run and the editor."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

CONNECTIONS_FILE = "osiris_connections.yaml"
PROJECT_FILE = "osiris.yaml"
CONNECTIONS_ENV = "OSIRIS_CONNECTIONS"
_MARKERS = (CONNECTIONS_FILE, PROJECT_FILE)


def find_project_root(start: Path) -> Path | None:
    """The nearest directory, from start (a file's folder, or a folder) upwards, that holds
    osiris_connections.yaml or osiris.yaml; None when there is none."""
    here = start.absolute()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        if any((folder / marker).is_file() for marker in _MARKERS):
            return folder
    return None


def project_dir(start: Path | None = None) -> Path:
    """The project root for start (default: the current directory), else start's own folder."""
    here = (start or Path.cwd()).absolute()
    found = find_project_root(here)
    if found is not None:
        return found
    return here if here.is_dir() else here.parent


def run_project_dir(
    start: Path, environ: Mapping[str, str], connections: Path | str | None, fallback: Path
) -> Path:
    """The project root of a run of start (a pipeline, or a compiled manifest or its folder),
    absolute: the nearest folder holding osiris_connections.yaml or osiris.yaml, walking up from
    start; else, when a connections file is named (--connections, $OSIRIS_CONNECTIONS), its
    folder; else project_dir(fallback). --project-dir, when given, replaces all of this."""
    found = find_project_root(start)
    if found is not None:
        return found
    named = connections or environ.get(CONNECTIONS_ENV)
    if named:
        return Path(named).absolute().parent
    return project_dir(fallback)


def connections_file(
    explicit: Path | str | None, environ: Mapping[str, str], start: Path | None = None
) -> Path | None:
    """--connections FILE, else $OSIRIS_CONNECTIONS, else the project root's
    osiris_connections.yaml (walking up from start, default the current directory); None when
    none of them names a file. An explicit file is returned even when it does not exist, so
    that the caller can say so."""
    if explicit:
        return Path(explicit)
    configured = environ.get(CONNECTIONS_ENV)
    if configured:
        return Path(configured)
    root = find_project_root(start or Path.cwd())
    return (
        root / CONNECTIONS_FILE
        if root is not None and (root / CONNECTIONS_FILE).is_file()
        else None
    )
