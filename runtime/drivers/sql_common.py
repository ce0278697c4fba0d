"""Shared pieces of the SQL drivers: step options, config errors, re-batching, secret-free messages."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from osiris.runtime.contract.connections import pinned_overrides
from osiris.runtime.drivers.base import DEFAULT_BATCH_SIZE, ConnectionFailure, DriverError
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.partitions import PARTITION_WHERE, restrict
from osiris.runtime.secrets import Redactor

WRITE_MODES = ("append", "replace", "upsert")
T = TypeVar("T")


class DriverConfigError(DriverError, ConfigurationError):
    """The step's connection or config cannot work as given (exit 5, via ConfigurationError)."""

    exit_code = ConfigurationError.exit_code


def settings(ctx: Any) -> dict[str, Any]:
    """Connection fields and the step's config (the 'connection' reference dropped). The config
    may not set where the connection connects or as whom (the run refuses that before it
    starts; checked again here, before any connect)."""
    connection = dict(ctx.connection or {})
    config = {k: v for k, v in dict(ctx.config).items() if k != "connection"}
    if ctx.connection is not None:
        pinned = pinned_overrides(config, connection)
        if pinned:
            raise DriverConfigError(
                f"{', '.join(pinned)} must not be set in a step that uses a connection "
                f"(move it into the connection alias, or define a new alias)"
            )
    return {**connection, **config}


def connect_as_configured(
    ctx: Any, connect: Callable[[dict[str, Any]], T]
) -> tuple[dict[str, Any], T]:
    """settings(ctx), read now, and connect(settings). When the server rejects the credentials,
    the connection's secrets are read again once (they may have rotated) and, if they changed,
    connect is tried again with them."""
    s = settings(ctx)
    try:
        return s, connect(s)
    except ConnectionFailure as err:
        name = ctx.connection_name
        if err.reason != "authentication" or name is None:  # None: no connection, config only
            raise
        ctx.refresh_connection()
        again = settings(ctx)
        if again == s:
            raise ConnectionFailure(
                f"connection {name}: {err} (its secrets were read again: unchanged)",
                err.reason,
                detail=err.detail,
            ) from None
        ctx.log(f"connection {name}: credentials rejected; connecting with its secrets read again")
    try:
        return again, connect(again)
    except ConnectionFailure as err:
        if err.reason != "authentication":
            raise
        raise ConnectionFailure(
            f"connection {name}: {err} (also with its secrets read again)",
            err.reason,
            detail=err.detail,
        ) from None


