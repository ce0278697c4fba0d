"""A run's leftovers: its scratch directory, the ledger of what it makes elsewhere, and the sweep.

Temp files go in the run's scratch directory, `$TMPDIR/osiris-<run_id>/` (runtime.contract.scratch).
What must live elsewhere - a MySQL staging table, a hidden `.part` file beside a file target - is
first appended to `runs/<run_id>/debris.jsonl` (and fsynced), then created, with the run id in its
name; it is marked done once removed or published. The live run holds an flock on its ledger, as
on its scratch directory. When a run starts, it sweeps what dead runs left: unlocked scratch
directories in the temp dir, and everything still listed in the project's unlocked ledgers.

A partition that runs elsewhere (a thread, a Dask worker on another machine) has no ledger: the
client names and lists what it will make (part tables) before the job is sent, and the partition's
temp files go in a locked scratch directory of its own on the machine that runs it (PartScratch).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from osiris.runtime.contract.scratch import (
    PREFIX,
    ScratchDir,
    hold_lock,
    remove_path,
    sweep_scratch,
    take_lock,
)
from osiris.runtime.drivers.base import ConnectionFailure, DriverError
from osiris.runtime.drivers.registry import load_driver
from osiris.runtime.errors import ConfigurationError

LEDGER_FILE = "debris.jsonl"


def run_tag(run_id: str) -> str:
    """The run id as it appears in names: 20261125T064512Z-3f9a1c -> 20261125T064512Z_3f9a1c."""
    return run_id.replace("-", "_")


@dataclass(frozen=True, slots=True)
class Leftover:
    """One ledger entry: a table (kind "table") or a file or directory (kind "path")."""

    id: int
    kind: str
    path: str | None = None
    connection: str | None = None  # the connection reference, e.g. @mysql.main
    driver: str | None = None  # the driver that made it, which can drop it
    schema: str | None = None
    name: str | None = None

    def describe(self) -> str:
        if self.kind == "table":
            where = f"{self.schema}." if self.schema else ""
            return f"staging table {where}{self.name} ({self.connection})"
        return f"file {self.path}"


# Removes one leftover, raising when it cannot (the entry then stays in the ledger).
Remover = Callable[[Leftover], None]


def remover(connection_fields: Callable[[str], Mapping[str, Any]]) -> Remover:
    """Remove paths directly and tables through their driver's drop_table, on a connection
    resolved by the current run (connection_fields: reference -> resolved fields)."""

    unreachable: dict[str, Exception] = {}  # tried once per reference: a timeout costs seconds

    def remove(leftover: Leftover) -> None:
        if leftover.kind == "path" and leftover.path:
            remove_path(Path(leftover.path))
            return
        ref = leftover.connection
        if leftover.kind != "table" or not (ref and leftover.driver):
            raise DriverError(f"ledger entry {leftover.id} is incomplete")
        if ref in unreachable:
            raise unreachable[ref]
        drop = getattr(load_driver(leftover.driver), "drop_table", None)
        if drop is None:
            raise DriverError(f"driver {leftover.driver} cannot drop tables")
        try:
            drop(connection_fields(ref), leftover.schema, leftover.name)
        except (ConfigurationError, ConnectionFailure) as err:
            unreachable[ref] = err
            raise

    return remove


@dataclass(frozen=True, slots=True)
class Swept:
    """What was removed (and what could not be) of one dead run."""

    run_id: str
    removed: tuple[str, ...]
    failed: tuple[str, ...] = ()  # "<what>: <why>", still listed in its ledger

    def summary(self) -> str:
        text = f"removed {len(self.removed)} leftover(s) of run {self.run_id}"
        if self.removed:
            text += ": " + ", ".join(self.removed)
        if self.failed:
            text += f"; could not remove {len(self.failed)}: " + ", ".join(self.failed)
        return text


class RunDebris:
    """The live run's scratch directory and ledger (thread-safe: steps run in parallel)."""

    def __init__(self, run_id: str, run_root: Path, temp_dir: Path | None = None) -> None:
        self.run_id = run_id
        self.tag = run_tag(run_id)
        self.ledger = run_root / LEDGER_FILE
        self._scratch = ScratchDir(run_id, temp_dir)
        self._fd: int | None = None  # the ledger, created and locked at its first entry
        self._listed: dict[int, Leftover] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    @property
    def scratch_dir(self) -> Path:
        return self._scratch.path

    def track(self, kind: str, **fields: str | None) -> int:
        """List a leftover-to-be before it is made; returns its id for untrack()."""
        with self._lock:
            while self._fd is None:
                try:
                    self._fd = hold_lock(self.ledger)
                except FileNotFoundError:  # a sweep took the new, empty file: make it again
                    continue
            leftover = Leftover(self._next_id, kind, **fields)
            self._next_id += 1
            self._append({"op": "track", **asdict(leftover)}, sync=True)
            self._listed[leftover.id] = leftover
            return leftover.id

    def untrack(self, entry: int) -> None:
        """The leftover was removed or published. Not synced: removing it twice is harmless."""
        with self._lock:
            if self._listed.pop(entry, None) is not None:
                self._append({"op": "done", "id": entry}, sync=False)

    def _append(self, record: dict[str, Any], *, sync: bool) -> None:
        assert self._fd is not None
        os.write(self._fd, (json.dumps(record) + "\n").encode())
        if sync:
            os.fsync(self._fd)

    def finish(self, remove: Remover) -> Swept:
        """At the end of the run: remove what is still listed (a cleanup that failed), then
        the ledger, unless something could not be removed (a later run retries it)."""
        with self._lock:
            listed = list(self._listed.values())
        swept, kept = _remove_all(self.run_id, listed, remove)
        with self._lock:
            for leftover in listed:
                if leftover not in kept:
                    self._listed.pop(leftover.id, None)
        return swept

    def close(self) -> None:
        """Remove the scratch directory and release the ledger (deleted when nothing is listed)."""
        self._scratch.close()
        with self._lock:
            if self._fd is not None:
                if not self._listed:
                    self.ledger.unlink(missing_ok=True)
                os.close(self._fd)
                self._fd = None


