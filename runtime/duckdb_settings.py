"""Opening DuckDB connections with the runtime's resource limits (memory, threads)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

DEFAULT_MEMORY_LIMIT = "256MB"


def memory_limit() -> str:
    """DuckDB memory_limit per database: $OSIRIS_DUCKDB_MEMORY_LIMIT or 256MB (spills to disk beyond)."""
    return os.environ.get("OSIRIS_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def open_duckdb(
    path: Path | str | None = None, *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (in memory when path is None) with the runtime's memory limit."""
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit()}
    target = ":memory:" if path is None else str(path)
    return duckdb.connect(target, read_only=read_only, config=config)
