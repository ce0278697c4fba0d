"""Opening DuckDB connections with the runtime's resource limits (memory, threads).

Every DuckDB the runtime opens gets memory_limit ($OSIRIS_DUCKDB_MEMORY_LIMIT, default 256MB;
beyond it DuckDB spills to disk). DuckDB's own threads default (one per core) is kept for the
run database and writers. A private DuckDB that only streams a file to Python (a file extractor
feeding a writer) runs with one thread and half the memory: its reader is consumed by one
thread anyway, and each extra scanning thread holds its own read-ahead buffers (measured with
bench/local_bench.py: peak RSS of a streamed 5M-row CSV 247 -> 205 MiB, no slower).

preserve_insertion_order stays on (DuckDB's default): with it off, CREATE TABLE ... AS SELECT
... ORDER BY in a processor no longer stores rows in order, so a writer after it would write
unsorted files, and extracts would not keep the source's row order.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

DEFAULT_MEMORY_LIMIT = "256MB"
STREAM_MEMORY_LIMIT = "128MB"


def memory_limit() -> str:
    """DuckDB memory_limit per database: $OSIRIS_DUCKDB_MEMORY_LIMIT or 256MB (spills to disk beyond)."""
    return os.environ.get("OSIRIS_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def open_duckdb(
    path: Path | str | None = None, *, read_only: bool = False, streaming: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (in memory when path is None) with the runtime's memory limit.
    streaming=True: a private database that only feeds an Arrow reader (one thread, less memory)."""
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit()}
    if streaming:
        if not os.environ.get("OSIRIS_DUCKDB_MEMORY_LIMIT"):
            config["memory_limit"] = STREAM_MEMORY_LIMIT
        config["threads"] = 1
    target = ":memory:" if path is None else str(path)
    return duckdb.connect(target, read_only=read_only, config=config)