class Ledger(Protocol):
    """Where a step's context lists what it makes outside its scratch directory: the run's
    RunDebris, a partition's PartScratch (which refuses), or a step task's view of the
    client's ledger on another machine."""

    @property
    def run_id(self) -> str: ...

    @property
    def scratch_dir(self) -> Path: ...

    @property
    def tag(self) -> str: ...

    def track(self, kind: str, **fields: str | None) -> int: ...

    def untrack(self, entry: int) -> None: ...


PART_SCRATCH = re.compile(r"-part\d+-[0-9a-f]+$")  # the suffix of a partition's scratch name


class PartScratch:
    """A partition's side of the run on whichever process runs it: `$TMPDIR/osiris-<run_id>-
    part<i>-<hex>/`, locked by that process (a worker that dies leaves it to the next sweep on
    that machine), and no ledger. The ledger is the client's: what a partition makes outside
    this directory is named and listed by the client before the job is sent (part tables are),
    so a worker-side driver that tries to list something is a bug, and fails loudly."""

    def __init__(self, run_id: str, index: int, temp_dir: Path | None = None) -> None:
        self.run_id = run_id
        self.tag = run_tag(run_id)
        self._scratch = ScratchDir(f"{run_id}-part{index}-{secrets.token_hex(3)}", temp_dir)

    @property
    def scratch_dir(self) -> Path:
        return self._scratch.path

    def track(self, kind: str, **fields: str | None) -> int:
        raise DriverError(
            f"a partition cannot list a {kind} ({fields.get('name') or fields.get('path')}) in "
            "the run's ledger from where it runs: the client names and lists it before the "
            "job is sent"
        )

    def untrack(self, entry: int) -> None:
        raise DriverError(f"a partition cannot change the run's ledger (entry {entry})")

    def close(self) -> None:
        self._scratch.close()


def _remove_all(
    run_id: str, leftovers: list[Leftover], remove: Remover
) -> tuple[Swept, list[Leftover]]:
    """Remove each leftover; the report, and the leftovers that could not be removed."""
    removed: list[str] = []
    failed: list[str] = []
    kept: list[Leftover] = []
    for leftover in leftovers:
        try:
            remove(leftover)
        except Exception as err:  # never fail a run over another's (or its own) leftovers
            failed.append(f"{leftover.describe()}: {err}")
            kept.append(leftover)
        else:
            removed.append(leftover.describe())
    return Swept(run_id, tuple(removed), tuple(failed)), kept


def read_ledger(path: Path) -> list[Leftover]:
    """The entries listed and not marked done (a line cut short by a crash is ignored)."""
    listed: dict[int, Leftover] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            if record.pop("op") == "track":
                listed[record["id"]] = Leftover(**record)
            else:
                listed.pop(record["id"], None)
        except (ValueError, KeyError, TypeError):
            continue
    return list(listed.values())


def sweep(
    runs_dir: Path, own_run_id: str, remove: Remover, temp_dir: Path | None = None
) -> list[Swept]:
    """Remove dead runs' leftovers: the listed things of each unlocked runs_dir/*/debris.jsonl
    (then the ledger, if all went), and unlocked scratch directories in the temp dir."""
    swept: list[Swept] = []
    for ledger in sorted(runs_dir.glob(f"*/{LEDGER_FILE}")):
        run_id = ledger.parent.name
        if run_id == own_run_id:
            continue
        fd = take_lock(ledger)
        if fd is None:  # its run is alive
            continue
        try:
            result, kept = _remove_all(run_id, read_ledger(ledger), remove)
            if not kept:
                ledger.unlink(missing_ok=True)
        finally:
            os.close(fd)
        swept.append(result)
    for scratch in sweep_scratch(temp_dir):
        name = PART_SCRATCH.sub("", scratch.name.removeprefix(PREFIX))
        swept.append(Swept(name, (f"scratch directory {scratch}",)))
    return _merged(swept)


def _merged(swept: list[Swept]) -> list[Swept]:
    """One Swept per run: its ledger's things and its scratch directory together."""
    by_run: dict[str, Swept] = {}
    for item in swept:
        known = by_run.get(item.run_id)
        by_run[item.run_id] = (
            item
            if known is None
            else Swept(item.run_id, known.removed + item.removed, known.failed + item.failed)
        )
    return [item for item in by_run.values() if item.removed or item.failed]
