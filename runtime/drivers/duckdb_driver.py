"""DuckDB drivers: extractor (read-only attach), transactional writer, and the in-place processor."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb

from osiris.runtime.drivers.base import (
    Abilities,
    DriverError,
    StepContext,
    StepResult,
    settle,
    unique_columns,
)
from osiris.runtime.drivers.incremental import SqlIncremental
from osiris.runtime.duckdb_settings import (
    execute_main_query,
    load_memory_limit,
    open_duckdb,
    plain_booleans,
)
from osiris.runtime.sql import ident_list, qualified, quote_ident, quote_literal

if TYPE_CHECKING:
    import pyarrow as pa

_SOURCE_ALIAS = "osiris_source"
_INPUT_VIEW = "osiris_input"

# One process may hold a DuckDB file open only once; steps touching the same file take turns.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


def database_path(ctx: StepContext) -> Path:
    """The database file from the resolved connection's 'path', else the config's 'path'."""
    raw: Any = None
    if ctx.connection is not None:
        raw = ctx.connection.get("path") or ctx.connection.get("database")
    if raw is None:
        raw = ctx.config.get("path")
    if not isinstance(raw, str) or not raw:
        raise DriverError("no DuckDB database path (set 'path' or a connection)")
    return ctx.resolve_path(raw)


def _split_table(name: str, schema: str | None) -> tuple[str | None, str]:
    if schema:
        return schema, name
    if "." in name and '"' not in name:
        first, _, rest = name.partition(".")
        return first, rest
    return None, name


def extract_query(ctx: StepContext) -> str:
    """SELECT for a duckdb.extractor config: table or query, then columns, where, limit."""
    cfg = ctx.config
    table, query = cfg.get("table"), cfg.get("query")
    if bool(table) == bool(query):
        raise DriverError("set exactly one of 'table' or 'query'")
    if table:
        source = qualified(*_split_table(str(table), cfg.get("schema")))
    else:
        source = f"({str(query).strip().rstrip(';')}) AS {quote_ident('q')}"
    columns = cfg.get("columns")
    sql = f"SELECT {ident_list(columns) if columns else '*'} FROM {source}"
    if cfg.get("where"):
        sql += f" WHERE {cfg['where']}"
    if cfg.get("limit") is not None:
        sql += f" LIMIT {int(cfg['limit'])}"
    return sql


def lock_timeout() -> float:
    """Seconds to wait for another process's lock on a DuckDB file ($OSIRIS_DUCKDB_LOCK_TIMEOUT, 30)."""
    try:
        return float(os.environ.get("OSIRIS_DUCKDB_LOCK_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def _waiting_for_lock(
    open_database: Callable[[], duckdb.DuckDBPyConnection],
) -> duckdb.DuckDBPyConnection:
    """Open, retrying while another process holds the file's lock (DuckDB allows one writer)."""
    deadline = time.monotonic() + lock_timeout()
    delay = 0.05
    while True:
        try:
            return open_database()
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _attach_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    def attach() -> duckdb.DuckDBPyConnection:
        con = open_duckdb()
        try:
            con.execute(f"ATTACH {quote_literal(str(path))} AS {_SOURCE_ALIAS} (READ_ONLY)")
            con.execute(f"USE {_SOURCE_ALIAS}")
        except BaseException:
            con.close()
            raise
        return con

    return _waiting_for_lock(attach)


class DuckDBExtractor:
    """duckdb.extractor: reads a table or query from a DuckDB file attached read-only."""

    abilities: ClassVar[Abilities] = Abilities(roles=("extractor",), database_file=True)

    def database_file(self, ctx: StepContext) -> Path:
        return database_path(ctx).resolve()

    def extract(self, ctx: StepContext) -> pa.RecordBatchReader:
        import pyarrow as pa

        path = database_path(ctx)
        if not path.is_file():
            raise DriverError(f"DuckDB database {path} does not exist")
        query = extract_query(ctx)
        incremental = SqlIncremental.open(ctx, ctx.config.get("incremental"))
        lock = _file_lock(path)
        with lock:
            con = _attach_read_only(path)
            try:
                schema = plain_booleans(con.sql(query).limit(0).to_arrow_reader(1)).schema
            finally:
                con.close()
        batch_size = ctx.batch_size
        params: list[Any] = []
        if incremental is not None:
            incremental.check_columns(schema.names)
            if incremental.window.since is not None:
                query = incremental.wrap(query, quote_ident(incremental.column), "?")
                params = [incremental.window.since]
                ctx.log(f"incremental: {query} [1 parameter]")

        def batches() -> Iterator[pa.RecordBatch]:
            # Opened again only when read, so the file lock is always released by this generator.
            with lock:
                source = _attach_read_only(path)
                try:
                    relation = source.sql(query, params=params or None)
                    yield from plain_booleans(relation.to_arrow_reader(batch_size))
                finally:
                    source.close()

        stream = batches()
        if incremental is not None:
            stream = incremental.track(ctx, stream)
        return pa.RecordBatchReader.from_batches(schema, stream)


class DuckDBWriter:
    """duckdb.writer: append | replace | upsert in one transaction; on failure nothing changes."""

    abilities: ClassVar[Abilities] = Abilities(
        roles=("writer",), database_file=True, deferred_publish=True
    )

    def database_file(self, ctx: StepContext) -> Path:
        return database_path(ctx).resolve()

    def write(self, ctx: StepContext, data: pa.RecordBatchReader) -> StepResult:
        cfg = ctx.config
        path = database_path(ctx)
        table = cfg.get("table")
        if not isinstance(table, str) or not table:
            raise DriverError("'table' is required")
        schema = cfg.get("schema") or "main"
        mode = cfg.get("write_mode", "append")
        if mode not in ("append", "replace", "upsert"):
            raise DriverError(f"write_mode {mode!r} is not append, replace or upsert")
        create = cfg.get("create_if_missing", True) is not False
        if ctx.connection is not None and ctx.connection.get("read_only") in (True, "true"):
            raise DriverError("the connection is read_only; a writer needs write access")
        if not path.exists() and not create:
            raise DriverError(
                f"DuckDB database {path} does not exist and create_if_missing is false"
            )
        unique_columns(ctx.step_id, data.schema.names)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            con = _waiting_for_lock(lambda: open_duckdb(path))
            try:
                con.register(_INPUT_VIEW, data)
                load = _Load(ctx, con, schema, table, create)
                if mode != "upsert" and not load.indexed():
                    con.execute(f"SET memory_limit = {quote_literal(load_memory_limit())}")
                con.execute("BEGIN TRANSACTION")
                with ctx.on_cancel(con.interrupt):
                    rows = load.run(mode)
                con.unregister(_INPUT_VIEW)  # the input is read: do not hold it while pending
            except BaseException:
                _TransactionPublication(con, load=None, target="").discard()
                raise
            # Under --atomic the transaction stays open until the run publishes; the file lock
            # is released (another step on this file opens the same in-process database).
            publication = _TransactionPublication(con, load, f"table {schema}.{table} in {path}")
        return settle(ctx, publication, StepResult(rows_in=rows, rows_out=rows))


class _TransactionPublication:
    """A DuckDB writer's open transaction: COMMIT publishes, ROLLBACK discards."""

    def __init__(self, con: duckdb.DuckDBPyConnection, load: _Load | None, target: str) -> None:
        self.con: duckdb.DuckDBPyConnection | None = con
        self.load = load
        self.target = target

    def publish(self) -> None:
        con = self.con
        if con is None:
            raise DriverError(f"{self.target}: the load was discarded")
        try:
            con.execute("COMMIT")
        except duckdb.Error as err:
            self.discard()
            raise DriverError(f"{self.target}: commit failed: {err}") from None
        self.con = None
        try:
            if self.load is not None and self.load.created:
                self.load.save_ddl()
        finally:
            con.close()

    def discard(self) -> None:
        con, self.con = self.con, None
        if con is None:
            return
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        with contextlib.suppress(duckdb.Error):
            con.close()


class _Load:
    """One write into a DuckDB table, executed inside the caller's transaction."""

    def __init__(
        self,
        ctx: StepContext,
        con: duckdb.DuckDBPyConnection,
        schema: str,
        table: str,
        create: bool,
    ) -> None:
        self.ctx = ctx
        self.con = con
        self.schema = schema
        self.table = table
        self.target = qualified(schema, table)
        self.create = create
        self.created = False

    def _scalar(self, sql: str, params: list[Any] | None = None) -> int:
        found = self.con.execute(sql, params or []).fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def _exists(self) -> bool:
        return bool(
            self._scalar(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ?",
                [self.schema, self.table],
            )
        )

    def indexed(self) -> bool:
        """Whether the target table has an index to maintain (see load_memory_limit)."""
        where = "WHERE database_name = current_database() AND schema_name = ? AND table_name = ?"
        key = [self.schema, self.table]
        return bool(
            self._scalar(f"SELECT count(*) FROM duckdb_indexes() {where}", key)
            or self._scalar(
                f"SELECT count(*) FROM duckdb_constraints() {where} AND constraint_type IN "
                "('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')",
                key,
            )
        )

    def _ensure_schema(self) -> None:
        known = self._scalar(
            "SELECT count(*) FROM duckdb_schemas() WHERE database_name = current_database() "
            "AND schema_name = ?",
            [self.schema],
        )
        if not known:
            self.con.execute(f"CREATE SCHEMA {quote_ident(self.schema)}")

    def run(self, mode: str) -> int:
        exists = self._exists()
        if not exists and not self.create:
            raise DriverError(
                f"target table {self.schema}.{self.table} does not exist "
                "and create_if_missing is false"
            )
        if not exists:
            self._ensure_schema()
        if mode == "append":
            return self._append(exists)
        if mode == "replace":
            return self._replace(exists)
        return self._upsert(exists)

    def _append(self, exists: bool) -> int:
        if exists:
            return self._scalar(f"INSERT INTO {self.target} BY NAME SELECT * FROM {_INPUT_VIEW}")
        self.created = True
        return self._scalar(f"CREATE TABLE {self.target} AS SELECT * FROM {_INPUT_VIEW}")

    def _replace(self, exists: bool) -> int:
        if not exists:
            return self._append(exists)
        # The table keeps its definition (columns, types, keys, constraints, defaults), as with
        # the PostgreSQL and MySQL writers: rows that do not fit fail the load, which rolls back.
        self.con.execute(f"DELETE FROM {self.target}")
        return self._scalar(f"INSERT INTO {self.target} BY NAME SELECT * FROM {_INPUT_VIEW}")

    def _upsert(self, exists: bool) -> int:
        keys = self.ctx.config.get("primary_key")
        if isinstance(keys, str):
            keys = [keys]
        if not keys or not all(isinstance(k, str) for k in keys):
            raise DriverError("write_mode upsert needs 'primary_key'")
        stage = quote_ident(f"osiris_stage_{secrets.token_hex(4)}")
        rows = self._scalar(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {_INPUT_VIEW}")
        columns = [r[0] for r in self.con.execute(f"DESCRIBE {stage}").fetchall()]
        missing = [k for k in keys if k not in columns]
        if missing:
            raise DriverError(f"primary_key column(s) {', '.join(missing)} not in the input")
        duplicates = self._scalar(
            f"SELECT count(*) FROM (SELECT 1 FROM {stage} GROUP BY {ident_list(keys)} HAVING count(*) > 1)"
        )
        if duplicates:
            raise DriverError(
                f"{duplicates} primary key value(s) occur more than once in the input"
            )
        if not exists:
            self.con.execute(f"CREATE TABLE {self.target} AS SELECT * FROM {stage} LIMIT 0")
            self.con.execute(f"ALTER TABLE {self.target} ADD PRIMARY KEY ({ident_list(keys)})")
            self.created = True
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        updates = ", ".join(
            f"{quote_ident(c)} = s.{quote_ident(c)}" for c in columns if c not in keys
        )
        matched = f"WHEN MATCHED THEN UPDATE SET {updates} " if updates else ""
        self.con.execute(
            f"MERGE INTO {self.target} AS t USING {stage} AS s ON ({on}) "
            f"{matched}WHEN NOT MATCHED THEN INSERT BY NAME"
        )
        self.con.execute(f"DROP TABLE {stage}")
        return rows

    def save_ddl(self) -> None:
        found = self.con.execute(
            "SELECT sql FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ?",
            [self.schema, self.table],
        ).fetchone()
        if found and found[0]:
            self.ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
            (self.ctx.artifacts_dir / "ddl.sql").write_text(str(found[0]) + "\n", encoding="utf-8")


def processor_aliases(ctx: StepContext) -> dict[str, str]:
    """Extra names a processor query may use: input / input_df (one input), df_<id>, input names."""
    upstream = tuple(dict.fromkeys(ctx.inputs.values()))
    aliases: dict[str, str] = {}
    if len(upstream) == 1:
        aliases["input"] = upstream[0]
        aliases["input_df"] = upstream[0]
    for table in upstream:
        aliases[f"df_{table}"] = table
    for name, table in ctx.inputs.items():
        aliases.setdefault(name, table)
    return {a: t for a, t in aliases.items() if a != t and a not in upstream}


class DuckDBProcessor:
    """duckdb.processor: runs the step's query in the run database as CREATE TABLE <step_id>
    (or, when the planner chose it, defines it as VIEW <step_id>)."""

    abilities: ClassVar[Abilities] = Abilities(roles=("processor",), view_processor=True)

    def transform(self, ctx: StepContext) -> StepResult:
        body = _processor_query(ctx)
        con = ctx.run_db()
        with _input_aliases(con, processor_aliases(ctx)):
            unique_columns(ctx.step_id, con.sql(body).columns)
            found = execute_main_query(
                con, ctx, f"CREATE TABLE main.{quote_ident(ctx.step_id)} AS {body}"
            )
        # Counting a table is free; counting a view (a file read in place) would read the file
        # again, so views are left out here and the engine adds their known row counts.
        tables = {
            name
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        }
        rows_in = 0
        for table in dict.fromkeys(ctx.inputs.values()):
            if table not in tables:
                continue
            counted = con.execute(f"SELECT count(*) FROM main.{quote_ident(table)}").fetchone()
            rows_in += int(counted[0]) if counted else 0
        return StepResult(rows_in=rows_in, rows_out=int(found[0]) if found else 0)

    def define_view(self, ctx: StepContext) -> None:
        body = _processor_query(ctx)
        aliases = processor_aliases(ctx)
        con = ctx.run_db()
        # Bound as written: in the view's wrapping SELECT a clash of output names (which DuckDB
        # would rename `a`, `a_1`) is no longer visible.
        with _input_aliases(con, aliases):
            unique_columns(ctx.step_id, con.sql(body).columns)
        if aliases:
            # A view outlives this connection's temp views, so the aliases become CTEs; NOT
            # MATERIALIZED keeps a self-join from copying its input into memory.
            ctes = ", ".join(
                f"{quote_ident(alias)} AS NOT MATERIALIZED (SELECT * FROM main.{quote_ident(table)})"
                for alias, table in aliases.items()
            )
            body = f"WITH {ctes} SELECT * FROM (\n{body}\n) AS osiris_query"
        con.execute(f"CREATE VIEW main.{quote_ident(ctx.step_id)} AS {body}")


@contextlib.contextmanager
def _input_aliases(con: duckdb.DuckDBPyConnection, aliases: dict[str, str]) -> Iterator[None]:
    """The processor's input aliases (input, df_<id>, input names) as temp views, for a block."""
    created: list[str] = []
    try:
        for alias, table in aliases.items():
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {quote_ident(alias)} AS "
                f"SELECT * FROM main.{quote_ident(table)}"
            )
            created.append(alias)
        yield
    finally:
        for alias in created:
            con.execute(f"DROP VIEW IF EXISTS temp.{quote_ident(alias)}")


def _processor_query(ctx: StepContext) -> str:
    query = ctx.config.get("query")
    if not isinstance(query, str) or not query.strip():
        raise DriverError("'query' is required")
    return query.strip().rstrip(";")
