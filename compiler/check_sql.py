"""Table names a duckdb.processor query reads, found with DuckDB's own SQL parser."""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SqlTables:
    tables: tuple[str, ...]  # unqualified base tables the query reads (CTE names excluded)
    error: str | None = None  # parser message when the query does not parse
    error_offset: int | None = None


_lock = threading.Lock()


@functools.cache
def _connection() -> Any:
    import duckdb

    return duckdb.connect(":memory:")


def parse_tree(query: str) -> Any:
    """DuckDB's parse tree of query (json_serialize_sql): statements, or error and position."""
    with _lock:
        raw = _connection().execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0]
    return json.loads(raw)


@functools.lru_cache(maxsize=4096)
def query_tables(query: str) -> SqlTables:
    """Parse query with DuckDB; cached because editors re-check the same query constantly."""
    tree = parse_tree(query)
    if tree.get("error"):
        message = str(tree.get("error_message") or "invalid SQL")
        if message.startswith("Only SELECT statements"):
            message = "a duckdb.processor query must be a SELECT (or WITH … SELECT) statement"
        position = tree.get("position")
        return SqlTables((), message, int(position) if position not in (None, "") else None)
    found: list[str] = []
    ctes: set[str] = set()
    _walk(tree, found, ctes)
    tables = tuple(dict.fromkeys(t for t in found if t not in ctes))
    return SqlTables(tables)


def _walk(node: Any, found: list[str], ctes: set[str]) -> None:
    if isinstance(node, dict):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for item in cte_map.get("map", []):
                ctes.add(str(item.get("key")))
        if (
            node.get("type") == "BASE_TABLE"
            and not node.get("schema_name")
            and not node.get("catalog_name")
        ):
            found.append(str(node.get("table_name")))
        for value in node.values():
            _walk(value, found, ctes)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found, ctes)
