"""Upstream Osiris's pandas `dtype` names for CSV columns, as DuckDB types: one table for the
checker (an unknown name is a check error) and the CSV driver (read_csv `types`)."""

from __future__ import annotations

_INTEGERS = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
}
_DATETIMES = {f"datetime64{unit}": "TIMESTAMP" for unit in ("", "[ns]", "[us]", "[ms]", "[s]")} | {
    f"datetime64[{unit}, UTC]": "TIMESTAMPTZ" for unit in ("ns", "us", "ms", "s")
}

# pandas/numpy name -> DuckDB type. pandas' nullable integers (Int64) are the same columns here:
# DuckDB columns are always nullable.
PANDAS_TYPES: dict[str, str] = {
    **_INTEGERS,
    **{name.capitalize(): kind for name, kind in _INTEGERS.items() if name.startswith("int")},
    **{"UInt" + name[4:]: kind for name, kind in _INTEGERS.items() if name.startswith("uint")},
    "int": "BIGINT",
    "float": "DOUBLE",
    "float16": "FLOAT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "Float32": "FLOAT",
    "Float64": "DOUBLE",
    "str": "VARCHAR",
    "string": "VARCHAR",
    "object": "VARCHAR",
    "category": "VARCHAR",
    "bool": "BOOLEAN",
    "boolean": "BOOLEAN",
    **_DATETIMES,
}


def duckdb_type(pandas_name: str) -> str | None:
    """The DuckDB type for a pandas dtype name (as pandas spells it), None for one we do not know."""
    return PANDAS_TYPES.get(pandas_name.strip())
