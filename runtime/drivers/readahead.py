"""Flat memory over a source that reads ahead without limit: its backlog is moved to disk.

connectorx reads a MySQL result on its own threads into an unbounded channel. When the writer is
slower than the reader (PostgreSQL COPY takes ~550k rows/s here, connectorx delivers ~1.5M) the
backlog grew with the table: +20 MiB of peak RSS per million rows (bench/move_bench.py).

Spilled iterates such a source in the consumer's own thread. Each time the consumer asks for a
batch, the batches the source already has waiting are taken first (a pull that returns at once
means the source is ahead); they stay in memory up to `budget` bytes and go, in order, to Arrow IPC
segment files beyond it, read back (and deleted) when the consumer gets there. A pull that had to
wait means the backlog is gone. No thread pulls from the source: connectorx holds the GIL while it
waits for a batch, so a draining thread stalled everything else in the process (+0.3 s per 1M rows).
The source's single query, and so its consistent snapshot, is kept.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import deque
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_BUDGET = 32 * 2**20
# A pull answered faster than this came from the source's backlog, not from new work.
READY_SECONDS = 0.001
# At most this many batches are moved per request, so the consumer is never kept waiting long.
MAX_DRAIN = 16


class Spilled:
    """Iterate `source` (RecordBatches of `schema`) with its backlog kept within `budget`
    bytes of memory; the rest waits in segment files on disk, under `directory`."""

    def __init__(
        self,
        source: Iterator[pa.RecordBatch],
        schema: pa.Schema,
        *,
        budget: int | None = None,
        segment_bytes: int | None = None,
        directory: Path | None = None,
    ) -> None:
        self._source = source
        self._schema = schema
        self._budget = DEFAULT_BUDGET if budget is None else budget
        self._segment_bytes = segment_bytes or max(self._budget // 2, 1)
        self._queue: deque[pa.RecordBatch | _Segment] = deque()
        self._in_memory = 0
        self._open: _Segment | None = None  # the segment being written: always the queue's last
        self._exhausted = False
        self._parent = directory  # where the segments' directory is made (None: the temp dir)
        self._dir: Path | None = None
        self.spilled_bytes = 0
        self.peak_in_memory = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        reading: Generator[pa.RecordBatch, None, None] | None = None  # a segment read back
        try:
            while True:
                self._drain_ready()
                if reading is not None:
                    batch = next(reading, None)
                    if batch is not None:
                        yield batch
                        continue
                    reading = None
                if not self._queue:
                    batch = self._pull()
                    if batch is None:
                        return
                    yield batch
                    continue
                head = self._queue.popleft()
                if isinstance(head, _Segment):
                    if head is self._open:
                        self._open = None
                    reading = head.read()
                else:
                    self._in_memory -= head.nbytes
                    yield head
        finally:
            if reading is not None:
                reading.close()
            self.close()

    def close(self) -> None:
        """Delete spilled segments (also when the consumer stops early)."""
        for item in self._queue:
            if isinstance(item, _Segment):
                item.discard()
        self._queue.clear()
        self._open = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _pull(self) -> pa.RecordBatch | None:
        if self._exhausted:
            return None
        try:
            return next(self._source)
        except StopIteration:
            self._exhausted = True
            return None

    def _drain_ready(self) -> None:
        for _ in range(MAX_DRAIN):
            started = time.perf_counter()
            batch = self._pull()
            if batch is None:
                return
            self._keep(batch)
            if time.perf_counter() - started > READY_SECONDS:
                return  # we waited for it: nothing more is queued at the source

    def _keep(self, batch: pa.RecordBatch) -> None:
        fits = not self._queue or self._in_memory + batch.nbytes <= self._budget
        if self._open is None and fits:
            self._queue.append(batch)
            self._in_memory += batch.nbytes
            self.peak_in_memory = max(self.peak_in_memory, self._in_memory)
            return
        if self._open is None or self._open.size >= self._segment_bytes:
            if self._open is not None:
                self._open.finish()
            self._open = _Segment(self._next_path(), self._schema)
            self._queue.append(self._open)
        self._open.write(batch)
        self.spilled_bytes += batch.nbytes

    def _next_path(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="osiris-spill-", dir=self._parent))
        return self._dir / f"{self.spilled_bytes:016d}.arrows"


class _Segment:
    """Batches in one Arrow IPC stream file: written, then read back once and deleted."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow as pa

        self.path = path
        self.size = 0
        self._sink: pa.NativeFile | None = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.size += batch.nbytes

    def finish(self) -> None:
        if self._sink is not None:
            self._writer.close()
            self._sink.close()
            self._sink = None

    def read(self) -> Generator[pa.RecordBatch, None, None]:
        import pyarrow as pa

        self.finish()
        try:
            with pa.OSFile(str(self.path), "rb") as source:
                yield from pa.ipc.open_stream(source)
        finally:
            self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        try:
            self.finish()
        finally:
            self.path.unlink(missing_ok=True)
