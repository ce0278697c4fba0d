"""PostgreSQL (and Supabase) catalogs from pg_catalog: a few queries for all tables, never count(*)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from osiris.runtime.catalog.errors import CatalogError, classified
from osiris.runtime.catalog.model import Catalog, Column, ForeignKey, Table
from osiris.runtime.catalog.values import sample_rows
from osiris.runtime.drivers.sqltypes import PG_NUMERIC, pg_to_arrow

_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "view"}
# Relations of one schema (optionally only some names); %(schema)s, %(tables)s.
_RELATIONS = (
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
    "AND (%(tables)s::text[] IS NULL OR c.relname = ANY(%(tables)s::text[]))"
)
_COLUMNS = (
    "SELECT c.relname, c.relkind, c.reltuples::bigint, a.attname, "
    "format_type(a.atttypid, a.atttypmod), "
    "CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, "
    "CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, "
    "a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attnum "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
    "WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
    "AND (%(tables)s::text[] IS NULL OR c.relname = ANY(%(tables)s::text[])) "
    "ORDER BY c.relname, a.attnum"
)
_COLS_OF = (
    "ARRAY(SELECT a.attname FROM unnest({keys}) WITH ORDINALITY k(num, ord) "
    "JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.num ORDER BY k.ord)::text[]"
)
# Primary and unique keys (plain unique indexes too: no expressions, not partial) and foreign keys.
_KEYS = (
    "SELECT c.relname, CASE WHEN i.indisprimary THEN 'p' ELSE 'u' END, ic.relname, "
    + _COLS_OF.format(keys="i.indkey", rel="i.indrelid")
    + ", NULL, NULL, NULL::text[] "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "JOIN pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %(schema)s AND i.indisunique AND i.indpred IS NULL "
    "AND i.indexprs IS NULL "
    "AND (%(tables)s::text[] IS NULL OR c.relname = ANY(%(tables)s::text[])) "
    "UNION ALL "
    "SELECT c.relname, 'f', con.conname, "
    + _COLS_OF.format(keys="con.conkey", rel="con.conrelid")
    + ", fn.nspname, fc.relname, "
    + _COLS_OF.format(keys="con.confkey", rel="con.confrelid")
    + " FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_class fc ON fc.oid = con.confrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace "
    "WHERE n.nspname = %(schema)s AND con.contype = 'f' "
    "AND (%(tables)s::text[] IS NULL OR c.relname = ANY(%(tables)s::text[])) "
    "ORDER BY 1, 2, 3"
)
# One row: the count and a sum of 64-bit hashes (order-independent, no sort) over every column
# and key definition of the selected relations. adbin: the stored default, not deparsed.
_DIGEST = (
    "SELECT count(*) || ':' || coalesce(sum(hashtextextended(x, 0)), 0) FROM ("
    "SELECT concat_ws('|', 'c', c.relname, c.relkind, a.attnum, a.attname, a.atttypid, "
    "a.atttypmod, a.attnotnull, d.adbin::text) AS x "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
    "WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
    "AND (%(tables)s::text[] IS NULL OR c.relname = ANY(%(tables)s::text[])) "
    "UNION ALL SELECT concat_ws('|', 'i', c.relname, i.indexrelid, i.indisprimary, "
    "i.indisunique, i.indkey::text, i.indpred IS NULL, i.indexprs IS NULL) "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s "
    "AND i.indisunique "
    "AND (%(tables)s::text[] IS NULL OR c.relname = ANY(%(tables)s::text[])) "
    "UNION ALL SELECT concat_ws('|', 'f', c.relname, con.oid, con.conkey::text, con.confrelid, "
    "con.confkey::text) FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s "
    "AND con.contype = 'f' "
    "AND (%(tables)s::text[] IS NULL OR c.relname = ANY(%(tables)s::text[]))"
    ") AS parts"
)


def _schema(fields: Mapping[str, Any], schema: str | None) -> str:
    return str(schema or fields.get("schema") or "public")


def _args(fields: Mapping[str, Any], tables: Sequence[str] | None, schema: str | None) -> Any:
    return {"schema": _schema(fields, schema), "tables": list(tables) if tables else None}


def _connect(fields: Mapping[str, Any]) -> Any:
    from osiris.runtime.drivers.postgres import connect

    try:
        return connect(fields)
    except Exception as err:
        raise classified(err) from None


def _failed(fields: Mapping[str, Any], what: str, err: BaseException) -> CatalogError:
    from osiris.runtime.drivers.postgres import _fail

    return classified(_fail(fields, what, err))


def catalog_digest(
    fields: Mapping[str, Any], *, tables: Sequence[str] | None = None, schema: str | None = None
) -> str:
    """One query: changes whenever a selected relation, one of its columns (name, position, type,
    typmod, nullability, default), its unique indexes or its foreign keys change."""
    conn = _connect(fields)
    try:
        row = conn.execute(_DIGEST, _args(fields, tables, schema)).fetchone()
    except Exception as err:
        raise _failed(fields, "reading the catalog digest", err) from None
    finally:
        conn.close()
    return "postgres:" + str(row[0])


def _numeric(oid: int, typmod: int) -> tuple[int | None, int | None]:
    if oid != PG_NUMERIC or typmod < 4:
        return None, None
    return ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF


def read_catalog(
    fields: Mapping[str, Any],
    *,
    tables: Sequence[str] | None = None,
    schema: str | None = None,
    samples: int = 0,
) -> Catalog:
    args = _args(fields, tables, schema)
    conn = _connect(fields)
    try:
        try:
            version = str(conn.execute("SHOW server_version").fetchone()[0])
            column_rows = conn.execute(_COLUMNS, args).fetchall()
            key_rows = conn.execute(_KEYS, args).fetchall()
        except Exception as err:
            raise _failed(fields, "reading the catalog", err) from None
        result = _build(args["schema"], column_rows, key_rows)
        if samples > 0:
            result = tuple(_with_samples(fields, conn, t, samples) for t in result)
    finally:
        conn.close()
    return Catalog(family="postgres", tables=result, server_version=version)


def _build(
    schema: str, column_rows: Sequence[Sequence[Any]], key_rows: Sequence[Sequence[Any]]
) -> tuple[Table, ...]:
    pk: dict[str, tuple[str, ...]] = {}
    uniques: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    fks: dict[str, list[ForeignKey]] = defaultdict(list)
    for table, kind, _name, cols, ref_schema, ref_table, ref_cols in key_rows:
        if kind == "p":
            pk[table] = tuple(cols)
        elif kind == "u":
            uniques[table].append(tuple(cols))
        else:
            fks[table].append(
                ForeignKey(
                    tuple(cols), None if ref_schema == schema else ref_schema, ref_table,
                    tuple(ref_cols),
                )
            )  # fmt: skip
    columns: dict[str, list[Column]] = defaultdict(list)
    relations: dict[str, tuple[str, int]] = {}
    for table, relkind, reltuples, name, db_type, oid, typmod, notnull, default, _ in column_rows:
        relations.setdefault(table, (relkind, reltuples))
        key = pk.get(table, ())
        precision, scale = _numeric(oid, typmod)
        columns[table].append(
            Column(
                name=name,
                db_type=db_type,
                arrow_type=str(pg_to_arrow(oid, precision, scale)),
                nullable=not notnull,
                default=default,
                primary_key_position=key.index(name) + 1 if name in key else None,
            )
        )
    out = []
    for table, (relkind, reltuples) in relations.items():
        kind = _KINDS.get(relkind, "table")
        out.append(
            Table(
                name=table,
                schema=schema,
                columns=tuple(columns[table]),
                kind=kind,
                primary_key=pk.get(table, ()),
                unique_keys=tuple(uniques[table]),
                foreign_keys=tuple(fks[table]),
                # -1: never vacuumed or analyzed (PostgreSQL 14+); views have no statistics
                row_estimate=int(reltuples) if relkind not in "v" and reltuples >= 0 else None,
            )
        )
    return tuple(out)


def _with_samples(fields: Mapping[str, Any], conn: Any, table: Table, n: int) -> Table:
    from osiris.runtime.drivers.postgres import qualified

    try:
        cur = conn.execute(f"SELECT * FROM {qualified(table.schema, table.name)} LIMIT {int(n)}")
        names = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
        conn.rollback()
    except Exception as err:
        raise _failed(fields, f"reading samples of {table.name}", err) from None
    return replace(table, samples=sample_rows(names, rows))
