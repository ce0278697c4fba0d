"""PostgreSQL/Supabase extractor and writer: CSV COPY both ways, parsed and encoded by Arrow's C++ CSV."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv
from psycopg import pq
from psycopg import sql as pgsql
from psycopg.copy import LibpqWriter

from osiris.runtime.drivers.base import (
    Abilities,
    ConnectionFailure,
    DriverError,
    PartTable,
    StepContext,
    StepResult,
    settle,
    unique_columns,
)
from osiris.runtime.drivers.incremental import SqlIncremental
from osiris.runtime.drivers.sql_common import (
    DriverConfigError,
    ExtractOptions,
    WriteOptions,
    connect_as_configured,
    connection_failure,
    no_route,
    rebatch,
    refused,
    require_upsert_key,
    scrub,
    settings,
    timed_out,
    unresolved,
    where,
    whole,
    write_ddl,
)
from osiris.runtime.drivers.sql_csv import encode_batch
from osiris.runtime.drivers.sqltypes import create_table_ddl, is_json, is_uuid, pg_to_arrow
from osiris.runtime.partitions import PartitionSpec, predicates

SESSION = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET bytea_output = 'hex'",
    "SET extra_float_digits = 3",
    # The compiler writes params into '...' literals by doubling quotes only; that is exact
    # only when backslashes are plain characters there, which this makes sure of.
    "SET standard_conforming_strings = on",
)
CSV_CHUNK = 1 << 20  # bytes of COPY output parsed at a time
MAX_IDENTIFIER = 63


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str | None, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


# ---- connection ------------------------------------------------------------------------------


def _params(s: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(dsn, keyword overrides) for psycopg.connect; DriverConfigError when unusable."""
    if not s.get("dsn") and not s.get("host"):
        if s.get("url") or s.get("key") or s.get("service_role_key"):
            raise DriverConfigError(
                "this Supabase connection has only REST credentials (url/key); the driver talks "
                "PostgreSQL: add host, port, database, user, password, or dsn = the PostgreSQL "
                "connection string from Supabase -> Project Settings -> Database"
            )
        raise DriverConfigError(
            "PostgreSQL connection needs host, port, database, user, password (or dsn)"
        )
    kw: dict[str, Any] = {
        "connect_timeout": int(s.get("connect_timeout") or 10),
        "application_name": s.get("application_name") or "osiris",
    }
    fields = {"host": "host", "port": "port", "database": "dbname", "user": "user"}
    fields.update({"password": "password", "sslmode": "sslmode"})
    for ours, libpq in fields.items():
        if s.get(ours) not in (None, ""):
            kw[libpq] = str(s[ours])
    if s.get("password") == "":
        kw.pop("password", None)
    return str(s.get("dsn") or ""), kw


def describe(s: Mapping[str, Any]) -> str:
    """Secret-free 'user@host:port/database' for messages."""
    info: dict[str, Any] = {}
    if s.get("dsn"):
        try:
            info = dict(psycopg.conninfo.conninfo_to_dict(str(s["dsn"])))
        except psycopg.Error:
            info = {}
    return where(
        s.get("host") or info.get("host"),
        s.get("port") or info.get("port") or 5432,
        s.get("database") or info.get("dbname"),
        s.get("user") or info.get("user"),
    )


def _secrets(s: Mapping[str, Any]) -> tuple[Any, ...]:
    found = [s.get("password"), s.get("dsn"), s.get("key"), s.get("service_role_key")]
    if s.get("dsn"):
        with contextlib.suppress(psycopg.Error):
            found.append(psycopg.conninfo.conninfo_to_dict(str(s["dsn"])).get("password"))
    return tuple(found)


def connect(s: Mapping[str, Any]) -> psycopg.Connection[Any]:
    dsn, kw = _params(s)
    try:
        conn = psycopg.connect(dsn, **kw)
    except psycopg.Error as err:
        raise _connect_failure(s, dsn, kw, err) from None
    for stmt in SESSION:
        conn.execute(stmt)
    conn.commit()
    return conn


def _cancel_statement(conn: psycopg.Connection[Any]) -> Callable[[], None]:
    """Cancels the statement running on conn, on the server (for ctx.on_cancel)."""
    return lambda: conn.cancel_safe(timeout=5)


