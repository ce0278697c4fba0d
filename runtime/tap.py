"""Counting an extractor's stream as its consumer reads it: rows, bytes, progress, cancel checks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from osiris.runtime.drivers.replay import ReplayableStream

if TYPE_CHECKING:
    import pyarrow as pa


class StreamTap:
    """Wraps an extractor's stream for its consumer: counts rows and bytes, reports the running
    total to both steps, records an error raised by the extractor (as opposed to the consumer),
    and stops the stream between batches once the run is cancelled (check raises). Itself a
    ReplayableStream: each reader() starts the counts again, so a restart counts nothing twice."""

    def __init__(
        self,
        source: ReplayableStream,
        progress: tuple[Callable[[int], None], ...],
        check: Callable[[], None],
    ) -> None:
        self.source = source
        self.progress = progress
        self.check = check
        self.rows = 0
        self.bytes = 0
        self.error: BaseException | None = None
        self.ended: float | None = None
        self.schema: pa.Schema | None = None  # the last reader's
        self._batches: Generator[pa.RecordBatch, None, None] | None = None

    @property
    def widened(self) -> bool:
        return self.source.widened

    def reader(self) -> pa.RecordBatchReader:
        import pyarrow as pa

        self._stop()
        self.rows = self.bytes = 0
        self.error = self.ended = None
        try:  # a stream may read ahead here (json_records.RecordStream after many restarts)
            source = self.source.reader()
        except BaseException as err:
            self.error = err
            self.ended = time.perf_counter()
            raise
        self.schema = source.schema
        self._batches = self._iterate(source)
        return pa.RecordBatchReader.from_batches(source.schema, self._batches)

    def _iterate(self, source: pa.RecordBatchReader) -> Generator[pa.RecordBatch, None, None]:
        batches = iter(source)
        while True:
            self.check()
            try:
                batch = next(batches)
            except StopIteration:
                self.ended = time.perf_counter()
                return
            except BaseException as err:
                self.error = err
                self.ended = time.perf_counter()
                raise
            self.check()
            self.rows += batch.num_rows
            self.bytes += batch.nbytes
            for report in self.progress:
                report(self.rows)
            yield batch

    def _stop(self) -> None:
        if self._batches is not None:
            with contextlib.suppress(Exception):
                self._batches.close()
            self._batches = None

    def close(self) -> None:
        """Release the extractor's resources even if the consumer stopped reading early."""
        self._stop()
        with contextlib.suppress(Exception):
            self.source.close()