def _names(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise DriverConfigError(f"{field} must be a list of column names")


def _batch_size(s: Mapping[str, Any], ctx: Any) -> int:
    size = s.get("batch_size") or getattr(ctx, "batch_size", None) or DEFAULT_BATCH_SIZE
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise DriverConfigError(f"batch_size must be a positive integer, got {size!r}")
    return size


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    table: str | None
    schema: str | None
    columns: tuple[str, ...]
    where: str | None
    limit: int | None
    query: str | None
    batch_size: int
    offset: int | None = None  # given (even 0): the read is ordered, see order_key()
    partition_where: str | None = None  # one partition's rows only (runtime/partitions.py)

    @classmethod
    def parse(cls, s: Mapping[str, Any], ctx: Any) -> ExtractOptions:
        table, query = s.get("table"), s.get("query")
        if bool(table) == bool(query):
            raise DriverConfigError("set exactly one of 'table' or 'query'")
        limit = s.get("limit")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise DriverConfigError(f"limit must be a non-negative integer, got {limit!r}")
        if query and (s.get("columns") or s.get("where")):
            raise DriverConfigError("'columns' and 'where' apply to 'table', not to 'query'")
        offset = s.get("offset")
        if offset is not None and (
            not isinstance(offset, int) or isinstance(offset, bool) or offset < 0
        ):
            raise DriverConfigError(f"offset must be a non-negative integer, got {offset!r}")
        if query and offset is not None:
            raise DriverConfigError(
                "offset only applies with table; with query, write ORDER BY and OFFSET in the query"
            )
        partition_where = s.get(PARTITION_WHERE)
        if partition_where and (limit is not None or offset is not None):
            raise DriverConfigError("partition cannot be combined with limit or offset")
        return cls(
            partition_where=partition_where or None,
            offset=offset,
            table=table,
            schema=s.get("schema"),
            columns=_names(s.get("columns"), "columns"),
            where=s.get("where"),
            limit=limit,
            query=str(query).strip().rstrip(";") if query else None,
            batch_size=_batch_size(s, ctx),
        )

    def select_sql(self, qualified_table: str, quote: Any) -> str:
        """The SELECT this step runs (without its LIMIT for queries: see limited())."""
        if self.query:
            return restrict(self.query, self.partition_where)
        cols = ", ".join(quote(c) for c in self.columns) if self.columns else "*"
        sql = f"SELECT {cols} FROM {qualified_table}"
        if self.where and self.partition_where:
            sql += f" WHERE ({self.where}) AND ({self.partition_where})"
        elif self.where or self.partition_where:
            sql += f" WHERE {self.where or self.partition_where}"
        return sql

    def bounds_sql(self, qualified_table: str, column: str) -> str:
        """SELECT MIN(column), MAX(column) over the rows this step reads (column quoted)."""
        source = f"({self.query}) AS osiris_b" if self.query else qualified_table
        sql = f"SELECT MIN({column}), MAX({column}) FROM {source}"
        if self.where and not self.query:
            sql += f" WHERE {self.where}"
        return sql

    def order_key(self, primary_key: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
        """The columns an offset read is ordered by, so that the rows it skips are always the
        same ones: the primary key when it is among the columns read, else every column read
        (rows that tie on all of them are identical). Also for offset 0, the first page of a
        paged read, which must be the same order as the pages after it. Nothing without offset."""
        if self.offset is None:
            return ()
        if primary_key and all(k in names for k in primary_key):
            return tuple(primary_key)
        return tuple(names)

    def limited(self, sql: str, order_by: Sequence[str] = ()) -> str:
        """sql with this step's ORDER BY (already quoted column references), LIMIT and OFFSET."""
        if order_by:
            sql += " ORDER BY " + ", ".join(order_by)
        if self.limit is None and not self.offset:
            return sql
        # MySQL has no OFFSET without LIMIT; both servers accept the largest BIGINT as "all"
        clause = f" LIMIT {int(self.limit) if self.limit is not None else 2**63 - 1}"
        if self.offset:
            clause += f" OFFSET {int(self.offset)}"
        if self.query:
            return f"SELECT * FROM ({sql}) AS osiris_q{clause}"
        return f"{sql}{clause}"


@dataclass(frozen=True, slots=True)
class WriteOptions:
    table: str
    schema: str | None
    write_mode: str
    primary_key: tuple[str, ...]
    create_if_missing: bool
    batch_size: int

    @classmethod
    def parse(cls, s: Mapping[str, Any], ctx: Any) -> WriteOptions:
        table = s.get("table")
        if not table or not isinstance(table, str):
            raise DriverConfigError("'table' is required for a writer")
        mode = s.get("write_mode") or "append"
        if mode == "upsert" and s.get("truncate_before"):
            raise DriverConfigError(
                "truncate_before empties the table, so there is nothing to upsert into: "
                "use write_mode replace"
            )
        if mode == "append" and s.get("truncate_before"):
            mode = "replace"  # emptied first, then loaded: replace does both in one swap
        if mode not in WRITE_MODES:
            raise DriverConfigError(f"write_mode must be one of {', '.join(WRITE_MODES)}")
        pk = _names(s.get("primary_key"), "primary_key")
        if mode == "upsert" and not pk:
            raise DriverConfigError("write_mode upsert needs primary_key (the merge key columns)")
        create = s.get("create_if_missing", True)
        return cls(table, s.get("schema"), mode, pk, bool(create), _batch_size(s, ctx))


def require_upsert_key(
    table: str, keys: Mapping[str, Sequence[str]], primary_key: Sequence[str], *, ignore_case: bool
) -> None:
    """Upsert matches rows through a PRIMARY or UNIQUE key: one must have exactly the columns
    of primary_key (in any order), else the merge would insert duplicates or fail halfway."""

    def as_set(columns: Sequence[str]) -> frozenset[str]:
        return frozenset(c.casefold() if ignore_case else c for c in columns)

    if any(as_set(columns) == as_set(primary_key) for columns in keys.values()):
        return
    has = ", ".join(f"{name} ({', '.join(columns)})" for name, columns in keys.items())
    raise DriverError(
        f"write_mode upsert into {table} needs a PRIMARY KEY or UNIQUE key on exactly "
        f"primary_key ({', '.join(primary_key)}); {table} has "
        + (f"these keys: {has}" if has else "no primary or unique key")
        + " - add a matching key to the table or change primary_key; nothing was loaded"
    )


def rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Re-chunk a stream into batches of exactly `size` rows (the last one may be shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(pending)
            head = table.slice(0, size).combine_chunks()
            yield from head.to_batches(max_chunksize=size)
            rest = table.slice(size)
            pending = rest.to_batches()
            count = rest.num_rows
    if count:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches(max_chunksize=size)


def write_ddl(ctx: Any, table: str, ddl: str) -> None:
    """Keep the DDL we executed as runs/<id>/artifacts/<step>/<table>.ddl.sql."""
    directory = Path(ctx.artifacts_dir)
    directory.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in table)
    (directory / f"{safe}.ddl.sql").write_text(ddl + ";\n", encoding="utf-8")


def where(host: Any, port: Any, database: Any, user: Any) -> str:
    """'user@host:port/database' built from non-secret fields only."""
    return f"{user or '?'}@{host or '?'}:{port or '?'}/{database or '?'}"


def _redact(text: str, secrets: Iterable[Any]) -> str:
    """text with the secret values masked as the run's Redactor does (a short secret only as a
    whole word)."""
    redactor = Redactor()
    redactor.register_all(secret for secret in secrets if secret and isinstance(secret, str))
    return redactor.redact(text)


def scrub(message: str, *secrets: Any) -> str:
    """First line of an error message with any secret value replaced."""
    text = (message or "").strip().splitlines()[0] if (message or "").strip() else "unknown error"
    return _redact(text, secrets)


def whole(message: str, *secrets: Any) -> str:
    """A library's or server's whole message on one line, with any secret value replaced."""
    text = " ".join(part.strip() for part in (message or "").splitlines() if part.strip())
    return _redact(text or "unknown error", secrets)


def connection_failure(
    system: str, where: str, reason: str, sentence: str, said: str, detail: str | None = None
) -> ConnectionFailure:
    """Our one-sentence diagnosis, then what the server or driver said (already redacted);
    detail: the driver's whole message, when said is only part of it."""
    return ConnectionFailure(
        f"cannot connect to {system} {where}: {sentence} ({said})", reason, detail=detail or said
    )


def network_diagnosis(
    err: BaseException | None, host: Any, port: Any, timeout: Any
) -> tuple[str, str] | None:
    """(reason, sentence) for the OS error of a connection attempt; None if it is not one."""
    if isinstance(err, ConnectionRefusedError):
        return "refused", refused(host, port)
    if isinstance(err, socket.gaierror):
        return "unreachable", unresolved(host)
    if isinstance(err, TimeoutError):
        return "unreachable", timed_out(host, port, timeout)
    if isinstance(err, OSError) and err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable", no_route(host)
    return None


def refused(host: Any, port: Any) -> str:
    return (
        f"connection refused: nothing accepts connections on {host} port {port}; "
        "check host and port, and that the server is running"
    )


def unresolved(host: Any) -> str:
    return f"host name {host!r} cannot be resolved; check the host"


def timed_out(host: Any, port: Any, timeout: Any) -> str:
    return (
        f"no answer from {host} port {port} within {timeout} s (connect_timeout); "
        "check host, port and any firewall in between"
    )


def no_route(host: Any) -> str:
    return f"{host} cannot be reached from this machine (no route to host); check the host"
