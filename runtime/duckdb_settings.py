"""Opening DuckDB connections with the runtime's resource limits (memory, threads).

Every DuckDB the runtime opens gets memory_limit ($OSIRIS_DUCKDB_MEMORY_LIMIT, default 256MB;
beyond it DuckDB spills to disk). DuckDB's own threads default (one per core) is kept for the
run database and writers. A private DuckDB that only streams a file to Python (a file extractor
feeding a writer) runs with one thread and 128MB: its reader is consumed by one thread anyway,
and every scanning thread holds its own read-ahead buffers (streaming a 5M-row, 226 MiB CSV
through Arrow: peak RSS 247 -> 205 MiB, no slower).

Measured with bench/local_bench.py at 5M rows (2 cores): the default path peaks at ~260 MiB
with 192MB, 256MB or 320MB alike; 160MB slows the group-by by a third (spilling) and 128MB can
fail it (out of memory). With OSIRIS_MATERIALIZE=all the peak is 366 MiB at 256MB, 311 MiB at
192MB, 281 MiB at 160MB - lower the limit there if memory matters more than time.

preserve_insertion_order stays on (DuckDB's default). Turning it off would save the ~2 s
checkpoint of a 5M-row extract table and ~100 MiB, but then CREATE TABLE ... AS SELECT ...
ORDER BY in a processor no longer stores rows in order (a writer after it wrote an unsorted
file: 684 inversions in 5M rows), and extracts would not keep the source's row order.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

DEFAULT_MEMORY_LIMIT = "256MB"
STREAM_MEMORY_LIMIT = "128MB"
LOAD_MEMORY_LIMIT = "32MB"


def memory_limit() -> str:
    """DuckDB memory_limit per database: $OSIRIS_DUCKDB_MEMORY_LIMIT or 256MB (spills to disk beyond)."""
    return os.environ.get("OSIRIS_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT


def load_memory_limit() -> str:
    """memory_limit of a DuckDB writer appending a stream to a table without indexes:
    $OSIRIS_DUCKDB_MEMORY_LIMIT or 32MB.

    Such an append writes each full row group to the database file as it goes, before the
    commit (DuckDB's optimistic writes; a rollback leaves them as free blocks), so the buffer pool
    only caches blocks nothing reads again, and with 256MB it grew to the limit
    (bench/memory_bench.py, PostgreSQL -> DuckDB at 5M rows: peak RSS 367 MiB with 256MB, 240 MiB
    with 32MB, flat from 1M rows; nothing spilled, same CPU time). An index (PRIMARY KEY, UNIQUE, FOREIGN KEY, CREATE INDEX) is kept in memory
    while it grows - a 5M-row primary key runs out of memory below ~128MB - and upsert joins, so
    those keep memory_limit()."""
    return os.environ.get("OSIRIS_DUCKDB_MEMORY_LIMIT") or LOAD_MEMORY_LIMIT


def open_duckdb(
    path: Path | str | None = None, *, read_only: bool = False, streaming: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (in memory when path is None) with the runtime's memory limit.
    streaming=True: a private database that only feeds an Arrow reader (one thread, less memory)."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit(),
        # JSON and UUID leave DuckDB as Arrow extension types, so a writer downstream of the
        # run database creates json/uuid columns instead of text.
        "arrow_lossless_conversion": True,
        # DuckDB caches the blocks of files it reads in its buffer pool; a run reads each file
        # once, so the cache only grew memory (bench/local_bench.py, 5M rows: peak RSS
        # 283-303 -> 217-250 MiB, no slower).
        "enable_external_file_cache": False,
    }
    if streaming:
        if not os.environ.get("OSIRIS_DUCKDB_MEMORY_LIMIT"):
            config["memory_limit"] = STREAM_MEMORY_LIMIT
        config["threads"] = 1
    import duckdb  # ~65 ms: not loaded by runs that never touch DuckDB (database to database)

    target = ":memory:" if path is None else str(path)
    return duckdb.connect(target, read_only=read_only, config=config)


# Only what scanned_rows reads from a profile (which files were scanned, how far): no per-operator
# timing, so profiling costs next to nothing.
_SCAN_METRICS = (
    "['operator.type', 'operator.extra_info', 'operator.rows_scanned', 'operator.bytes_scanned']"
)


def execute_main_query(
    con: duckdb.DuckDBPyConnection, ctx: Any, sql: str
) -> tuple[Any, ...] | None:
    """Run a step's main statement and return its first result row. When asked for it
    (ctx.profile_main_query), DuckDB's JSON profile of the statement is left on
    ctx.main_query_profile: scanned_rows counts the rows of files read in place from it.
    The result is fetched to the end: DuckDB 2 refuses relational calls on a connection with an
    unfinished result."""
    if getattr(ctx, "profile_main_query", False) is not True:
        return _first(con.execute(sql).fetchall())
    import duckdb

    with contextlib.suppress(duckdb.Error):  # older DuckDB: profile everything
        con.execute(f"SET tracked_metrics = {_SCAN_METRICS}")
    con.execute("PRAGMA enable_profiling = 'no_output'")
    try:
        found = _first(con.execute(sql).fetchall())
        ctx.main_query_profile = con.get_profiling_information(format="json")
        return found
    finally:
        con.execute("PRAGMA disable_profiling")
        with contextlib.suppress(duckdb.Error):
            con.execute("RESET tracked_metrics")


def _first(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    return rows[0] if rows else None


def scanned_rows(profile: str | None, files: Sequence[str], size: int) -> int | None:
    """Rows of a CSV source (one path or glob, as configured) read by a query, from DuckDB's
    JSON profile of that query, or None when the profile does not prove it: every READ_CSV scan
    in the plan must be of exactly this source and have read all of its bytes (so a LIMIT that
    stopped early, or compressed input, does not qualify), and all of them must agree."""
    if not profile or len(files) != 1:
        return None
    try:
        tree = json.loads(profile)
    except ValueError:
        return None
    scans: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TABLE_SCAN":
                scans.append(node)
            for child in node.get("children") or []:
                walk(child)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(tree.get("operator") if isinstance(tree, dict) else None)
    counts = set()
    for scan in scans:
        info = scan.get("extra_info") or {}
        function = info.get("Function")
        if function is None and scan.get("bytes_scanned"):
            return None  # a file scan we cannot identify (e.g. a streaming LIMIT)
        if function != "READ_CSV":
            continue
        if info.get("Filename(s)") != files[0] or scan.get("bytes_scanned") != size:
            return None
        counts.add(scan.get("rows_scanned"))
    if len(counts) != 1:
        return None
    (rows,) = counts
    return rows if isinstance(rows, int) and rows >= 0 else None


def plain_booleans(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """DuckDB's lossless Arrow export (kept for JSON and UUID) turns BOOLEAN into the arrow.bool8
    extension; drivers expect Arrow's own bool."""
    import pyarrow as pa

    bool8 = [
        i
        for i, field in enumerate(reader.schema)
        if isinstance(field.type, pa.BaseExtensionType)
        and field.type.extension_name == "arrow.bool8"
    ]
    if not bool8:
        return reader
    schema = reader.schema
    for i in bool8:
        schema = schema.set(i, schema.field(i).with_type(pa.bool_()))

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            columns = list(batch.columns)
            for i in bool8:
                columns[i] = columns[i].storage.cast(pa.bool_())
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())