# Rejections by the server while connecting: (SQLSTATE, its message, reason, our sentence).
# libpq keeps no result for errors of the connection phase, so psycopg gives no SQLSTATE
# there; the server's own message (PostgreSQL's auth.c and postinit.c) identifies it.
_REJECTIONS = (
    ("28P01", r"^password authentication failed", "authentication",
     "password authentication failed for user {user}; check the password"),
    ("28000", r'^role ".*" does not exist', "unknown_user",
     "user (role) {user} does not exist on the server"),
    ("3D000", r'^database ".*" does not exist', "unknown_database",
     "database {database} does not exist on the server"),
    ("28000", r"authentication failed|pg_hba\.conf|not permitted to log in", "authentication",
     "the server does not let user {user} log in; check the user and the server's pg_hba.conf"),
    ("42501", r"^permission denied for database", "authentication",
     "user {user} may not connect to database {database} (no CONNECT privilege)"),
)  # fmt: skip


def _connect_failure(
    s: Mapping[str, Any], dsn: str, kw: Mapping[str, Any], err: psycopg.Error
) -> DriverError:
    """Why psycopg.connect failed: the server's SQLSTATE when there is one, else the server's
    FATAL message, else libpq's own (client-side) message."""
    text = str(err)
    for prefix in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(prefix)
    secrets = _secrets(s)
    said = whole(text, *secrets)
    if isinstance(err, psycopg.ProgrammingError) or re.match(r"invalid \w+ value", text):
        return DriverConfigError(f"invalid PostgreSQL connection settings: {said}", detail=said)
    info: dict[str, Any] = {}
    with contextlib.suppress(psycopg.Error):
        info = dict(psycopg.conninfo.conninfo_to_dict(psycopg.conninfo.make_conninfo(dsn, **kw)))
    host, port = info.get("host") or "localhost", info.get("port") or 5432
    names = {"user": repr(info.get("user") or "?"), "database": repr(info.get("dbname") or "?")}

    def failure(reason: str, sentence: str, origin: str = "psycopg") -> ConnectionFailure:
        return connection_failure(
            "PostgreSQL", describe(s), reason, sentence, f"{origin}: {said}", whole(text, *secrets)
        )

    fatal = re.search(r"FATAL:\s+(.*)", text)
    if fatal:  # the server's own words, without libpq's "connection to server at ..." around them
        said = whole(re.sub(r"\s+", " ", fatal.group(0)), *secrets)
    state = getattr(err, "sqlstate", None)
    for code, pattern, reason, sentence in _REJECTIONS:
        if (state == code) or (not state and fatal and re.search(pattern, fatal.group(1))):
            return failure(reason, sentence.format(**names), "server")
    if fatal or state:
        return failure("other", "the server refused the connection", "server")
    low = text.lower()
    if isinstance(err, getattr(psycopg.errors, "ConnectionTimeout", ())) or "timeout" in low:
        return failure("unreachable", timed_out(host, port, kw.get("connect_timeout")))
    pgconn = getattr(err, "pgconn", None)
    if pgconn is not None and pgconn.needs_password:
        return failure("authentication", f"the server wants a password for user {names['user']} "
                       "and the connection has none")  # fmt: skip
    if "connection refused" in low:
        return failure("refused", refused(host, port))
    if "resolve host" in low or "translate host name" in low or "not known" in low:
        return failure("unreachable", unresolved(host))
    if "no route to host" in low or "network is unreachable" in low:
        return failure("unreachable", no_route(host))
    return failure("other", "the connection failed")


# Errors of a running statement that are not about the data: (SQLSTATE, what happened).
_STATEMENT_STATES = {
    "40P01": "deadlock: this step and another transaction each waited for locks the other held, "
    "and the server cancelled this step's statement",
    "40001": "serialization failure: a concurrent transaction changed the same rows",
    "55P03": "a lock could not be acquired in time (lock_timeout)",
    "57014": "the statement was cancelled on the server (statement_timeout or a cancel request)",
    "57P01": "the server ended the session (terminated by an administrator, or shutting down)",
    "57P02": "the server ended the session (crash shutdown)",
    "57P03": "the server is not accepting connections now",
    "25P03": "the server ended the session (idle_in_transaction_session_timeout)",
    "53100": "the server ran out of disk space",
    "53200": "the server ran out of memory",
    "53300": "the server has too many connections",
}


def _fail(s: Mapping[str, Any], what: str, err: BaseException) -> DriverError:
    """A statement's error: our sentence for what happened (by SQLSTATE), then the server's."""
    secrets = _secrets(s)
    said = whole(str(err), *secrets)
    state = getattr(err, "sqlstate", None) or ""
    happened = _STATEMENT_STATES.get(state)
    if happened is None and isinstance(err, psycopg.OperationalError):
        happened = "the connection was lost" if not state or state.startswith("08") else None
    prefix = f"PostgreSQL {describe(s)}: {what}"
    if happened is None:
        return DriverError(f"{prefix}: {scrub(str(err), *secrets)}", detail=said)
    return DriverError(f"{prefix}: {happened} (server: {scrub(str(err), *secrets)})", detail=said)


# ---- extract ---------------------------------------------------------------------------------


class _CopyStream:
    """`COPY ... TO STDOUT` as chunks of whole rows, read in the consumer's thread.

    Reads libpq's copy data straight off psycopg's PGconn: COPY sends one message per row, and
    psycopg's Copy.read() costs a generator round trip per message (5M rows: 9.3 s through
    Copy.read(), 3.3 s like this, as fast as psql's \\copy). As every message is one row, a chunk
    ends on a row boundary and Arrow parses it on its own: no row is too long for a block, and
    nothing reads ahead (Arrow's streaming CSV reader read up to 32 blocks ahead on its own
    thread, 128 MiB of 4 MiB blocks whenever the writer was slower than PostgreSQL)."""

    def __init__(self, conn: psycopg.Connection[Any], sql: str) -> None:
        self._pg = conn.pgconn
        started = self._pg.exec_(sql.encode(conn.info.encoding))
        if started.status != pq.ExecStatus.COPY_OUT:
            raise _result_error(self._pg, started)

    def chunks(self, size: int) -> Iterator[bytearray]:
        """The rows, about `size` bytes at a time (a longer row is a chunk of its own)."""
        get = self._pg.get_copy_data
        chunk = bytearray()
        while True:
            length, row = get(0)
            if length < 0:
                self._end(length)
                break
            chunk += row
            if len(chunk) >= size:
                yield chunk
                chunk = bytearray()
        if chunk:
            yield chunk

    def _end(self, size: int) -> None:
        if size == -2:  # the connection failed
            raise psycopg.OperationalError(_message(self._pg.error_message))
        finished = self._pg.get_result()
        if finished is not None and finished.status != pq.ExecStatus.COMMAND_OK:
            raise _result_error(self._pg, finished)


def _message(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace").strip() or "unknown error"


def _result_error(pg: Any, result: Any) -> psycopg.Error:
    """The error a failed COPY result carries; FATAL ones end the session (connection lost)."""
    if result.error_field(pq.DiagnosticField.SQLSTATE):  # the class its SQLSTATE says
        return psycopg.errors.error_from_result(result)
    primary = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY)
    text = _message(primary or result.error_message or pg.error_message)
    severity = result.error_field(pq.DiagnosticField.SEVERITY_NONLOCALIZED)
    if pg.status != pq.ConnStatus.OK or severity in (b"FATAL", b"PANIC"):
        return psycopg.OperationalError(text)
    return psycopg.DatabaseError(text)


def _csv_type(dt: pa.DataType) -> pa.DataType:
    if isinstance(dt, pa.BaseExtensionType) or pa.types.is_binary(dt):
        return pa.string()
    return dt


def _finish(arr: pa.Array, dt: pa.DataType) -> pa.Array:
    """Turn a parsed CSV column into its final type (bytea hex, uuid and json text)."""
    if is_json(dt):
        return pa.ExtensionArray.from_storage(dt, arr)
    if is_uuid(dt):
        raw = [None if v is None else uuid.UUID(v).bytes for v in arr.to_pylist()]
        return pa.ExtensionArray.from_storage(dt, pa.array(raw, pa.binary(16)))
    if pa.types.is_binary(dt):
        return pa.array([None if v is None else bytes.fromhex(v[2:]) for v in arr.to_pylist()], dt)
    return arr


