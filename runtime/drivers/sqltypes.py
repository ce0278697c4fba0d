"""Arrow <-> SQL type mapping for PostgreSQL and MySQL/MariaDB, and CREATE TABLE generation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from osiris.runtime.drivers.base import DriverError

# PostgreSQL type OIDs we map to a specific Arrow type; every other type arrives as its text form.
PG_BOOL, PG_BYTEA, PG_INT8, PG_INT2, PG_INT4, PG_OID = 16, 17, 20, 21, 23, 26
PG_JSON, PG_FLOAT4, PG_FLOAT8, PG_NUMERIC, PG_JSONB, PG_UUID = 114, 700, 701, 1700, 3802, 2950
PG_DATE, PG_TIME, PG_TIMESTAMP, PG_TIMESTAMPTZ = 1082, 1083, 1114, 1184

# MySQL protocol column types (FIELD_TYPE) and flags.
MY_DECIMAL, MY_TINY, MY_SHORT, MY_LONG, MY_FLOAT, MY_DOUBLE = 0, 1, 2, 3, 4, 5
MY_TIMESTAMP, MY_LONGLONG, MY_INT24, MY_DATE, MY_TIME, MY_DATETIME = 7, 8, 9, 10, 11, 12
MY_YEAR, MY_NEWDATE, MY_BIT, MY_JSON, MY_NEWDECIMAL = 13, 14, 16, 245, 246
MY_UNSIGNED_FLAG = 32
MY_BINARY_CHARSET = 63


class UnsupportedType(DriverError):
    """An Arrow type this database cannot store; the message names the column and type."""


def json_type() -> pa.DataType:
    return pa.json_()


def uuid_type() -> pa.DataType:
    return pa.uuid()


def is_json(dt: pa.DataType) -> bool:
    return isinstance(dt, pa.BaseExtensionType) and dt.extension_name == "arrow.json"


def is_uuid(dt: pa.DataType) -> bool:
    return isinstance(dt, pa.BaseExtensionType) and dt.extension_name == "arrow.uuid"


def decimal_type(precision: int, scale: int) -> pa.DataType:
    precision = max(precision, 1, scale)
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


# ---- database -> Arrow -------------------------------------------------------------------


def pg_to_arrow(oid: int, precision: int | None, scale: int | None) -> pa.DataType:
    """Arrow type for a PostgreSQL result column (from RowDescription, not from values)."""
    simple = {
        PG_BOOL: pa.bool_(),
        PG_INT2: pa.int16(),
        PG_INT4: pa.int32(),
        PG_INT8: pa.int64(),
        PG_OID: pa.int64(),
        PG_FLOAT4: pa.float32(),
        PG_FLOAT8: pa.float64(),
        PG_DATE: pa.date32(),
        PG_TIME: pa.time64("us"),
        PG_TIMESTAMP: pa.timestamp("us"),
        PG_TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
        PG_BYTEA: pa.binary(),
        PG_JSON: json_type(),
        PG_JSONB: json_type(),
        PG_UUID: uuid_type(),
    }
    if oid in simple:
        return simple[oid]
    if oid == PG_NUMERIC and precision:
        return decimal_type(precision, scale or 0)
    # numeric without a declared precision, text, varchar, enums, intervals, arrays, ...
    return pa.string()


@dataclass(frozen=True, slots=True)
class MySQLColumn:
    """What the MySQL protocol (plus information_schema) tells us about one result column."""

    name: str
    type_code: int
    length: int
    scale: int
    flags: int
    charsetnr: int
    data_type: str = ""  # information_schema DATA_TYPE of the source column, when known


def mysql_to_arrow(col: MySQLColumn) -> pa.DataType:
    """Arrow type for a MySQL/MariaDB result column (from column metadata, not from values)."""
    unsigned = bool(col.flags & MY_UNSIGNED_FLAG)
    t = col.type_code
    if col.data_type == "json" or t == MY_JSON:
        return json_type()
    if col.data_type == "uuid":
        return uuid_type()
    ints = {
        MY_SHORT: (pa.int16(), pa.uint16()),
        MY_INT24: (pa.int32(), pa.uint32()),
        MY_LONG: (pa.int32(), pa.uint32()),
        MY_LONGLONG: (pa.int64(), pa.uint64()),
    }
    if t == MY_TINY:
        if col.length == 1 and not unsigned:
            return pa.bool_()
        return pa.uint8() if unsigned else pa.int8()
    if t in ints:
        return ints[t][1] if unsigned else ints[t][0]
    if t in (MY_DECIMAL, MY_NEWDECIMAL):
        precision = col.length - (1 if col.scale > 0 else 0) - (0 if unsigned else 1)
        return decimal_type(precision, col.scale)
    if t == MY_FLOAT:
        return pa.float32()
    if t == MY_DOUBLE:
        return pa.float64()
    if t == MY_TIMESTAMP:
        return pa.timestamp("us", tz="UTC")  # read with session time_zone = '+00:00'
    if t == MY_DATETIME:
        return pa.timestamp("us")
    if t in (MY_DATE, MY_NEWDATE):
        return pa.date32()
    if t == MY_TIME:
        return pa.time64("us")
    if t == MY_YEAR:
        return pa.int16()
    if t == MY_BIT:
        return pa.bool_() if col.length == 1 else pa.uint64()
    if col.charsetnr == MY_BINARY_CHARSET:
        return pa.binary()
    return pa.string()  # CHAR, VARCHAR, TEXT, ENUM, SET, ...


# ---- Arrow -> database ---------------------------------------------------------------------


def _storage(dt: pa.DataType) -> pa.DataType:
    if isinstance(dt, pa.DictionaryType):
        return dt.value_type
    return dt


def pg_column_type(field: pa.Field) -> str:
    """PostgreSQL column type for an Arrow field."""
    dt = _storage(field.type)
    if is_json(dt):
        return "jsonb"
    if is_uuid(dt):
        return "uuid"
    if pa.types.is_boolean(dt):
        return "boolean"
    if pa.types.is_int8(dt) or pa.types.is_uint8(dt) or pa.types.is_int16(dt):
        return "smallint"
    if pa.types.is_uint16(dt) or pa.types.is_int32(dt):
        return "integer"
    if pa.types.is_uint32(dt) or pa.types.is_int64(dt):
        return "bigint"
    if pa.types.is_uint64(dt):
        return "numeric(20,0)"
    if pa.types.is_float16(dt) or pa.types.is_float32(dt):
        return "real"
    if pa.types.is_float64(dt):
        return "double precision"
    if pa.types.is_decimal(dt):
        return f"numeric({dt.precision},{dt.scale})"
    if pa.types.is_string(dt) or pa.types.is_large_string(dt) or pa.types.is_string_view(dt):
        return "text"
    if pa.types.is_binary(dt) or pa.types.is_large_binary(dt) or pa.types.is_fixed_size_binary(dt):
        return "bytea"
    if pa.types.is_binary_view(dt):
        return "bytea"
    if pa.types.is_date(dt):
        return "date"
    if pa.types.is_time(dt):
        return "time"
    if pa.types.is_timestamp(dt):
        return "timestamptz" if dt.tz else "timestamp"
    if pa.types.is_null(dt):
        return "text"
    raise UnsupportedType(f"column {field.name!r}: Arrow type {dt} has no PostgreSQL mapping")


def mysql_column_type(field: pa.Field, *, key: bool, mariadb: bool) -> str:
    """MySQL/MariaDB column type for an Arrow field (key columns get indexable types)."""
    dt = _storage(field.type)
    if is_json(dt):
        return "JSON"
    if is_uuid(dt):
        return "UUID" if mariadb else "CHAR(36)"
    if pa.types.is_boolean(dt):
        return "BOOLEAN"
    named = [
        (pa.types.is_int8, "TINYINT"),
        (pa.types.is_uint8, "TINYINT UNSIGNED"),
        (pa.types.is_int16, "SMALLINT"),
        (pa.types.is_uint16, "SMALLINT UNSIGNED"),
        (pa.types.is_int32, "INT"),
        (pa.types.is_uint32, "INT UNSIGNED"),
        (pa.types.is_int64, "BIGINT"),
        (pa.types.is_uint64, "BIGINT UNSIGNED"),
        (pa.types.is_float16, "FLOAT"),
        (pa.types.is_float32, "FLOAT"),
        (pa.types.is_float64, "DOUBLE"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME(6)"),
        (pa.types.is_timestamp, "DATETIME(6)"),  # tz-aware values are stored as UTC
        (pa.types.is_null, "LONGTEXT"),
    ]
    for check, name in named:
        if check(dt):
            return name
    if pa.types.is_decimal(dt):
        if dt.precision > 65:
            raise UnsupportedType(
                f"column {field.name!r}: {dt} exceeds MySQL's DECIMAL(65) precision"
            )
        return f"DECIMAL({dt.precision},{dt.scale})"
    if pa.types.is_string(dt) or pa.types.is_large_string(dt) or pa.types.is_string_view(dt):
        return "VARCHAR(255)" if key else "LONGTEXT"
    if pa.types.is_fixed_size_binary(dt):
        return f"BINARY({dt.byte_width})"
    if pa.types.is_binary(dt) or pa.types.is_large_binary(dt) or pa.types.is_binary_view(dt):
        return "VARBINARY(255)" if key else "LONGBLOB"
    raise UnsupportedType(f"column {field.name!r}: Arrow type {dt} has no MySQL mapping")


def create_table_ddl(
    dialect: str,
    qualified_name: str,
    schema: pa.Schema,
    primary_key: Sequence[str],
    quote: Callable[[str], str],
    *,
    mariadb: bool = False,
    temporary: bool = False,
    key_constraint: bool = True,
) -> str:
    """CREATE TABLE statement for an Arrow schema (dialect 'postgres' or 'mysql').
    key_constraint=False leaves out the PRIMARY KEY clause (key columns stay NOT NULL), for a
    loader that adds the key after the bulk load."""
    missing = [k for k in primary_key if k not in schema.names]
    if missing:
        raise DriverError(f"primary_key column(s) {missing} are not in the data {schema.names}")
    lines = []
    for field in schema:
        key = field.name in primary_key
        if dialect == "postgres":
            sql_type = pg_column_type(field)
        else:
            sql_type = mysql_column_type(field, key=key, mariadb=mariadb)
        null = " NOT NULL" if key else ""
        lines.append(f"  {quote(field.name)} {sql_type}{null}")
    if primary_key and key_constraint:
        lines.append(f"  PRIMARY KEY ({', '.join(quote(k) for k in primary_key)})")
    kind = "TEMPORARY TABLE" if temporary else "TABLE"
    suffix = " CHARACTER SET utf8mb4" if dialect == "mysql" else ""
    return f"CREATE {kind} {qualified_name} (\n" + ",\n".join(lines) + f"\n){suffix}"
