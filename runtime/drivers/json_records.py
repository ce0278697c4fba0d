"""JSON records -> Arrow batches: a schema widened by every record seen, spilled to scratch so memory stays flat."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# The type lattice of a column: a later record may only move a column up (never drop a value).
NULL, BOOL, INT, FLOAT, STRING = 0, 1, 2, 3, 4
KIND_NAMES = ("null", "boolean", "integer", "number", "string")
_INT64 = (-(2**63), 2**63 - 1)
SEPARATOR = "__"  # flatten: {"a": {"b": 1}} -> a__b (dlt's convention)


_KINDS: dict[type, int] = {type(None): NULL, bool: BOOL, int: INT, float: FLOAT, str: STRING}


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
    """Collects records page by page, tracking the widest type of every column (in first-seen
    order). Records beyond one batch are spilled as JSON lines to a scratch file; batches()
    then streams them all under the final schema."""

    def __init__(
        self,
        spill_dir: Path,
        batch_size: int,
        *,
        flatten: bool = False,
        known: tuple[tuple[str, str], ...] = (),
        separator: str = SEPARATOR,
    ) -> None:
        """known: columns a previous run saw (name, kind name); they stay, at least as wide."""
        self.flatten = flatten
        self.separator = separator
        self.batch_size = batch_size
        self.types: dict[str, int] = {
            name: KIND_NAMES.index(kind) for name, kind in known if kind in KIND_NAMES
        }
        self.count = 0
        self._held: list[dict[str, Any]] = []
        self._spill_dir = spill_dir
        self._chunks: list[Path] = []

    def add(self, record: Any) -> None:
        if not isinstance(record, dict):
            record = dict(record) if isinstance(record, Mapping) else {"value": record}
        row = flatten_record(record, "", self.separator) if self.flatten else record
        types = self.types
        for name, value in row.items():
            kind = _kind(value)
            old = types.get(name)
            if old != kind:
                types[name] = kind if old is None else _widen(old, kind)
        self._held.append(row)
        self.count += 1
        if len(self._held) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        """Spill the held records as one Arrow IPC file, typed as the columns are now (later
        chunks may widen them: batches() casts every chunk to the final schema)."""
        import pyarrow as pa

        self._spill_dir.mkdir(parents=True, exist_ok=True)
        batch = self._batch(self._held, self.schema())
        path = self._spill_dir / f"chunk-{os.getpid()}-{id(self)}-{len(self._chunks)}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as out:
            out.write_batch(batch)
        self._chunks.append(path)
        self._held = []

    def columns(self) -> tuple[tuple[str, str], ...]:
        """The columns and their kinds, for the incremental state."""
        return tuple((name, KIND_NAMES[kind]) for name, kind in self.types.items())

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        arrow = {NULL: pa.string(), BOOL: pa.bool_(), INT: pa.int64(), FLOAT: pa.float64()}
        return pa.schema(
            [(name, arrow.get(kind, pa.string())) for name, kind in self.types.items()]
        )

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every record, in order, as batches of the final schema; removes the spill files."""
        import pyarrow as pa

        schema = self.schema()
        try:
            while self._chunks:
                path = self._chunks.pop(0)
                with pa.memory_map(str(path)) as source:
                    stored = pa.ipc.open_file(source).get_batch(0)
                    yield _conform(stored, schema)
                path.unlink(missing_ok=True)
            if self._held:
                yield self._batch(self._held, schema)
                self._held = []
        finally:
            self.close()

    def close(self) -> None:
        for path in self._chunks:
            path.unlink(missing_ok=True)
        self._chunks = []

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


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A spilled chunk under the final schema: columns it lacks are null, narrower ones cast
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
            if pa.types.is_boolean(column.type) and pa.types.is_string(fld.type):
                column = pa.array(
                    [None if v is None else ("true" if v else "false") for v in column.to_pylist()],
                    pa.string(),
                )
            else:
                column = column.cast(fld.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)
