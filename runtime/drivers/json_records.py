"""JSON records -> Arrow batches sent as pages arrive, under a schema every record may widen (the stream then replays)."""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osiris.runtime.drivers.base import DriverError, StepContext
from osiris.runtime.drivers.replay import StreamWidened

if TYPE_CHECKING:
    import pyarrow as pa

# The type lattice of a column: a later record may only move a column up (never drop a value).
NULL, BOOL, INT, FLOAT, STRING = 0, 1, 2, 3, 4
KIND_NAMES = ("null", "boolean", "integer", "number", "string")
_INT64 = (-(2**63), 2**63 - 1)
SEPARATOR = "__"  # flatten: {"a": {"b": 1}} -> a__b (dlt's convention)


_KINDS: dict[type, int] = {type(None): NULL, bool: BOOL, int: INT, float: FLOAT, str: STRING}
# The Arrow type behind each kind, as a kind: a column of nulls only is text.
_ARROW_KIND = (STRING, BOOL, INT, FLOAT, STRING)


def _kind(value: Any) -> int:
    """The lattice kind of one JSON value (nested objects and lists are kept as JSON text)."""
    kind = _KINDS.get(type(value), STRING)
    if kind == INT and not _INT64[0] <= value <= _INT64[1]:
        return STRING
    return kind


def _widen(old: int, new: int) -> int:
    if old in (NULL, new):
        return max(old, new)
    if new == NULL:
        return old
    if {old, new} <= {INT, FLOAT}:
        return FLOAT
    return STRING  # bool with a number, anything with a string: text keeps every value


