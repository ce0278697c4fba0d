"""Arrow batches encoded as CSV blocks for PostgreSQL COPY and MySQL LOAD DATA (C++ encoder)."""

from __future__ import annotations

import uuid
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from osiris.runtime.drivers.sqltypes import UnsupportedType, is_json, is_uuid

Dialect = Literal["postgres", "mysql"]
MYSQL_NULL = "NULL"  # unquoted NULL is SQL NULL for LOAD DATA ... ENCLOSED BY '"'
POSTGRES_NULL = "\\N"  # COPY ... (FORMAT csv, NULL '\N'): an unquoted \N is SQL NULL
# Values PostgreSQL reads specially when unquoted: the NULL marker and the end-of-data marker.
_POSTGRES_MARKERS = ("\\N", "\\.")


def _hex(arr: pa.Array, prefix: str) -> pa.Array:
    return pa.array([None if v is None else prefix + v.hex() for v in arr.to_pylist()], pa.string())


def _uuid_text(arr: pa.Array) -> pa.Array:
    storage = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
    values = storage.to_pylist()
    return pa.array([None if v is None else str(uuid.UUID(bytes=v)) for v in values], pa.string())


def is_binary(dt: pa.DataType) -> bool:
    t = pa.types
    return (
        t.is_binary(dt)
        or t.is_large_binary(dt)
        or t.is_fixed_size_binary(dt)
        or t.is_binary_view(dt)
    )


def _encode_column(name: str, arr: pa.Array, dialect: Dialect) -> pa.Array:
    dt = arr.type
    if isinstance(dt, pa.DictionaryType):
        arr = arr.cast(dt.value_type)
        dt = arr.type
    if is_json(dt):
        return arr.storage.cast(pa.string())
    if is_uuid(dt):
        return _uuid_text(arr)
    if isinstance(dt, pa.BaseExtensionType):
        return _encode_column(name, arr.storage, dialect)
    if pa.types.is_string_view(dt) or pa.types.is_large_string(dt) or pa.types.is_null(dt):
        return arr.cast(pa.string())
    if is_binary(dt):
        return _hex(arr, "\\x" if dialect == "postgres" else "")
    if pa.types.is_timestamp(dt):
        unit = "us" if dt.unit == "ns" else dt.unit
        if dialect == "mysql":
            return arr.cast(pa.timestamp(unit))  # UTC wall time for a time_zone='+00:00' session
        return arr.cast(pa.timestamp(unit, tz="UTC" if dt.tz else None))
    if pa.types.is_time64(dt) and dt.unit == "ns":
        return arr.cast(pa.time64("us"))
    if pa.types.is_boolean(dt) and dialect == "mysql":
        return pc.if_else(arr, 1, 0).cast(pa.uint8())
    if pa.types.is_float16(dt):
        return arr.cast(pa.float32())
    if pa.types.is_nested(dt) or pa.types.is_duration(dt) or pa.types.is_interval(dt):
        raise UnsupportedType(f"column {name!r}: Arrow type {dt} cannot be loaded into {dialect}")
    return arr


def encode_batch(batch: pa.RecordBatch, dialect: Dialect) -> pa.Buffer:
    """One CSV block (no header) of a batch, ready for COPY ... (FORMAT csv, NULL '\\N') or
    LOAD DATA."""
    arrays = [
        _encode_column(f.name, col, dialect)
        for f, col in zip(batch.schema, batch.columns, strict=False)
    ]
    if dialect == "postgres":
        return _postgres_csv(arrays, batch.num_rows)
    return _write_csv(arrays, batch.num_rows, MYSQL_NULL, "needed")


def _postgres_csv(arrays: list[pa.Array], rows: int) -> pa.Buffer:
    """PostgreSQL parses unquoted fields and whole-second timestamps faster (1M orders rows:
    COPY 1.2-1.3 s instead of 1.3-1.7 s, encoding 0.35 s instead of 0.5 s), so a batch goes
    unquoted when it can: no string holds a delimiter, quote or line break (Arrow refuses to
    write those unquoted) or is a marker, \\N (NULL) or \\. (end of data). Otherwise every
    string is quoted, and a quoted marker is text. An empty string is never NULL: NULL is \\N."""
    arrays = [_whole_seconds(a) for a in arrays]
    if not any(_has_marker(a) for a in arrays):
        try:
            return _write_csv(arrays, rows, POSTGRES_NULL, "none")
        except pa.ArrowInvalid:  # a value that needs quotes
            pass
    return _write_csv(arrays, rows, POSTGRES_NULL, "needed")


def _whole_seconds(arr: pa.Array) -> pa.Array:
    """Timestamps without fractions as timestamp[s] (shorter text); others unchanged."""
    if not pa.types.is_timestamp(arr.type) or arr.type.unit == "s":
        return arr
    try:
        return arr.cast(pa.timestamp("s", tz=arr.type.tz))  # safe: raises if it would truncate
    except pa.ArrowInvalid:
        return arr


def _has_marker(arr: pa.Array) -> bool:
    if not pa.types.is_string(arr.type):
        return False
    import pyarrow.compute as pc

    return bool(pc.any(pc.is_in(arr, value_set=pa.array(_POSTGRES_MARKERS))).as_py())


def _write_csv(arrays: list[pa.Array], rows: int, null: str, quoting: str) -> pa.Buffer:
    names = [f"c{i}" for i in range(len(arrays))]
    prepared = pa.RecordBatch.from_arrays(arrays, names=names)
    sink = pa.BufferOutputStream()
    options = pcsv.WriteOptions(
        include_header=False,
        batch_size=max(1024, min(rows, 65536)),
        null_string=null,
        quoting_style=quoting,
    )
    pcsv.write_csv(prepared, sink, options)
    return sink.getvalue()
