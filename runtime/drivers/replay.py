"""An extractor's output as a stream its consumer may read again: restarted once its schema widened mid-read."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from osiris.runtime.drivers.base import DriverError

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")


class StreamWidened(DriverError):
    """Raised from a stream's reader when a record needs a wider schema than the reader's; the
    consumer's attempt fails (and rolls back), and consume_with_replay starts it again."""


@runtime_checkable
class ReplayableStream(Protocol):
    """What an extractor may return instead of a plain reader (docs/runtime.md, API sources)."""

    @property
    def widened(self) -> bool:
        """The last reader stopped because the schema widened: read again from reader()."""
        ...

    def reader(self) -> pa.RecordBatchReader:
        """A reader of every batch so far (replayed, under the schema as it is now), then of
        the rest of the source; the previous reader is abandoned."""
        ...

    def close(self) -> None:
        """Release the source and whatever the stream keeps to replay; safe to repeat."""
        ...


class ReaderStream:
    """A plain reader as a stream that never widens (every extractor but the API ones)."""

    widened = False

    def __init__(self, source: pa.RecordBatchReader) -> None:
        self.source = source

    def reader(self) -> pa.RecordBatchReader:
        return self.source

    def close(self) -> None:
        self.source.close()


def as_stream(extracted: Any, driver: str) -> ReplayableStream:
    """What an extractor's extract() returned, as a stream; anything else is the driver's bug."""
    import pyarrow as pa

    if isinstance(extracted, pa.RecordBatchReader):
        return ReaderStream(extracted)
    if isinstance(extracted, ReplayableStream):
        return extracted
    raise DriverError(f"driver {driver} did not return an Arrow RecordBatchReader")


def consume_with_replay(
    stream: ReplayableStream, consume: Callable[[pa.RecordBatchReader], T]
) -> T:
    """consume(stream.reader()), again while an attempt failed because the stream widened. The
    flag, not the exception, decides: DuckDB and psycopg wrap errors raised inside a reader."""
    while True:
        try:
            result = consume(stream.reader())
        except Exception:
            if stream.widened:
                continue
            raise
        if stream.widened:  # the consumer swallowed the stop: what it loaded is incomplete
            raise DriverError("the load ended early: the consumer ignored its input's restart")
        return result
