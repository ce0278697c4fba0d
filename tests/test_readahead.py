"""Spilled: a source's backlog beyond the memory budget waits on disk, in order, and is cleaned up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from osiris.runtime.drivers import readahead
from osiris.runtime.drivers.readahead import Spilled

SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string())])


def _batches(count: int, rows: int = 1000, *, delay: float = 0.0) -> Iterator[pa.RecordBatch]:
    for i in range(count):
        if delay:
            time.sleep(delay)
        ids = pa.array(range(i * rows, (i + 1) * rows), pa.int64())
        yield pa.RecordBatch.from_arrays(
            [ids, pa.array([f"row {n} 😀" for n in ids.to_pylist()])], schema=SCHEMA
        )


def _ready(count: int) -> Iterator[pa.RecordBatch]:
    """A source whose batches are all waiting already (as connectorx's channel holds them):
    every pull returns at once, however loaded the machine is."""
    return iter(list(_batches(count)))


def _ids(batches: Any) -> list[int]:
    return [v for b in batches for v in b.column(0).to_pylist()]


@pytest.fixture
def spill_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(readahead.tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _slow_consumer(spilled: Spilled, seen: list[pa.RecordBatch], dirs: Path) -> int:
    """Consume slowly; return the most spill files seen on disk at once."""
    most = 0
    for batch in spilled:
        seen.append(batch)
        most = max(most, len(list(dirs.glob("osiris-spill-*/*.arrows"))))
        time.sleep(0.001)
    return most


def test_backlog_beyond_the_budget_goes_to_disk_in_order(spill_dirs: Path) -> None:
    one = next(_batches(1)).nbytes
    spilled = Spilled(_ready(60), SCHEMA, budget=4 * one, segment_bytes=5 * one)
    seen: list[pa.RecordBatch] = []
    most = _slow_consumer(spilled, seen, spill_dirs)
    assert _ids(seen) == list(range(60_000))
    assert all(b.schema == SCHEMA for b in seen)
    assert spilled.peak_in_memory <= 4 * one
    assert spilled.spilled_bytes > 30 * one and most >= 1
    assert list(spill_dirs.iterdir()) == []  # every segment read back and deleted


def test_a_source_slower_than_its_consumer_never_spills(spill_dirs: Path) -> None:
    spilled = Spilled(_batches(10, delay=0.01), SCHEMA, budget=1)
    assert _ids(spilled) == list(range(10_000))
    assert spilled.spilled_bytes == 0 and list(spill_dirs.iterdir()) == []


def test_stopping_early_removes_the_spill(spill_dirs: Path) -> None:
    spilled = Spilled(_ready(60), SCHEMA, budget=1)
    stream = iter(spilled)
    first = [next(stream) for _ in range(3)]
    assert _ids(first) == list(range(3000))
    assert list(spill_dirs.glob("osiris-spill-*/*.arrows"))
    stream.close()  # type: ignore[attr-defined]
    assert list(spill_dirs.iterdir()) == []


def test_a_source_failure_reaches_the_consumer(spill_dirs: Path) -> None:
    def failing() -> Iterator[pa.RecordBatch]:
        yield from _batches(20)
        raise RuntimeError("connection killed")

    seen: list[pa.RecordBatch] = []
    with pytest.raises(RuntimeError, match="connection killed"):
        for batch in Spilled(failing(), SCHEMA, budget=1):
            seen.append(batch)
    assert _ids(seen) == list(range(len(seen) * 1000))  # what came before, in order
    assert list(spill_dirs.iterdir()) == []
