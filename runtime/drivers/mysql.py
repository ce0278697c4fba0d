"""MySQL/MariaDB extractor (connectorx or pymysql, streamed) and writer (LOAD DATA LOCAL INFILE)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote as urlquote

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pymysql.converters
import pymysql.cursors

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
from osiris.runtime.drivers.readahead import Spilled
from osiris.runtime.drivers.sql_common import (
    ExtractOptions,
    WriteOptions,
    connect_as_configured,
    connection_failure,
    network_diagnosis,
    rebatch,
    require_upsert_key,
    scrub,
    settings,
    where,
    whole,
    write_ddl,
)
from osiris.runtime.drivers.sql_csv import encode_batch, is_binary
from osiris.runtime.drivers.sqltypes import (
    MY_BIT,
    MY_DECIMAL,
    MY_JSON,
    MY_NEWDECIMAL,
    MY_TIME,
    MySQLColumn,
    create_table_ddl,
    is_json,
    is_uuid,
    mysql_to_arrow,
)
from osiris.runtime.partitions import PartitionSpec, predicates

try:  # the fast reader (Rust, wheels on PyPI); pymysql is the pure-Python fallback
    import connectorx
except ImportError:  # pragma: no cover - depends on the installed extras
    connectorx = None  # type: ignore[assignment]

# encoders only: with no decoders pymysql hands us the text protocol's strings untouched
RAW_CONV = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def describe(s: Mapping[str, Any]) -> str:
    return where(s.get("host"), s.get("port") or 3306, s.get("database"), s.get("user"))


def connect(s: Mapping[str, Any], **extra: Any) -> pymysql.Connection[Any]:
    kw: dict[str, Any] = {
        "host": s.get("host") or "localhost",
        "port": int(s.get("port") or 3306),
        "user": s.get("user"),
        "password": s.get("password") or "",
        "database": s.get("database"),
        "charset": s.get("charset") or "utf8mb4",
        "connect_timeout": int(s.get("connect_timeout") or 10),
    }
    kw["read_timeout"] = kw["connect_timeout"]  # bounds the handshake; lifted once connected
    kw.update({k: v for k, v in s.items() if k.startswith("ssl_")})
    kw.update(extra)
    try:
        conn = pymysql.connect(**kw)
    except pymysql.MySQLError as err:
        raise _connect_failure(s, kw, err) from None
    conn._read_timeout = extra.get("read_timeout")
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
    return conn


def _kill_query(s: Mapping[str, Any], conn: pymysql.Connection[Any]) -> Callable[[], None]:
    """Stops the statement running on conn: KILL QUERY from a second, short-lived connection
    (for ctx.on_cancel; the session itself lives on, to roll back and clean up)."""
    thread_id = conn.thread_id()

    def kill() -> None:
        killer = connect(s, connect_timeout=5)
        try:
            with killer.cursor() as cur:
                cur.execute(f"KILL QUERY {int(thread_id)}")
        finally:
            killer.close()

    return kill


def _secrets(s: Mapping[str, Any]) -> tuple[str, str]:
    password = str(s.get("password") or "")
    return password, urlquote(password, safe="")


# Connection rejections by error number: (reason, our sentence).
_REJECTIONS = {
    1045: ("authentication", "access denied for user {user}: wrong password, or no such user"),
    1698: ("authentication", "access denied for user {user}: wrong password, or no such user"),
    1130: ("authentication", "the server does not accept user {user} from this host"),
    1044: ("unknown_database",
           "user {user} has no access to database {database}, or it does not exist"),
    1049: ("unknown_database", "database {database} does not exist on the server"),
}  # fmt: skip


def _connect_failure(
    s: Mapping[str, Any], kw: Mapping[str, Any], err: pymysql.MySQLError
) -> ConnectionFailure:
    """Why pymysql.connect failed, by the server's error number or (2003, 2013: no server
    answer) by the OS error pymysql kept."""
    code, message = _code_and_message(err)
    said = f"{code} {whole(message, *_secrets(s))}" if code else whole(message, *_secrets(s))
    names = {"user": repr(s.get("user") or ""), "database": repr(s.get("database") or "")}
    if code in _REJECTIONS:
        reason, sentence = _REJECTIONS[code]
        return connection_failure(
            "MySQL", describe(s), reason, sentence.format(**names), f"server: {said}"
        )
    network = None
    if code in (2003, 2013):
        cause = getattr(err, "original_exception", None) or err.__context__
        network = network_diagnosis(cause, kw["host"], kw["port"], kw["connect_timeout"])
    reason, sentence = network or ("other", "the connection failed")
    return connection_failure("MySQL", describe(s), reason, sentence, f"PyMySQL: {said}")


# Errors of a running statement that are not about the data: (error number, what happened).
_STATEMENT_ERRORS = {
    1213: "deadlock: this step and another transaction each waited for locks the other held, "
    "and the server rolled this step's transaction back",
    1205: "a lock wait timed out (innodb_lock_wait_timeout)",
    1317: "the statement was interrupted on the server (KILL QUERY or a timeout)",
    1969: "the statement ran longer than max_statement_time",
    3024: "the statement ran longer than max_execution_time",
    1053: "the server is shutting down",
    1927: "the connection was killed on the server",
    2006: "the connection was lost",
    2013: "the connection was lost",
}


def _code_and_message(err: BaseException) -> tuple[int | None, str]:
    """A MySQL error's number and message, from pymysql or from connectorx's error text."""
    if isinstance(err, pymysql.MySQLError) and err.args and isinstance(err.args[0], int):
        return err.args[0], str(err.args[1]) if len(err.args) > 1 else ""
    text = str(err).removeprefix("cx writer failed: ")
    server = re.search(r"ERROR (\d+) \(\w+\): (.*?) \}", text)
    if server:
        return int(server.group(1)), server.group(2)
    if "CodecError" in text or "IoError" in text:
        return 2013, "lost the connection while reading the result"
    value = re.search(r"Couldn't convert the value `(\w+)\((.*)\)` to a desired type", text)
    if value:
        kind, raw = value.group(1), value.group(2).strip("\"'")
        hint = (
            ": MySQL zero dates are not dates; make them NULL in the query, e.g. "
            "NULLIF(column, '0000-00-00')"
            if raw.startswith("0000-00-00")
            else ""
        )
        return None, f"cannot convert the {kind.lower()} value '{raw}' read from MySQL{hint}"
    return None, text


def _fail(s: Mapping[str, Any], what: str, err: BaseException) -> DriverError:
    """A statement's error: our sentence for what happened (by error number), then MySQL's."""
    secrets = _secrets(s)
    code, message = _code_and_message(err)
    happened = _STATEMENT_ERRORS.get(code) if code else None
    said = scrub(message, *secrets)
    prefix = f"MySQL {describe(s)}: {what}"
    detail = whole(str(err), *secrets)
    if happened is None:
        return DriverError(f"{prefix}: {said}", detail=detail)
    return DriverError(f"{prefix}: {happened} (server: {code} {said})", detail=detail)


def _at_input_row(message: str, offset: int) -> str:
    """LOAD DATA counts rows within its file (one batch): count them in the whole input."""
    return re.sub(
        r"at row (\d+)", lambda m: f"at row {offset + int(m.group(1))} of the input", message
    )


# ---- extract ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _columns(cur: Any, probe: str) -> list[MySQLColumn]:
    """Column metadata of a zero-row probe, plus JSON/UUID facts for columns of real tables."""
    cur.execute(probe)
    fields = cur._result.fields  # protocol column definitions: type, length, flags, charset
    tables = sorted({(_text(f.db), f.org_table) for f in fields if f.org_table})
    kinds: dict[tuple[str, str, str], str] = {}
    for db, table in tables:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (db, table),
        )
        kinds.update({(db, table, name): kind.lower() for name, kind in cur.fetchall()})
        with contextlib.suppress(pymysql.MySQLError):  # MariaDB: JSON is LONGTEXT + json_valid()
            cur.execute(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
                (db, table),
            )
            for (clause,) in cur.fetchall():
                text = str(clause).strip()
                if text.lower().startswith("json_valid(") and text.endswith(")"):
                    kinds[(db, table, text[11:-1].strip("`"))] = "json"
    return [
        MySQLColumn(
            name=f.name,
            type_code=f.type_code,
            length=f.length,
            scale=f.scale,
            flags=f.flags,
            charsetnr=f.charsetnr,
            data_type=kinds.get((_text(f.db), f.org_table, f.org_name), ""),
        )
        for f in fields
    ]


def _fetch_sql(
    sql: str, cols: Sequence[MySQLColumn], schema: pa.Schema, order: Sequence[str] = ()
) -> str:
    """The query we stream: types both readers get wrong arrive as text and are cast by Arrow.
    order: the inner query's ORDER BY columns, repeated outside (a derived table has no order)."""
    exprs = []
    for i, (col, field) in enumerate(zip(cols, schema, strict=False)):
        ref = f"osiris_q.{quote(col.name)}"
        if col.type_code in (MY_DECIMAL, MY_NEWDECIMAL, MY_TIME, MY_JSON, 6) or is_uuid(field.type):
            ref = f"CAST({ref} AS CHAR)"
        elif col.type_code == MY_BIT:
            ref = f"CAST({ref} AS UNSIGNED)"
        exprs.append(f"{ref} AS c{i}")
    outer = f" ORDER BY {', '.join(f'osiris_q.{quote(c)}' for c in order)}" if order else ""
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS osiris_q{outer}"