_SINCE_SETTING = "osiris.incremental_since"  # where an incremental read's bound value waits


class PostgresExtractor:
    """Streams `COPY (query) TO STDOUT (FORMAT csv)` into Arrow batches with the result's own types."""

    abilities: ClassVar[Abilities] = Abilities(roles=("extractor",), partitioned_source=True)

    def partitions(self, ctx: StepContext, spec: Mapping[str, Any]) -> list[str | None]:
        opts = ExtractOptions.parse(settings(ctx), ctx)
        s, conn = connect_as_configured(ctx, connect)
        table = qualified(opts.schema or s.get("schema"), opts.table or "")

        def min_max(column: str) -> tuple[Any, Any]:
            found = conn.execute(opts.bounds_sql(table, column)).fetchone()
            return (found[0], found[1]) if found else (None, None)

        try:
            return predicates(PartitionSpec.parse(spec), quote, min_max)
        except psycopg.Error as err:
            raise _fail(s, "reading the partition bounds", err) from None
        finally:
            conn.close()

    def extract(self, ctx: StepContext) -> pa.RecordBatchReader:
        opts = ExtractOptions.parse(settings(ctx), ctx)
        incremental = SqlIncremental.open(ctx, ctx.config.get("incremental"))
        s, conn = connect_as_configured(ctx, connect)
        table = qualified(opts.schema or s.get("schema"), opts.table or "")
        base = opts.select_sql(table, quote)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM ({opts.limited(base)}) AS osiris_q LIMIT 0")
                cols = cur.description or []
            order: tuple[str, ...] = ()
            if opts.offset is not None:  # a stable order, so the rows skipped are the same each run
                order = opts.order_key(primary_key(conn, table), [c.name for c in cols])
            select = opts.limited(base, [quote(c) for c in order])
            schema = pa.schema(
                [(c.name, pg_to_arrow(c.type_code, c.precision, c.scale)) for c in cols]
            )
            since: tuple[Any, ...] | None = None
            if incremental is not None:
                incremental.check_columns(schema.names)
                if incremental.window.since is not None:
                    # COPY takes no parameters: the value is bound into a session setting
                    # (set_config($1)) and the query reads it back, cast to the column's type
                    oid = cols[schema.names.index(incremental.column)].type_code
                    row = conn.execute("SELECT format_type(%s, NULL)", (oid,)).fetchone()
                    typename = row[0] if row else "text"
                    select = incremental.wrap(
                        select,
                        quote(incremental.column),
                        f"CAST(current_setting('{_SINCE_SETTING}') AS {typename})",
                    )
                    since = (str(incremental.window.since),)
                    ctx.log(f"incremental: {select} [1 parameter]")
            conn.rollback()
        except psycopg.Error as err:
            conn.close()
            raise _fail(s, "reading the result's columns", err) from None
        batches = self._stream(ctx, s, conn, select, schema, opts.batch_size, since)
        if incremental is not None:
            batches = incremental.track(ctx, batches)
        return pa.RecordBatchReader.from_batches(schema, batches)

    def _stream(
        self,
        ctx: StepContext,
        s: Mapping[str, Any],
        conn: psycopg.Connection[Any],
        select: str,
        schema: pa.Schema,
        batch_size: int,
        since: tuple[Any, ...] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        names = [f"c{i}" for i in range(len(schema))]
        convert = pcsv.ConvertOptions(
            column_types={n: _csv_type(f.type) for n, f in zip(names, schema, strict=False)},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
            true_values=["t"],
            false_values=["f"],
        )
        parse = pcsv.ParseOptions(newlines_in_values=True)
        rows = 0

        def parsed(chunk: bytearray) -> Iterator[pa.RecordBatch]:
            read = pcsv.ReadOptions(
                column_names=names, block_size=len(chunk) + 1, use_threads=False
            )
            table = pcsv.read_csv(
                pa.py_buffer(chunk),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
            for b in table.to_batches():
                yield pa.RecordBatch.from_arrays(
                    [_finish(col, f.type) for col, f in zip(b.columns, schema, strict=False)],
                    schema=schema,
                )

        try:
            with ctx.on_cancel(_cancel_statement(conn)):
                if since is not None:
                    conn.execute(f"SELECT set_config('{_SINCE_SETTING}', %s, true)", since)
                stream = _CopyStream(conn, f"COPY ({select}) TO STDOUT (FORMAT csv)")
                batches = (b for chunk in stream.chunks(CSV_CHUNK) for b in parsed(chunk))
                for batch in rebatch(batches, batch_size):
                    rows += batch.num_rows
                    ctx.progress(rows)
                    yield batch
        except psycopg.Error as err:
            raise _fail(s, "extract", err) from None
        except (pa.ArrowException, ValueError) as err:
            raise DriverError(
                f"PostgreSQL {describe(s)}: extract: value conversion: {err}"
            ) from None
        finally:
            conn.close()


# ---- write -----------------------------------------------------------------------------------


class _PgPublication:
    """A PostgreSQL load in its open transaction: COMMIT publishes, ROLLBACK discards."""

    def __init__(self, conn: psycopg.Connection[Any], s: Mapping[str, Any], table: str) -> None:
        self.conn: psycopg.Connection[Any] | None = conn
        self.s = s
        self.table = table
        self.target = f"PostgreSQL table {table} ({describe(s)})"

    def publish(self) -> None:
        conn = self.conn
        if conn is None:
            raise DriverError(f"{self.target}: the load was discarded")
        try:
            conn.commit()
        except psycopg.Error as err:
            self.discard()
            raise _fail(self.s, f"publishing {self.table}", err) from None
        self.conn = None
        conn.close()

    def discard(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        with contextlib.suppress(psycopg.Error):  # a dead connection rolls back server-side
            conn.rollback()
        conn.close()


class PostgresWriter:
    """Transactional load through COPY FROM STDIN (FORMAT csv): append, replace (swap), upsert."""

    abilities: ClassVar[Abilities] = Abilities(
        roles=("writer",), deferred_publish=True, partitioned_sink=True
    )

    def part_tables(self, ctx: StepContext, count: int) -> list[PartTable]:
        s = settings(ctx)
        opts = WriteOptions.parse(s, ctx)
        tag = f"_osiris_part_{ctx.run_tag}_{uuid.uuid4().hex[:4]}_"
        # one short of the limit: PostgreSQL names the table's array type "_" + name, and
        # truncated alike, the array types of two partitions created at once would collide
        head = opts.table[: max(1, MAX_IDENTIFIER - 1 - len(tag) - len(str(count)))]
        return [(opts.schema or s.get("schema"), f"{head}{tag}{i}") for i in range(count)]

    def stage_part(self, ctx: StepContext, data: pa.RecordBatchReader, part: PartTable) -> int:
        opts = WriteOptions.parse(settings(ctx), ctx)
        unique_columns(ctx.step_id, data.schema.names, ignore_case=False)
        s, conn = connect_as_configured(ctx, connect)
        target = qualified(opts.schema or s.get("schema"), opts.table)
        staging = qualified(*part)
        try:
            with ctx.on_cancel(_cancel_statement(conn)):
                exists = conn.execute("SELECT to_regclass(%s)", [target]).fetchone()
                if exists is not None and exists[0] is not None:
                    # shaped like the target (NOT NULL and CHECK, no keys), so a value it
                    # rejects fails this partition's load
                    conn.execute(
                        f"CREATE UNLOGGED TABLE {staging} (LIKE {target} INCLUDING DEFAULTS "
                        "INCLUDING CONSTRAINTS INCLUDING GENERATED)"
                    )
                else:
                    ddl = create_table_ddl(
                        "postgres", staging, data.schema, opts.primary_key, quote,
                        key_constraint=False,
                    )  # fmt: skip
                    conn.execute(ddl.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1))
                rows = self._copy(ctx, conn, staging, data)
                ctx.raise_if_cancelled()
                conn.commit()
        except BaseException as err:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            conn.close()
            if isinstance(err, psycopg.Error):
                raise _fail(s, f"load into {opts.table} ({part[1]})", err) from None
            if isinstance(err, pa.ArrowException):
                raise DriverError(f"load into {opts.table}: {err}") from None
            raise
        conn.close()
        return rows

    def finish_parts(
        self, ctx: StepContext, schema: pa.Schema, parts: list[PartTable]
    ) -> StepResult:
        opts = WriteOptions.parse(settings(ctx), ctx)
        s, conn = connect_as_configured(ctx, connect)
        schema_name = opts.schema or s.get("schema")
        target = qualified(schema_name, opts.table)
        cols = ", ".join(quote(n) for n in schema.names)
        union = " UNION ALL ".join(f"SELECT {cols} FROM {qualified(*p)}" for p in parts)

        def fill(table: str) -> int:
            return max(0, conn.execute(f"INSERT INTO {table} ({cols}) {union}").rowcount)

        load = _PgPublication(conn, s, opts.table)
        try:
            with ctx.on_cancel(_cancel_statement(conn)):
                rows = self._fill(ctx, conn, opts, schema_name, target, schema, fill)
                for part in parts:  # in the same transaction: gone once published
                    conn.execute(f"DROP TABLE {qualified(*part)}")
        except BaseException as err:
            load.discard()
            if isinstance(err, psycopg.Error):
                raise _fail(s, f"publishing the partitions of {opts.table}", err) from None
            raise
        return settle(ctx, load, StepResult(rows_in=rows, rows_out=rows))

    def drop_table(self, connection: Mapping[str, Any], schema: str | None, name: str) -> None:
        """Drop a staging table a failed or dead run left (runtime/debris.py)."""
        conn = connect(connection)
        try:
            conn.execute(f"DROP TABLE IF EXISTS {qualified(schema, name)}")
            conn.commit()
        except psycopg.Error as err:
            raise _fail(connection, f"drop {name}", err) from None
        finally:
            conn.close()

    def write(self, ctx: StepContext, data: pa.RecordBatchReader) -> StepResult:
        opts = WriteOptions.parse(settings(ctx), ctx)
        unique_columns(ctx.step_id, data.schema.names, ignore_case=False)
        s, conn = connect_as_configured(ctx, connect)
        schema_name = opts.schema or s.get("schema")
        target = qualified(schema_name, opts.table)
        load = _PgPublication(conn, s, opts.table)
        try:
            with ctx.on_cancel(_cancel_statement(conn)):
                rows = self._load(ctx, conn, opts, schema_name, target, data)
        except BaseException as err:
            load.discard()
            if isinstance(err, psycopg.Error):
                raise _fail(s, f"load into {opts.table}", err) from None
            if isinstance(err, pa.ArrowException):
                raise DriverError(f"load into {opts.table}: {err}") from None
            raise
        return settle(ctx, load, StepResult(rows_in=rows, rows_out=rows))

    def _load(
        self,
        ctx: StepContext,
        conn: psycopg.Connection[Any],
        opts: WriteOptions,
        schema_name: str | None,
        target: str,
        data: pa.RecordBatchReader,
    ) -> int:
        return self._fill(
            ctx,
            conn,
            opts,
            schema_name,
            target,
            data.schema,
            lambda table: self._copy(ctx, conn, table, data),
        )

    def _fill(
        self,
        ctx: StepContext,
        conn: psycopg.Connection[Any],
        opts: WriteOptions,
        schema_name: str | None,
        target: str,
        schema: pa.Schema,
        fill: Callable[[str], int],
    ) -> int:
        """The write mode's statements around fill(table), which loads the rows into table
        (COPY from a stream, or INSERT ... SELECT from partitions' staging tables)."""
        exists = conn.execute("SELECT to_regclass(%s)", [target]).fetchone()
        if exists is None or exists[0] is None:
            if not opts.create_if_missing:
                raise DriverError(
                    f"table {opts.table} does not exist and create_if_missing is false"
                )
            ddl = create_table_ddl("postgres", target, schema, opts.primary_key, quote)
            write_ddl(ctx, opts.table, ddl)
            # The key is added after the load, as pg_restore does: one sorted index build
            # instead of an index insert per row (1M rows: COPY 1.7-2.6 s -> 1.3-1.7 s here).
            keyless = create_table_ddl(
                "postgres", target, schema, opts.primary_key, quote, key_constraint=False
            )
            conn.execute(keyless)
            rows = fill(target)
            if opts.primary_key:
                keys = ", ".join(quote(k) for k in opts.primary_key)
                conn.execute(f"ALTER TABLE {target} ADD PRIMARY KEY ({keys})")
            return rows
        if opts.write_mode == "append":
            return fill(target)
        if opts.write_mode == "replace":
            return self._replace(conn, schema_name, opts.table, target, fill)
        return self._upsert(conn, opts, target, schema.names, fill)

    def _copy(
        self,
        ctx: StepContext,
        conn: psycopg.Connection[Any],
        table: str,
        data: pa.RecordBatchReader,
    ) -> int:
        cols = ", ".join(quote(n) for n in data.schema.names)
        rows = 0
        # LibpqWriter sends each block before the next one is encoded; psycopg's default
        # queued writer buffers up to 1024 blocks in a thread, so memory grew with the table.
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY {table} ({cols}) FROM STDIN (FORMAT csv, NULL '\\N')",
                writer=LibpqWriter(cur),
            ) as copy,
        ):
            for batch in data:
                if batch.num_rows:
                    copy.write(memoryview(encode_batch(batch, "postgres")))
                    rows += batch.num_rows
                    ctx.progress(rows)
        return rows

    def _replace(
        self,
        conn: psycopg.Connection[Any],
        schema_name: str | None,
        table: str,
        target: str,
        fill: Callable[[str], int],
    ) -> int:
        staging_name = f"{table[:40]}_osiris_stg_{uuid.uuid4().hex[:8]}"
        staging = qualified(schema_name, staging_name)
        keys = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname",
            [target],
        ).fetchall()
        indexes = conn.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY i.indexrelid",
            [target],
        ).fetchall()
        conn.execute(
            f"CREATE TABLE {staging} (LIKE {target} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)"
        )
        rows = fill(staging)
        conn.execute(f"DROP TABLE {target}")
        conn.execute(f"ALTER TABLE {staging} RENAME TO {quote(table)}")
        for name, definition in keys:
            conn.execute(f"ALTER TABLE {target} ADD CONSTRAINT {quote(name)} {definition}")
        for (definition,) in indexes:
            conn.execute(definition)
        return rows

    def _upsert(
        self,
        conn: psycopg.Connection[Any],
        opts: WriteOptions,
        target: str,
        names: list[str],
        fill: Callable[[str], int],
    ) -> int:
        missing = [k for k in opts.primary_key if k not in names]
        if missing:
            raise DriverError(f"primary_key column(s) {missing} are not in the data {names}")
        require_upsert_key(
            opts.table, unique_keys(conn, target), opts.primary_key, ignore_case=False
        )
        cols = ", ".join(quote(n) for n in names)
        staging = quote(f"osiris_stg_{uuid.uuid4().hex[:12]}")
        conn.execute(
            f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA"
        )
        rows = fill(staging)
        keys = ", ".join(quote(k) for k in opts.primary_key)
        updates = [f"{quote(n)} = EXCLUDED.{quote(n)}" for n in names if n not in opts.primary_key]
        action = "DO UPDATE SET " + ", ".join(updates) if updates else "DO NOTHING"
        merge = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging} ON CONFLICT ({keys}) {action}"
        conn.execute(pgsql.SQL(merge))
        return rows


def primary_key(conn: psycopg.Connection[Any], target: str) -> tuple[str, ...]:
    """The primary key's columns of a table (none for a view or a table without one)."""
    found = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord",
        [target],
    ).fetchall()
    return tuple(str(name) for (name,) in found)


def unique_keys(conn: psycopg.Connection[Any], target: str) -> dict[str, tuple[str, ...]]:
    """The unique indexes ON CONFLICT can use (not partial, no expressions): name -> columns,
    the primary key first."""
    found = conn.execute(
        "SELECT c.relname, array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL "
        "AND i.indexprs IS NULL GROUP BY c.relname, i.indisprimary "
        "ORDER BY i.indisprimary DESC, c.relname",
        [target],
    ).fetchall()
    return {str(name): tuple(columns) for name, columns in found}
