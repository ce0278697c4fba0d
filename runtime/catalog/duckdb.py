"""DuckDB catalogs from duckdb_tables/views/columns/constraints of the file attached read-only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from osiris.runtime.catalog.errors import CatalogError
from osiris.runtime.catalog.model import Catalog, Column, ForeignKey, Table
from osiris.runtime.catalog.values import sample_rows
from osiris.runtime.contract.exits import ExitCode

_DB = "osiris_source"
_WHERE = "database_name = ? AND schema_name = ? AND (?::varchar[] IS NULL OR list_contains(?::varchar[], table_name))"
_DIGEST = (
    "SELECT count(*) || ':' || coalesce(sum(hash(x)), 0) FROM ("
    "SELECT concat_ws('|', 'c', table_name, column_index, column_name, data_type, is_nullable, "
    f"coalesce(column_default, '~')) AS x FROM duckdb_columns() WHERE {_WHERE} "
    "UNION ALL SELECT concat_ws('|', 'k', table_name, constraint_type, "
    "constraint_column_names::varchar, coalesce(referenced_table, '~'), "
    f"referenced_column_names::varchar) FROM duckdb_constraints() WHERE {_WHERE} "
    "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY') "
    "UNION ALL SELECT concat_ws('|', 'v', view_name) FROM duckdb_views() "
    "WHERE database_name = ? AND schema_name = ? "
    "AND (?::varchar[] IS NULL OR list_contains(?::varchar[], view_name)))"
)


def _path(fields: Mapping[str, Any]) -> Path:
    raw = fields.get("path") or fields.get("database")
    if not isinstance(raw, str) or not raw:
        raise CatalogError("DuckDB discovery needs the connection's 'path'", ExitCode.CONFIGURATION)
    path = Path(raw)
    if not path.is_file():
        raise CatalogError(f"DuckDB database file {path} does not exist", ExitCode.CONFIGURATION)
    return path


def _open(fields: Mapping[str, Any]) -> Any:
    from osiris.runtime.duckdb_settings import open_duckdb
    from osiris.runtime.sql import quote_literal

    path = _path(fields)
    con = open_duckdb()
    try:
        con.execute(f"ATTACH {quote_literal(str(path))} AS {_DB} (READ_ONLY)")
    except Exception as err:
        con.close()
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CatalogError(
            f"cannot open DuckDB database {path}: {text}",
            ExitCode.CONFIGURATION,
            unreachable="lock" in text.lower(),  # another process writes it: like a busy server
        ) from None
    return con


def _where_args(schema: str, tables: Sequence[str] | None) -> list[Any]:
    names = list(tables) if tables else None
    return [_DB, schema, names, names]


def catalog_digest(
    fields: Mapping[str, Any], *, tables: Sequence[str] | None = None, schema: str | None = None
) -> str:
    """One query over DuckDB's catalog functions: columns (name, position, type, nullability,
    default) and key constraints of the selected tables and views."""
    con = _open(fields)
    try:
        args = _where_args(schema or "main", tables)
        row = con.execute(_DIGEST, args * 3).fetchall()[0]
    except Exception as err:
        raise CatalogError(f"DuckDB: reading the catalog digest: {err}") from None
    finally:
        con.close()
    return "duckdb:" + str(row[0] if row else "")


def arrow_types(con: Any, db_types: Sequence[str]) -> dict[str, str]:
    """The Arrow type DuckDB hands over for each type (one zero-row query for them all)."""
    distinct = sorted(set(db_types))
    if not distinct:
        return {}
    try:
        return _probe(con, distinct)
    except Exception:  # a type only the attached file knows: ask one by one
        found = {}
        for t in distinct:
            try:
                found.update(_probe(con, [t]))
            except Exception:
                found[t] = "unknown"
        return found


def _probe(con: Any, db_types: Sequence[str]) -> dict[str, str]:
    from osiris.runtime.duckdb_settings import plain_booleans

    select = ", ".join(f"NULL::{t} AS c{i}" for i, t in enumerate(db_types))
    reader = plain_booleans(con.sql(f"SELECT {select}").limit(0).to_arrow_reader(1))
    reader.read_all()  # finishes the result, so the connection takes the next query
    schema = reader.schema
    return {t: str(schema.field(i).type) for i, t in enumerate(db_types)}


def read_catalog(
    fields: Mapping[str, Any],
    *,
    tables: Sequence[str] | None = None,
    schema: str | None = None,
    samples: int = 0,
) -> Catalog:
    import duckdb

    chosen = schema or "main"
    args = _where_args(chosen, tables)
    con = _open(fields)
    try:
        try:
            found = con.execute(
                "SELECT table_name, 'table', estimated_size FROM duckdb_tables() "
                f"WHERE {_WHERE} UNION ALL SELECT view_name, 'view', NULL FROM duckdb_views() "
                "WHERE database_name = ? AND schema_name = ? AND NOT internal "
                "AND (?::varchar[] IS NULL OR list_contains(?::varchar[], view_name)) ORDER BY 1",
                [*args, *args],
            ).fetchall()
            column_rows = con.execute(
                "SELECT table_name, column_name, data_type, is_nullable, column_default "
                f"FROM duckdb_columns() WHERE {_WHERE} ORDER BY table_name, column_index",
                args,
            ).fetchall()
            key_rows = con.execute(
                "SELECT table_name, constraint_type, constraint_column_names, referenced_table, "
                f"referenced_column_names FROM duckdb_constraints() WHERE {_WHERE} "
                "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY') "
                "ORDER BY table_name, constraint_index",
                args,
            ).fetchall()
            types = arrow_types(con, [r[2] for r in column_rows])
            result = _build(chosen, found, column_rows, key_rows, types)
            if samples > 0:
                result = tuple(_with_samples(con, chosen, t, samples) for t in result)
        except duckdb.Error as err:
            raise CatalogError(f"DuckDB: reading the catalog: {err}") from None
        version = str(duckdb.__version__)
    finally:
        con.close()
    return Catalog(family="duckdb", tables=result, server_version=version)


def _build(
    schema: str,
    found: Sequence[Sequence[Any]],
    column_rows: Sequence[Sequence[Any]],
    key_rows: Sequence[Sequence[Any]],
    types: Mapping[str, str],
) -> tuple[Table, ...]:
    pk: dict[str, tuple[str, ...]] = {}
    uniques: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    fks: dict[str, list[ForeignKey]] = defaultdict(list)
    for table, kind, cols, ref_table, ref_cols in key_rows:
        if kind == "PRIMARY KEY":
            pk[table] = tuple(cols)
        elif kind == "UNIQUE":
            uniques[table].append(tuple(cols))
        else:
            fks[table].append(ForeignKey(tuple(cols), None, str(ref_table), tuple(ref_cols)))
    columns: dict[str, list[Column]] = defaultdict(list)
    for table, name, db_type, nullable, default in column_rows:
        key = pk.get(table, ())
        columns[table].append(
            Column(
                name=name,
                db_type=db_type,
                arrow_type=types[db_type],
                nullable=bool(nullable),
                default=default,
                primary_key_position=key.index(name) + 1 if name in key else None,
            )
        )
    return tuple(
        Table(
            name=table,
            schema=schema,
            columns=tuple(columns[table]),
            kind=kind,
            primary_key=pk.get(table, ()),
            unique_keys=tuple(uniques[table]),
            foreign_keys=tuple(fks[table]),
            row_estimate=None if size is None else int(size),
        )
        for table, kind, size in found
    )


def _with_samples(con: Any, schema: str, table: Table, n: int) -> Table:
    from osiris.runtime.sql import qualified

    cur = con.execute(f"SELECT * FROM {qualified(_DB, schema, table.name)} LIMIT {int(n)}")
    names = [d[0] for d in cur.description or ()]
    return replace(table, samples=sample_rows(names, cur.fetchall()))
