"""The project an MCP server serves: its root, connections file, environment, and safe paths in it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from osiris.runtime.contract.project import (
    CONNECTIONS_FILE,
    PROJECT_FILE,
    connections_file,
    project_dir,
)

PIPELINE_SUFFIX = ".oml"
# Folders the toolchain owns: an assistant never writes pipelines into them.
_RESERVED_DIRS = frozenset({".osiris", ".git", "runs"})


class ToolFailure(Exception):
    """A tool cannot do what was asked; the message says why (it becomes an MCP tool error)."""


@dataclass(frozen=True, slots=True)
class Project:
    root: Path  # absolute, symlinks resolved
    environ: Mapping[str, str]
    connections_override: Path | None = None  # --connections, else $OSIRIS_CONNECTIONS / the root's

    @property
    def connections_path(self) -> Path | None:
        """Looked up on every call: the file may be created or moved while the server runs."""
        return connections_file(self.connections_override, self.environ, self.root)

    @classmethod
    def locate(
        cls,
        project: str | None,
        environ: Mapping[str, str],
        connections: str | None = None,
        cwd: Path | None = None,
    ) -> Project:
        """--project DIR (must be a folder), else the project root above the working directory."""
        if project:
            root = Path(project).expanduser()
            if not root.is_dir():
                raise ToolFailure(f"--project {project}: not a directory")
        else:
            root = project_dir(cwd or Path.cwd())
        override = Path(connections).expanduser().absolute() if connections else None
        return cls(root.resolve(), dict(environ), override)


def pipeline_target(project: Project, path: str) -> Path:
    """The absolute file `path` names inside the project, or ToolFailure saying why not: no '..',
    no absolute path outside the root, no symlink leading out, only *.oml, not in .osiris/runs/.git."""
    if not path or not path.strip():
        raise ToolFailure("path is empty; give a file name such as pipelines/orders.oml")
    if "\0" in path or any(ord(c) < 32 for c in path):
        raise ToolFailure("path contains control characters")
    parts = set(PurePosixPath(path).parts) | set(PureWindowsPath(path).parts)
    if ".." in parts:
        raise ToolFailure(f"path {path!r} contains '..'; give a path inside the project")
    raw = Path(path).expanduser()
    candidate = raw if raw.is_absolute() else project.root / raw
    if not _inside(candidate.absolute(), project.root) and not _inside(
        _resolve(candidate), project.root
    ):
        raise ToolFailure(f"path {path!r} is outside the project ({project.root})")
    if candidate.suffix != PIPELINE_SUFFIX:
        raise ToolFailure(f"path {path!r} must name a pipeline file ending in {PIPELINE_SUFFIX}")
    if candidate.name in (CONNECTIONS_FILE, PROJECT_FILE):
        raise ToolFailure(f"{candidate.name} is not a pipeline; it is never written by a tool")
    if candidate.is_symlink():
        raise ToolFailure(f"path {path!r} is a symbolic link; tools do not write through links")
    resolved = _resolve(candidate)
    if not _inside(resolved, project.root):
        raise ToolFailure(f"path {path!r} leads outside the project through a symbolic link")
    rel = resolved.relative_to(project.root)
    if rel.parts and rel.parts[0] in _RESERVED_DIRS:
        raise ToolFailure(f"path {path!r} is inside {rel.parts[0]}/, which the toolchain owns")
    if resolved.exists() and not resolved.is_file():
        raise ToolFailure(f"path {path!r} exists and is not a file")
    return resolved


def _resolve(path: Path) -> Path:
    """path with every existing symlink resolved (the part that does not exist yet kept as is)."""
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def display(project: Project, path: Path) -> str:
    """path relative to the project root, with '/' separators."""
    return path.relative_to(project.root).as_posix()