def _coerce(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast a fetched column to the type the metadata promised (exact: decimals via text)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if is_json(target):
        return pa.ExtensionArray.from_storage(target, arr.cast(pa.string()))
    if is_uuid(target):
        values = arr.cast(pa.string()).to_pylist()
        raw = [None if v is None else uuid.UUID(v).bytes for v in values]
        return pa.ExtensionArray.from_storage(target, pa.array(raw, pa.binary(16)))
    if pa.types.is_boolean(target) and not pa.types.is_boolean(arr.type):
        return pc.not_equal(arr.cast(pa.int64()), 0)
    if pa.types.is_time64(target) and (
        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    ):
        stamps = pc.binary_join_element_wise("1970-01-01 ", arr.cast(pa.string()), "")
        micros = stamps.cast(pa.timestamp("us")).cast(pa.int64())
        return micros.cast(pa.time64("us"))
    if pa.types.is_timestamp(target) and target.tz and pa.types.is_string(arr.type):
        return arr.cast(pa.timestamp(target.unit)).cast(target)
    return arr.cast(target)


def _pymysql_batches(
    ctx: StepContext,
    s: Mapping[str, Any],
    sql: str,
    schema: pa.Schema,
    size: int,
    args: tuple[Any, ...] | None = None,
) -> Iterator[list[pa.Array]]:
    conn = connect(s, cursorclass=pymysql.cursors.SSCursor, conv=RAW_CONV)
    cur = conn.cursor()
    try:
        with ctx.on_cancel(_kill_query(s, conn)):
            cur.execute(sql, args)
            kinds = [pa.binary() if pa.types.is_binary(f.type) else pa.string() for f in schema]
            while rows := cur.fetchmany(size):
                yield [
                    pa.array(col, kind)
                    for col, kind in zip(zip(*rows, strict=False), kinds, strict=False)
                ]
    finally:
        result = getattr(cur, "_result", None)
        if result is not None:  # never drain an abandoned or broken result: just hang up
            result.unbuffered_active = False
        with contextlib.suppress(Exception):
            conn.close()


def _cx_batches(
    s: Mapping[str, Any], sql: str, size: int, spill_dir: Path
) -> Iterator[list[pa.Array]]:
    user = urlquote(str(s.get("user") or ""), safe="")
    password = urlquote(str(s.get("password") or ""), safe="")
    auth = f"{user}:{password}" if password else user
    url = f"mysql://{auth}@{s.get('host') or 'localhost'}:{int(s.get('port') or 3306)}/{urlquote(str(s.get('database') or ''))}"
    reader = connectorx.read_sql(
        url,
        sql,
        return_type="arrow_stream",
        batch_size=size,
        pre_execution_query=["SET time_zone = '+00:00'"],
    )
    # connectorx reads ahead without limit: Spilled keeps its backlog on disk, not in memory
    for batch in Spilled(iter(reader), reader.schema, directory=spill_dir):
        yield list(batch.columns)


class MySQLExtractor:
    """Streams a MySQL/MariaDB result (unbuffered) into Arrow batches with metadata-derived types."""

    abilities: ClassVar[Abilities] = Abilities(roles=("extractor",), partitioned_source=True)

    def partitions(self, ctx: StepContext, spec: Mapping[str, Any]) -> list[str | None]:
        opts = ExtractOptions.parse(settings(ctx), ctx)
        s, conn = connect_as_configured(ctx, connect)

        def min_max(column: str) -> tuple[Any, Any]:
            with conn.cursor() as cur:
                cur.execute(opts.bounds_sql(quote(opts.table or ""), column))
                found = cur.fetchone()
            return (found[0], found[1]) if found else (None, None)

        try:
            return predicates(PartitionSpec.parse(spec), quote, min_max)
        except pymysql.MySQLError as err:
            raise _fail(s, "reading the partition bounds", err) from None
        finally:
            conn.close()

    def extract(self, ctx: StepContext) -> pa.RecordBatchReader:
        opts = ExtractOptions.parse(settings(ctx), ctx)
        incremental = SqlIncremental.open(ctx, ctx.config.get("incremental"))
        base = opts.select_sql(quote(opts.table or ""), quote)
        order: tuple[str, ...] = ()
        s, conn = connect_as_configured(ctx, connect)
        try:
            with conn.cursor() as cur:
                if opts.query:
                    select = opts.limited(base)
                    cols = _columns(cur, f"SELECT * FROM ({select}) AS osiris_q LIMIT 0")
                else:  # a direct probe keeps each column's origin table (JSON/UUID detection)
                    cols = _columns(cur, base + " LIMIT 0")
                    # offset: a stable order, so each run skips the same rows
                    if opts.offset is not None:
                        primary = unique_keys(cur, opts.table or "").get("PRIMARY", ())
                        order = opts.order_key(primary, [c.name for c in cols])
                    select = opts.limited(base, [quote(c) for c in order])
        except pymysql.MySQLError as err:
            raise _fail(s, "reading the result's columns", err) from None
        finally:
            conn.close()
        schema = pa.schema([(c.name, mysql_to_arrow(c)) for c in cols])
        args: tuple[Any, ...] | None = None
        if incremental is not None:
            incremental.check_columns(schema.names)
            if incremental.window.since is not None:
                # pymysql formats with %: the SQL's own % signs are doubled, the value is a
                # parameter the driver escapes (never pasted into the text by us)
                select = incremental.wrap(
                    select.replace("%", "%%"), quote(incremental.column), "%s"
                )
                args = (incremental.window.since,)
                ctx.log(f"incremental: {_fetch_sql(select, cols, schema, order)} [1 parameter]")
        fetch = _fetch_sql(select, cols, schema, order)
        batches = self._stream(ctx, s, fetch, schema, opts.batch_size, args)
        if incremental is not None:
            batches = incremental.track(ctx, batches)
        return pa.RecordBatchReader.from_batches(schema, batches)

    def _stream(
        self,
        ctx: StepContext,
        s: Mapping[str, Any],
        sql: str,
        schema: pa.Schema,
        size: int,
        args: tuple[Any, ...] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        use_cx = connectorx is not None and not any(k.startswith("ssl_") for k in s)
        use_cx = use_cx and os.environ.get("OSIRIS_MYSQL_READER", "") != "pymysql"
        use_cx = use_cx and args is None  # connectorx takes no parameters
        # connectorx cannot be interrupted: on cancel the engine just stops reading from it
        source = (
            _cx_batches(s, sql, size, ctx.scratch_dir)
            if use_cx
            else _pymysql_batches(ctx, s, sql, schema, size, args)
        )
        rows = 0
        try:
            typed = (
                pa.RecordBatch.from_arrays(
                    [_coerce(a, f.type) for a, f in zip(arrays, schema, strict=False)],
                    schema=schema,
                )
                for arrays in source
            )
            for batch in rebatch(typed, size):
                rows += batch.num_rows
                ctx.progress(rows)
                yield batch
        except pymysql.MySQLError as err:
            raise _fail(s, "extract", err) from None
        except (pa.ArrowException, ValueError) as err:
            raise DriverError(f"MySQL {describe(s)}: extract: value conversion: {err}") from None
        except Exception as err:  # connectorx reports server errors as RuntimeError
            raise _fail(s, "extract", err) from None
        except BaseException as err:  # a panic in connectorx (e.g. the connection was killed)
            if isinstance(err, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise _fail(s, "extract", err) from None


# ---- write -----------------------------------------------------------------------------------

MAX_IDENTIFIER = 64


@dataclass(frozen=True, slots=True)
class _Drop:
    """A DROP that undoes part of a failed write; entry is its ledger entry, if any."""

    statement: str
    entry: int | None = None
    session_only: bool = False  # a temporary table: gone with its connection


def _qualified(schema: str | None, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def _clean_up(
    ctx: StepContext, s: Mapping[str, Any], conn: pymysql.Connection[Any], drops: list[_Drop]
) -> None:
    """Run the DROPs of a failed write: on its own connection, or on a fresh one when that
    one is dead (say, KILLed on the server). What still cannot be dropped stays in the ledger."""
    pending = list(drops)
    try:
        with conn.cursor() as cur:
            while pending:
                cur.execute(pending[0].statement)
                _dropped(ctx, pending.pop(0))
    except pymysql.MySQLError:
        pending = [d for d in pending if not d.session_only]
        if not pending:
            return
        try:
            fresh = connect(s)
        except DriverError:
            return
        try:
            with fresh.cursor() as cur:
                for drop in pending:
                    cur.execute(drop.statement)
                    _dropped(ctx, drop)
        except pymysql.MySQLError:
            pass
        finally:
            fresh.close()


def _dropped(ctx: StepContext, drop: _Drop) -> None:
    if drop.entry is not None:
        ctx.untrack(drop.entry)


def _session(cur: Any) -> bool:
    """Strict loads in this session; True when the server is MariaDB."""
    cur.execute(
        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO')"
    )
    cur.execute("SELECT VERSION()")
    return "mariadb" in str(cur.fetchone()[0]).lower()


def _exists(cur: Any, table: str) -> bool:
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s",
        (table,),
    )
    return bool(cur.fetchone()[0])


def unique_keys(cur: Any, table: str) -> dict[str, tuple[str, ...]]:
    """The PRIMARY and UNIQUE keys of a table in the current database: name -> columns."""
    cur.execute(
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
        "ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        (table,),
    )
    keys: dict[str, tuple[str, ...]] = {}
    for name, column in cur.fetchall():
        keys[_text(name)] = (*keys.get(_text(name), ()), _text(column))
    return keys


class _MySQLPublication:
    """A MySQL load waiting to be published: the open transaction (append, upsert) or the
    loaded staging table (replace), swapped in by RENAME TABLE."""

    def __init__(self, ctx: StepContext, conn: Any, s: Mapping[str, Any], table: str) -> None:
        self.ctx = ctx
        self.conn: Any = conn
        self.s = s
        self.table = table
        self.target = f"MySQL table {table} ({describe(s)})"
        self.swap: list[str] = []  # run after COMMIT to publish (replace: the RENAME)
        self.published_entries: list[int] = []  # ledger entries the swap makes the target
        self.after: list[_Drop] = []  # best effort once published (drop the old table)
        self.cleanup: list[_Drop] = []  # undo what DDL (which autocommits) made, on discard

    def publish(self) -> None:
        conn = self.conn
        if conn is None:
            raise DriverError(f"{self.target}: the load was discarded")
        try:
            conn.commit()
            with conn.cursor() as cur:
                for stmt in self.swap:
                    cur.execute(stmt)
        except pymysql.MySQLError as err:
            self.discard()
            raise _fail(self.s, f"publishing {self.table}", err) from None
        self.conn = None
        for entry in self.published_entries:
            self.ctx.untrack(entry)
        try:
            with contextlib.suppress(pymysql.MySQLError), conn.cursor() as cur:
                for drop in self.after:  # what fails stays in the ledger for the sweep
                    cur.execute(drop.statement)
                    _dropped(self.ctx, drop)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def discard(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        with contextlib.suppress(pymysql.MySQLError):
            conn.rollback()
        _clean_up(self.ctx, self.s, conn, self.cleanup)
        with contextlib.suppress(Exception):
            conn.close()


class MySQLWriter:
    """Transactional load through LOAD DATA LOCAL INFILE: append, replace (atomic RENAME), upsert."""

    abilities: ClassVar[Abilities] = Abilities(
        roles=("writer",), deferred_publish=True, partitioned_sink=True
    )

    def part_tables(self, ctx: StepContext, count: int) -> list[PartTable]:
        s = settings(ctx)
        opts = WriteOptions.parse(s, ctx)
        tag = f"_osiris_part_{ctx.run_tag}_{secrets.token_hex(2)}_"
        head = opts.table[: max(1, MAX_IDENTIFIER - len(tag) - len(str(count)))]
        return [(s.get("database"), f"{head}{tag}{i}") for i in range(count)]

    def stage_part(self, ctx: StepContext, data: pa.RecordBatchReader, part: PartTable) -> int:
        opts = WriteOptions.parse(settings(ctx), ctx)
        unique_columns(ctx.step_id, data.schema.names)
        s, conn = connect_as_configured(
            ctx, lambda s: connect(s, local_infile=True, autocommit=True)
        )
        staging = _qualified(*part)
        try:
            with conn.cursor() as cur, ctx.on_cancel(_kill_query(s, conn)):
                mariadb = _session(cur)
                # the part's name is this run's: only an earlier attempt of this partition (a
                # Dask task run again after its worker died) can have made it, as DDL commits
                # (checked first: DROP needs a privilege an append-only user may not have)
                if _exists(cur, part[1]):
                    cur.execute(f"DROP TABLE {staging}")
                exists = _exists(cur, opts.table)
                if exists and opts.write_mode != "upsert":
                    # shaped like the target, so a value it rejects fails this partition's load
                    cur.execute(f"CREATE TABLE {staging} LIKE {quote(opts.table)}")
                elif exists:  # no keys: the merge settles duplicates, as write() does
                    cols = ", ".join(quote(n) for n in data.schema.names)
                    cur.execute(
                        f"CREATE TABLE {staging} AS SELECT {cols} FROM {quote(opts.table)} LIMIT 0"
                    )
                else:
                    cur.execute(
                        create_table_ddl(
                            "mysql", staging, data.schema, opts.primary_key, quote,
                            mariadb=mariadb, key_constraint=False,
                        )
                    )  # fmt: skip
                rows = self._load(ctx, cur, staging, data)
                ctx.raise_if_cancelled()
                conn.commit()
        except BaseException as err:
            with contextlib.suppress(pymysql.MySQLError):
                conn.rollback()
            _clean_up(ctx, s, conn, [_Drop(f"DROP TABLE IF EXISTS {staging}")])
            with contextlib.suppress(Exception):
                conn.close()
            if isinstance(err, pymysql.MySQLError):
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
        s, conn = connect_as_configured(
            ctx, lambda s: connect(s, local_infile=True, autocommit=True)
        )
        cols = ", ".join(quote(n) for n in schema.names)
        union = " UNION ALL ".join(f"SELECT {cols} FROM {_qualified(*p)}" for p in parts)
        load = _MySQLPublication(ctx, conn, s, opts.table)

        def fill(cur: Any, table: str) -> int:
            cur.connection.begin()
            cur.execute(f"INSERT INTO {table} ({cols}) {union}")
            return max(0, cur.rowcount)

        try:
            with conn.cursor() as cur, ctx.on_cancel(_kill_query(s, conn)):
                mariadb = _session(cur)
                rows = self._write(ctx, cur, opts, schema, fill, mariadb, load)
            # MySQL DDL commits: the parts are dropped once published; each keeps a ledger entry
            # of its own until its DROP succeeded (the caller clears the run's entries for the
            # parts on success), so a part whose DROP fails is left for the next run's sweep
            load.after.extend(
                _Drop(f"DROP TABLE IF EXISTS {_qualified(*p)}", ctx.track_table(*p)) for p in parts
            )
        except BaseException as err:
            load.discard()
            if isinstance(err, pymysql.MySQLError):
                raise _fail(s, f"publishing the partitions of {opts.table}", err) from None
            raise
        return settle(ctx, load, StepResult(rows_in=rows, rows_out=rows))

    def write(self, ctx: StepContext, data: pa.RecordBatchReader) -> StepResult:
        opts = WriteOptions.parse(settings(ctx), ctx)
        unique_columns(ctx.step_id, data.schema.names)
        s, conn = connect_as_configured(
            ctx, lambda s: connect(s, local_infile=True, autocommit=True)
        )
        load = _MySQLPublication(ctx, conn, s, opts.table)
        try:
            with conn.cursor() as cur, ctx.on_cancel(_kill_query(s, conn)):
                mariadb = _session(cur)
                rows = self._write(
                    ctx,
                    cur,
                    opts,
                    data.schema,
                    lambda cur, table: self._load(ctx, cur, table, data),
                    mariadb,
                    load,
                )
        except BaseException as err:
            load.discard()
            if isinstance(err, pymysql.MySQLError):
                raise _fail(s, f"load into {opts.table}", err) from None
            if isinstance(err, pa.ArrowException):
                raise DriverError(f"load into {opts.table}: {err}") from None
            raise
        return settle(ctx, load, StepResult(rows_in=rows, rows_out=rows))

    def drop_table(self, connection: Mapping[str, Any], schema: str | None, name: str) -> None:
        """Drop a staging table a dead run left (runtime/debris.py)."""
        conn = connect(connection)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {_qualified(schema, name)}")
        except pymysql.MySQLError as err:
            raise _fail(connection, f"drop {name}", err) from None
        finally:
            conn.close()

    def _write(
        self,
        ctx: StepContext,
        cur: Any,
        opts: WriteOptions,
        schema: pa.Schema,
        fill: Callable[[Any, str], int],
        mariadb: bool,
        load: _MySQLPublication,
    ) -> int:
        """The write mode's statements around fill(cur, table), which loads the rows into table
        in an open transaction (LOAD DATA from a stream, or INSERT ... SELECT from partitions)."""
        cur.execute("SELECT DATABASE()")
        database = cur.fetchone()[0]
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s",
            (opts.table,),
        )
        exists = bool(cur.fetchone()[0])
        target = quote(opts.table)
        if not exists and not opts.create_if_missing:
            raise DriverError(f"table {opts.table} does not exist and create_if_missing is false")
        if exists and opts.write_mode == "upsert":
            keys = unique_keys(cur, opts.table)
            require_upsert_key(opts.table, keys, opts.primary_key, ignore_case=True)

        def staging_name(kind: str) -> tuple[str, int]:
            """A name carrying the run id, listed in the run's ledger before the table exists."""
            suffix = f"_osiris_{kind}_{ctx.run_tag}_{secrets.token_hex(3)}"
            name = opts.table[: MAX_IDENTIFIER - len(suffix)] + suffix
            return name, ctx.track_table(database, name)

        def create(name: str, entry: int | None = None) -> None:
            ddl = create_table_ddl("mysql", name, schema, opts.primary_key, quote, mariadb=mariadb)
            write_ddl(ctx, opts.table, ddl)
            cur.execute(ddl)
            load.cleanup.append(_Drop(f"DROP TABLE IF EXISTS {name}", entry))

        if opts.write_mode == "replace":
            name, entry = staging_name("stg")
            staging = quote(name)
            if exists:
                cur.execute(f"CREATE TABLE {staging} LIKE {target}")
                load.cleanup.append(_Drop(f"DROP TABLE IF EXISTS {staging}", entry))
            else:
                create(staging, entry)
            rows = fill(cur, staging)
            if exists:
                old_name, old_entry = staging_name("old")
                old = quote(old_name)
                load.swap.append(f"RENAME TABLE {target} TO {old}, {staging} TO {target}")
                load.after.append(_Drop(f"DROP TABLE IF EXISTS {old}", old_entry))
            else:
                load.swap.append(f"RENAME TABLE {staging} TO {target}")
            load.published_entries.append(entry)
            return rows
        if not exists:
            create(target)
        if opts.write_mode == "append":
            return fill(cur, target)
        return self._upsert(ctx, cur, opts, target, schema.names, fill, load)

    def _upsert(
        self,
        ctx: StepContext,
        cur: Any,
        opts: WriteOptions,
        target: str,
        names: list[str],
        fill: Callable[[Any, str], int],
        load: _MySQLPublication,
    ) -> int:
        missing = [k for k in opts.primary_key if k not in names]
        if missing:
            raise DriverError(f"primary_key column(s) {missing} are not in the data {names}")
        cols = ", ".join(quote(n) for n in names)
        staging = quote(f"osiris_stg_{uuid.uuid4().hex[:12]}")
        cur.execute(f"CREATE TEMPORARY TABLE {staging} AS SELECT {cols} FROM {target} LIMIT 0")
        load.cleanup.append(_Drop(f"DROP TEMPORARY TABLE IF EXISTS {staging}", session_only=True))
        rows = fill(cur, staging)
        ctx.raise_if_cancelled()
        updates = [f"{quote(n)} = VALUES({quote(n)})" for n in names if n not in opts.primary_key]
        if not updates:
            updates = [f"{quote(opts.primary_key[0])} = {quote(opts.primary_key[0])}"]
        cur.execute(
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging} "
            f"ON DUPLICATE KEY UPDATE {', '.join(updates)}"
        )
        return rows

    def _load(self, ctx: StepContext, cur: Any, table: str, data: pa.RecordBatchReader) -> int:
        """LOAD DATA LOCAL INFILE each batch (CSV from Arrow) inside one open transaction."""
        targets, sets = [], []
        for i, field in enumerate(data.schema):
            if is_binary(field.type) and not is_uuid(field.type):
                targets.append(f"@v{i}")
                sets.append(f"{quote(field.name)} = UNHEX(@v{i})")
            else:
                targets.append(quote(field.name))
        statement = (
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
            f"LINES TERMINATED BY '\\n' ({', '.join(targets)})"
            + (f" SET {', '.join(sets)}" if sets else "")
        )
        cur.connection.begin()
        rows = 0
        fd, path = tempfile.mkstemp(prefix="osiris-load-", suffix=".csv", dir=ctx.scratch_dir)
        os.close(fd)
        try:
            for batch in data:
                if not batch.num_rows:
                    continue
                with open(path, "wb") as fh:
                    fh.write(memoryview(encode_batch(batch, "mysql")))
                try:
                    cur.execute(statement, (path,))
                except pymysql.MySQLError as err:
                    code, message = _code_and_message(err)
                    raise type(err)(code, _at_input_row(message, rows)) from None
                if cur._result is not None and cur._result.warning_count:
                    cur.execute("SHOW WARNINGS LIMIT 1")
                    level, code, message = cur.fetchone()
                    raise DriverError(
                        f"row rejected while loading {table}: {level} {code}: "
                        + _at_input_row(message, rows)
                    )
                rows += batch.num_rows
                ctx.progress(rows)
        finally:
            os.unlink(path)
        return rows
