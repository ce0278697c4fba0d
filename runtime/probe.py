"""The probe: the facts about a run's sources that the planner needs, gathered once before it runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from osiris.runtime.drivers.base import StepContext
from osiris.runtime.drivers.registry import StepDrivers
from osiris.runtime.manifest import ManifestStep
from osiris.runtime.planner import Facts

T = TypeVar("T")


def probe(
    steps: Sequence[ManifestStep],
    drivers: StepDrivers,
    context_for: Callable[[ManifestStep], StepContext],
) -> Facts:
    """Abilities of every step's driver; the size and files of sized sources (measured now, when
    the run starts); which extract -> write edges open one database file."""
    abilities = {step.id: drivers.abilities(step.id) for step in steps}
    source_bytes: dict[str, int] = {}
    source_files: dict[str, tuple[str, ...]] = {}
    database_files: dict[str, Path | None] = {}
    for step in steps:
        found = abilities[step.id]
        if not (found.sized_source or found.database_file):
            continue
        driver, ctx = drivers[step.id], context_for(step)
        if found.sized_source:
            size = _attempt(driver.source_bytes, ctx)
            readable = found.native_source and _attempt(driver.source_query, ctx)
            files = _attempt(driver.source_files, ctx) if readable else None
            if size is not None:
                source_bytes[step.id] = int(size)
            if files is not None:
                source_files[step.id] = tuple(files)
        if found.database_file:
            database_files[step.id] = _attempt(driver.database_file, ctx)
    shared = frozenset(
        (upstream, step.id)
        for step in steps
        if step.id in database_files
        for upstream in step.upstream
        if upstream in database_files
        and _same_file(database_files[upstream], database_files[step.id])
    )
    return Facts(abilities, source_bytes, source_files, shared)


def _attempt(measure: Callable[[StepContext], T], ctx: StepContext) -> T | None:
    """measure(ctx), or None when it fails: the step reports that itself when it runs."""
    try:
        return measure(ctx)
    except Exception:
        return None


def _same_file(first: Path | None, second: Path | None) -> bool:
    """One file, or we cannot tell (then the safe, materialising path is taken)."""
    return first is None or second is None or first == second