def flatten_record(
    record: Mapping[str, Any], prefix: str = "", separator: str = SEPARATOR
) -> dict[str, Any]:
    """Nested objects become columns a__b; lists stay one (JSON) column."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_record(value, name + separator, separator))
        else:
            out[name] = value
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RecordSink:
    """Holds records until they are sent as a batch, tracking the widest type of every column
    (in first-seen order)."""

    def __init__(
        self,
        batch_size: int,
        *,
        flatten: bool = False,
        known: tuple[tuple[str, str], ...] = (),
        separator: str = SEPARATOR,
    ) -> None:
        """known: columns a previous run saw (name, kind name); they stay, at least as wide."""
        self.flatten = flatten
        self.separator = separator
        self.batch_size = max(1, batch_size)
        self.types: dict[str, int] = {
            name: KIND_NAMES.index(kind) for name, kind in known if kind in KIND_NAMES
        }
        self._held: list[dict[str, Any]] = []

    @property
    def held(self) -> int:
        return len(self._held)

    def add(self, record: Any) -> list[str] | None:
        """Hold one record; what it changed in the Arrow schema (new columns, wider types),
        said in words, else None."""
        if not isinstance(record, dict):
            record = dict(record) if isinstance(record, Mapping) else {"value": record}
        row = flatten_record(record, "", self.separator) if self.flatten else record
        types = self.types
        changes = None
        for name, value in row.items():
            kind = _kind(value)
            old = types.get(name)
            if old != kind:
                new = kind if old is None else _widen(old, kind)
                if new == old:
                    continue
                types[name] = new
                if old is None:
                    change = f"field {name!r}"
                elif _ARROW_KIND[old] != _ARROW_KIND[new]:
                    change = f"{name!r} {KIND_NAMES[old]} -> {KIND_NAMES[new]}"
                else:
                    continue  # a column of nulls only became text: still text
                changes = [*(changes or ()), change]
        self._held.append(row)
        return changes

    def take(self, rows: int) -> pa.RecordBatch:
        """The first `rows` held records as one batch of the schema as it is now."""
        taken, self._held = self._held[:rows], self._held[rows:]
        return self._batch(taken, self.schema())

    def columns(self) -> tuple[tuple[str, str], ...]:
        """The columns and their kinds, for the incremental state."""
        return tuple((name, KIND_NAMES[kind]) for name, kind in self.types.items())

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        arrow = {BOOL: pa.bool_(), INT: pa.int64(), FLOAT: pa.float64()}
        return pa.schema(
            [(name, arrow.get(_ARROW_KIND[kind], pa.string())) for name, kind in self.types.items()]
        )

    def _batch(self, rows: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
        import pyarrow as pa

        columns = []
        for fld in schema:
            name = fld.name
            values = [row.get(name) for row in rows]
            if pa.types.is_string(fld.type):
                values = [v if type(v) is str or v is None else _text(v) for v in values]
            elif pa.types.is_floating(fld.type):
                values = [v if type(v) is float or v is None else float(v) for v in values]
            columns.append(pa.array(values, type=fld.type))
        return pa.RecordBatch.from_arrays(columns, schema=schema)


# After this many restarts the next attempt reads every remaining page before sending anything.
OPTIMISTIC_RESTARTS = 2
# A page's end sends what is held once this many seconds passed since the last batch went (the
# first batch goes at the first page's end): a slow API's rows go on at once, a fast one's
# pages still make batches of some size (small batches cost the writers memory and time).
LINGER = 0.2


class RecordStream:
    """An API's records as batches sent while the pages arrive (a ReplayableStream). The first
    page with records sets the schema; every batch sent is also appended to a replay log on
    scratch (Arrow IPC). A record that needs a wider schema stops the reader (StreamWidened);
    the next reader replays the log cast to the wider schema, then goes on with the pages
    still to come, so no page is fetched twice."""

    def __init__(
        self,
        pages: Iterator[list[Any]],
        sink: RecordSink,
        spill_dir: Path,
        log: Callable[[str], None],
        *,
        linger: float = LINGER,
    ) -> None:
        """pages: the records of each page in order (its tail runs once the last was read)."""
        self.sink = sink
        self.linger = linger
        self.widened = False
        self.restarts = 0
        self._pages = pages
        self._pending: deque[Any] = deque()
        self._page_ends = [0]  # records in the pages read, after each page
        self._sent_rows = 0
        self._last_sent: float | None = None  # time.monotonic() of the last batch sent
        self._done = False
        self._log = log
        self._spill_dir = spill_dir
        self._replay: list[Path] = []
        self._out: Any = None  # (file, IPC writer, schema) of the replay log being written
        try:
            while not self._pending and self._next_page():
                pass
            while self._pending:  # the first page's fields are the first schema
                sink.add(self._pending.popleft())
        except BaseException:
            self.close()
            raise

    def reader(self) -> pa.RecordBatchReader:
        import pyarrow as pa

        self.widened = False
        self._close_log()
        if self.restarts > OPTIMISTIC_RESTARTS:
            self._drain()
        schema = self.sink.schema()
        return pa.RecordBatchReader.from_batches(schema, self._batches(schema, list(self._replay)))

    def close(self) -> None:
        self._close_log()
        for path in self._replay:
            path.unlink(missing_ok=True)
        self._replay = []
        with contextlib.suppress(OSError):  # the run's scratch holds only this stream's folder
            self._spill_dir.rmdir()
        close = getattr(self._pages, "close", None)
        if close is not None:
            close()

    def _batches(self, schema: pa.Schema, replay: list[Path]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for path in replay:
            with pa.memory_map(str(path)) as source:
                for batch in pa.ipc.open_stream(source):
                    yield _conform(batch, schema)
        batch_size = self.sink.batch_size
        while True:
            while self.sink.held >= batch_size:
                yield self._send(self.sink.take(batch_size))
            if self._pending:
                changes = self.sink.add(self._pending.popleft())
                if changes is not None:
                    self._widen(changes)
                continue
            if self.sink.held and self._lingered():  # a page's end
                yield self._send(self.sink.take(self.sink.held))
            if not self._next_page():
                break
        if self.sink.held:
            yield self._send(self.sink.take(self.sink.held))
        self.close()  # every page was read and sent: nothing can widen any more

    def _lingered(self) -> bool:
        last = self._last_sent
        return last is None or time.monotonic() - last >= self.linger

    def _next_page(self) -> bool:
        if self._done:
            return False
        page = next(self._pages, None)
        if page is None:
            self._done = True
            return False
        self._page_ends.append(self._page_ends[-1] + len(page))
        self._pending.extend(page)
        return True

    def _widen(self, changes: list[str]) -> None:
        """Stop the reader: the rest of this page joins the wider schema too (one restart for
        the page, not one per record)."""
        while self._pending:
            changes += self.sink.add(self._pending.popleft()) or ()
        self.restarts += 1
        self.widened = True
        said = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" * (len(changes) > 5))
        last = "; reading every remaining page first" * (self.restarts > OPTIMISTIC_RESTARTS)
        page = len(self._page_ends) - 1
        pages = bisect.bisect_right(self._page_ends, self._sent_rows) - 1  # sent in full
        self._log(
            f"page {page} brought {said}; restarting the load under the wider schema, "
            f"replaying {self._sent_rows} record(s) of {pages} page(s) from scratch" + last
        )
        raise StreamWidened(f"page {page} brought {said}: the load restarts")

    def _drain(self) -> None:
        """Too many restarts: read every remaining page into the replay log first, so the
        schema is final before the next reader starts (as if nothing streamed)."""
        batch_size = self.sink.batch_size
        while self._pending or self._next_page():
            while self._pending:
                self.sink.add(self._pending.popleft())
                if self.sink.held >= batch_size:
                    self._append(self.sink.take(batch_size))
        self._close_log()

    def _send(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        self._append(batch)
        self._sent_rows += batch.num_rows
        self._last_sent = time.monotonic()
        return batch

    def _append(self, batch: pa.RecordBatch) -> None:
        """Into the replay log: one IPC stream per schema, in order."""
        import pyarrow as pa

        if self._out is None or self._out[2] != batch.schema:
            self._close_log()
            self._spill_dir.mkdir(parents=True, exist_ok=True)
            path = self._spill_dir / f"replay-{os.getpid()}-{id(self)}-{len(self._replay)}.arrow"
            self._replay.append(path)
            sink = pa.OSFile(str(path), "wb")
            self._out = (sink, pa.ipc.new_stream(sink, batch.schema), batch.schema)
        self._out[1].write_batch(batch)

    def _close_log(self) -> None:
        if self._out is not None:
            sink, writer, _ = self._out
            self._out = None
            writer.close()
            sink.close()


def stream_records(
    ctx: StepContext, kind: str, pages: Iterator[list[Any]], sink: RecordSink, hint: str
) -> RecordStream:
    """An API step's records as a RecordStream (its replay log in the step's scratch). With no
    record on the first pages and no columns from an earlier run there is no table to make:
    a DriverError that ends with hint (what to check)."""
    stream = RecordStream(pages, sink, ctx.scratch_dir / f"{kind}-{ctx.step_id}", ctx.log)
    if not sink.types:
        stream.close()
        raise DriverError(
            f"{hint}; no earlier run recorded its columns, so there is no table to make"
        )
    return stream


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A replayed batch under a wider schema: columns it lacks are null, narrower ones cast
    (int -> float, anything -> text)."""
    import pyarrow as pa

    columns = []
    for fld in schema:
        index = batch.schema.get_field_index(fld.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, fld.type))
            continue
        column = batch.column(index)
        if column.type != fld.type:
            if pa.types.is_string(fld.type):  # as a record's value becomes text (_text)
                column = pa.array(
                    [None if v is None else _text(v) for v in column.to_pylist()], pa.string()
                )
            else:
                column = column.cast(fld.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)
