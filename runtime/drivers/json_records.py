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


def _kind(value: Any) -> int:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT if _INT64[0] <= value <= _INT64[1] else STRING
    if isinstance(value, float):
        return FLOAT
    return STRING  # strings; nested objects and lists are kept as JSON text


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
        if isinstance(value, Mapping) and value:
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
        self._spill: Path | None = None
        self._out: Any = None

    def add(self, record: Any) -> None:
        if not isinstance(record, Mapping):
            record = {"value": record}
        row = flatten_record(record, "", self.separator) if self.flatten else dict(record)
        types = self.types
        for name, value in row.items():
            kind = _kind(value) if not isinstance(value, (Mapping, list)) else STRING
            old = types.get(name)
            types[name] = kind if old is None else _widen(old, kind)
        self._held.append(row)
        self.count += 1
        if len(self._held) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self._out is None:
            self._spill_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                self._spill_dir / f"records-{os.getpid()}-{id(self)}.jsonl",
                os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                0o600,
            )
            self._spill = self._spill_dir / f"records-{os.getpid()}-{id(self)}.jsonl"
            self._out = os.fdopen(fd, "w", encoding="utf-8")
        for row in self._held:
            self._out.write(json.dumps(row, ensure_ascii=False, default=str))
            self._out.write("\n")
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
        """Every record, in order, as batches of the final schema; removes the spill file."""
        schema = self.schema()
        try:
            if self._out is not None:
                self._out.close()
                self._out = None
                assert self._spill is not None
                chunk: list[dict[str, Any]] = []
                with self._spill.open(encoding="utf-8") as lines:
                    for line in lines:
                        chunk.append(json.loads(line))
                        if len(chunk) >= self.batch_size:
                            yield self._batch(chunk, schema)
                            chunk = []
                if chunk:
                    yield self._batch(chunk, schema)
            if self._held:
                yield self._batch(self._held, schema)
                self._held = []
        finally:
            self.close()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._spill is not None:
            self._spill.unlink(missing_ok=True)
            self._spill = None

    def _batch(self, rows: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
        import pyarrow as pa

        columns = []
        for fld in schema:
            name = fld.name
            values = [row.get(name) for row in rows]
            if pa.types.is_string(fld.type):
                values = [None if v is None else _text(v) for v in values]
            elif pa.types.is_floating(fld.type):
                values = [None if v is None else float(v) for v in values]
            columns.append(pa.array(values, type=fld.type))
        return pa.RecordBatch.from_arrays(columns, schema=schema)
