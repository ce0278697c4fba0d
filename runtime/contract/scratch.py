"""Scratch directories in the system temp dir, locked by the live process that owns them.

`$TMPDIR/osiris-<name>/` holds `.lock`, on which its owner keeps an exclusive `flock` for its whole
life. The kernel drops the lock when the process dies, however it dies (SIGKILL included), so a
directory whose lock can be taken belongs to no live process and is swept; liveness never depends
on PIDs, which get reused. The compiler (`osiris run`'s build directory) and the runtime (a run's
temp files) share this one rule, hence it lives in the contract.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "osiris-"
LOCK_FILE = ".lock"


def hold_lock(path: Path) -> int:
    """Open path (creating it), take an exclusive flock on it and return the descriptor. Waits
    while a sweeper holds it; if the sweeper removed the file meanwhile, FileNotFoundError."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        here, held = os.stat(path), os.fstat(fd)  # FileNotFoundError when swept meanwhile
        if (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino):
            raise FileNotFoundError(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def take_lock(path: Path) -> int | None:
    """The descriptor of an existing lock file with its flock taken, or None when a live process
    holds it (or there is no such file)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_path(path: Path) -> None:
    """Delete a file or a directory tree; nothing when it is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class ScratchDir:
    """`$TMPDIR/osiris-<name>/`, private to this process until close() removes it."""

    def __init__(self, name: str, temp_dir: Path | None = None) -> None:
        self.path = Path(temp_dir or tempfile.gettempdir()) / f"{PREFIX}{name}"
        while True:
            self.path.mkdir(mode=0o700)
            try:
                self._fd: int | None = hold_lock(self.path / LOCK_FILE)
                return
            except FileNotFoundError:  # a sweep took it between mkdir and lock: make it again
                continue

    def close(self) -> None:
        """Remove the directory (still holding the lock, so no sweeper races us), then unlock."""
        if self._fd is None:
            return
        try:
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ScratchDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep_scratch(temp_dir: Path | None = None) -> list[Path]:
    """Remove every scratch directory no live process holds; return the ones removed. Entries
    without a lock file (being created this instant, or not ours) are left alone."""
    removed: list[Path] = []
    for entry in sorted(Path(temp_dir or tempfile.gettempdir()).glob(f"{PREFIX}*")):
        if entry.is_symlink() or not entry.is_dir():
            continue
        fd = take_lock(entry / LOCK_FILE)
        if fd is None:
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed
