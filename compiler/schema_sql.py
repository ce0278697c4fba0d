"""Binding a processor query against empty input tables in DuckDB: its output columns, or its error."""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Columns = tuple[tuple[str, str], ...]  # (name, DuckDB type), in order


@dataclass(frozen=True, slots=True)
class Bound:
    """A bound query: its columns, or DuckDB's error (first line), hint and character offset."""

    columns: Columns | None
    error: str | None = None
    hint: str | None = None  # DuckDB's candidate bindings or "Did you mean"
    offset: int | None = None


_lock = threading.Lock()


@functools.cache
def _database() -> Any:
    import duckdb

    # No files, no network, no extension downloads: a check must never reach outside.
    return duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "threads": 1,
        },
    )


@contextlib.contextmanager
def binder() -> Iterator[Binder]:
    """A private session (temp tables and views are per cursor) that is dropped afterwards."""
    with _lock:
        cursor = _database().cursor()
    try:
        yield Binder(cursor)
    finally:
        cursor.close()


class Binder:
    """Empty tables named like a processor's inputs; queries bound against them, never run."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def table(self, name: str, columns: Columns) -> bool:
        """Create an empty table; False when DuckDB refuses it (e.g. duplicate column names)."""
        import duckdb

        body = ", ".join(f"{quote(c)} {t}" for c, t in columns)
        try:
            self.cursor.execute(f"CREATE OR REPLACE TEMP TABLE {quote(name)} ({body})")
        except duckdb.Error:
            return False
        return True

    def bind(self, query: str, aliases: Mapping[str, str]) -> Bound | None:
        """The query's columns, or its binder error; None when it cannot be judged here."""
        import duckdb

        try:
            if len(self.cursor.extract_statements(query)) != 1:
                return None  # `sql()` would run all but the last statement
        except duckdb.Error:
            return None
        views: list[str] = []
        try:
            for alias, table in aliases.items():
                self.cursor.execute(
                    f"CREATE OR REPLACE TEMP VIEW {quote(alias)} AS SELECT * FROM {quote(table)}"
                )
                views.append(alias)
            relation = self.cursor.sql(query.strip().rstrip(";"))
            names = relation.columns
            types = [str(t) for t in relation.types]
        except (duckdb.BinderException, duckdb.CatalogException) as err:
            return _error(query, str(err))
        except duckdb.Error:
            return None  # files, permissions, conversions: not the query's shape
        finally:
            for alias in views:
                with contextlib.suppress(duckdb.Error):
                    self.cursor.execute(f"DROP VIEW IF EXISTS {quote(alias)}")
        if len(set(map(str.lower, names))) != len(names):
            return None
        return Bound(tuple(zip(names, types, strict=True)))


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_COLUMN = re.compile(
    r'Referenced column "([^"]+)" not found|does not have a column named "([^"]+)"'
)
_FUNCTION = re.compile(
    r"argument types '([^(']+)\(|Function with name \"?([^\s\"]+)\"? (?:does not exist|is not)"
)


def _error(query: str, text: str) -> Bound | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or "extension" in text:
        return None  # a function of an extension the run may load: not judged here
    first = re.sub(r"^\w+ Error: ", "", lines[0])
    first = re.sub(r"^Values list (\"[^\"]+\")", r"Table \1", first)  # an input seen as a view
    if first.startswith("Table with name"):
        return None  # reading a table that is no input is OML037's to say
    hint = next(
        (
            line.replace("Candidate bindings: : ", "Candidate bindings: ")
            for line in lines[1:]
            if line.startswith(("Candidate bindings", "Did you mean"))
        ),
        None,
    )
    if first.startswith("No function matches"):
        first = first.split(". You might", 1)[0]
    return Bound(None, first, hint, _locate(query, text))


def _locate(query: str, text: str) -> int | None:
    """Where the error is, found in DuckDB's parse tree: the misspelt column or the function."""
    column = _COLUMN.search(text)
    function = _FUNCTION.search(text)
    if column is None and function is None:
        return None
    name = (column.group(1) or column.group(2)) if column else None
    wanted = (
        None if name is not None or function is None else function.group(1) or function.group(2)
    )
    from osiris.compiler.check_sql import parse_tree

    tree = parse_tree(query)
    found: list[int] = []
    _find(tree, name, wanted, found)
    if not found:
        return None
    offset = min(found)  # UTF-8 bytes into the query
    return len(query.encode("utf-8")[:offset].decode("utf-8", "replace"))


def _find(node: Any, column: str | None, function: str | None, found: list[int]) -> None:
    if isinstance(node, dict):
        location = node.get("query_location")
        if isinstance(location, int) and location < 2**62:
            kind = node.get("class")
            names = node.get("column_names")
            if (
                column is not None
                and kind == "COLUMN_REF"
                and isinstance(names, list)
                and names
                and str(names[-1]).lower() == column.lower()
            ):
                found.append(location)
            if (
                function is not None
                and kind == "FUNCTION"
                and str(node.get("function_name", "")).lower() == function.lower()
            ):
                found.append(location)
        for value in node.values():
            _find(value, column, function, found)
    elif isinstance(node, list):
        for value in node:
            _find(value, column, function, found)


# -- Arrow types as DuckDB types ---------------------------------------------------------------

_SIMPLE = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    "halffloat": "FLOAT",
    "float16": "FLOAT",
    "float": "FLOAT",
    "float32": "FLOAT",
    "double": "DOUBLE",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "utf8": "VARCHAR",
    "large_string": "VARCHAR",
    "large_utf8": "VARCHAR",
    "string_view": "VARCHAR",
    "binary": "BLOB",
    "large_binary": "BLOB",
    "binary_view": "BLOB",
    "date32[day]": "DATE",
    "date64[ms]": "DATE",
    "month_day_nano_interval": "INTERVAL",
    "extension<arrow.uuid>": "UUID",
    "extension<arrow.json>": "JSON",
}
_TIMESTAMPS = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}


def duckdb_type(arrow: str) -> str | None:
    """The DuckDB type an Arrow column (as str(pyarrow type)) becomes; None when not known here."""
    text = arrow.strip()
    if text in _SIMPLE:
        return _SIMPLE[text]
    if match := re.fullmatch(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]", text):
        return "TIMESTAMPTZ" if match.group(2) else _TIMESTAMPS[match.group(1)]
    if re.fullmatch(r"time(32|64)\[(s|ms|us|ns)\]", text):
        return "TIME"
    if re.fullmatch(r"duration\[(s|ms|us|ns)\]", text):
        return "INTERVAL"
    if re.fullmatch(r"fixed_size_binary\[\d+\]", text):
        return "BLOB"
    if match := re.fullmatch(r"decimal(?:128|256)?\((\d+), ?(\d+)\)", text):
        precision, scale = int(match.group(1)), int(match.group(2))
        return f"DECIMAL({precision},{scale})" if 0 < precision <= 38 else "DOUBLE"
    if match := re.fullmatch(r"(?:large_)?list<(?:item|element): (.+)>", text):
        inner = duckdb_type(match.group(1))
        return f"{inner}[]" if inner else None
    return None


def as_columns(columns: Sequence[tuple[str, str]]) -> Columns | None:
    """(name, Arrow type) pairs as (name, DuckDB type); None when one type is not known here."""
    out = []
    for name, arrow in columns:
        kind = duckdb_type(arrow)
        if kind is None:
            return None
        out.append((name, kind))
    return tuple(out)
