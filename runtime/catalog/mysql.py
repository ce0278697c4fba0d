"""MySQL/MariaDB catalogs from information_schema: a few queries for all tables, never count(*)."""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from osiris.runtime.catalog.errors import CatalogError, classified
from osiris.runtime.catalog.model import Catalog, Column, ForeignKey, Table
from osiris.runtime.catalog.values import sample_rows
from osiris.runtime.drivers import sqltypes as st

# information_schema DATA_TYPE -> the protocol type code the extractor's result would carry.
_TYPE_CODES = {
    "tinyint": st.MY_TINY, "smallint": st.MY_SHORT, "mediumint": st.MY_INT24,
    "int": st.MY_LONG, "integer": st.MY_LONG, "bigint": st.MY_LONGLONG,
    "decimal": st.MY_NEWDECIMAL, "numeric": st.MY_NEWDECIMAL, "float": st.MY_FLOAT,
    "double": st.MY_DOUBLE, "real": st.MY_DOUBLE, "timestamp": st.MY_TIMESTAMP,
    "datetime": st.MY_DATETIME, "date": st.MY_DATE, "time": st.MY_TIME, "year": st.MY_YEAR,
    "bit": st.MY_BIT, "json": st.MY_JSON,
}  # fmt: skip
_VAR_STRING = 253
_BINARY_TYPES = frozenset(
    {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
     "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
     "geometrycollection"}
)  # fmt: skip
_WIDTH = re.compile(r"^\w+\((\d+)\)")


def _schema(fields: Mapping[str, Any], schema: str | None) -> str:
    chosen = schema or fields.get("database")
    if not chosen:
        raise CatalogError("MySQL discovery needs a database (the connection's or --schema)", 5)
    return str(chosen)


def _filter(column: str, tables: Sequence[str] | None) -> tuple[str, list[str]]:
    if not tables:
        return "", []
    return f" AND {column} IN ({', '.join(['%s'] * len(tables))})", list(tables)


def _connect(fields: Mapping[str, Any]) -> Any:
    from osiris.runtime.drivers.mysql import connect

    try:
        return connect(fields)
    except Exception as err:
        raise classified(err) from None


def _failed(fields: Mapping[str, Any], what: str, err: BaseException) -> CatalogError:
    from osiris.runtime.drivers.mysql import _fail

    return classified(_fail(fields, what, err))


def _fold(expr: str) -> str:
    """An order-independent fold of expr's rows: the count and two CRC32 sums (of the text and
    of it reversed: two different linear functions of it), cheap enough for thousands of rows."""
    return f"CONCAT(COUNT(*), ':', IFNULL(SUM(CRC32({expr})), 0), ':', IFNULL(SUM(CRC32(REVERSE({expr}))), 0))"


def catalog_digest(
    fields: Mapping[str, Any], *, tables: Sequence[str] | None = None, schema: str | None = None
) -> str:
    """One query over information_schema: changes whenever a selected table or view (its kind),
    one of its columns (name, position, type, nullability, default, extra) or keys change."""
    db = _schema(fields, schema)
    cols_where, cols_args = _filter("TABLE_NAME", tables)
    columns = _fold(
        "CONCAT_WS('|', TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, "
        "IFNULL(COLUMN_DEFAULT, '~null'), COLUMN_KEY, EXTRA, IFNULL(CHARACTER_SET_NAME, '~'))"
    )
    keys = _fold(
        "CONCAT_WS('|', TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, ORDINAL_POSITION, "
        "IFNULL(REFERENCED_TABLE_SCHEMA, '~'), IFNULL(REFERENCED_TABLE_NAME, '~'), "
        "IFNULL(REFERENCED_COLUMN_NAME, '~'))"
    )
    kinds = _fold("CONCAT_WS('|', TABLE_NAME, TABLE_TYPE)")
    sql = (
        f"SELECT (SELECT {columns} FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA = %s{cols_where}), "
        f"(SELECT {keys} FROM information_schema.KEY_COLUMN_USAGE "
        f"WHERE TABLE_SCHEMA = %s{cols_where}), "
        f"(SELECT {kinds} FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s{cols_where})"
    )
    conn = _connect(fields)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, [db, *cols_args] * 3)
            row = cur.fetchone()
    except Exception as err:
        raise _failed(fields, "reading the catalog digest", err) from None
    finally:
        conn.close()
    return "mysql:" + "/".join(str(v) for v in row)


def _arrow_type(data_type: str, column_type: str, precision: Any, scale: Any) -> str:
    """The Arrow type the extractor reads this column as (the same mapping, sqltypes)."""
    kind = data_type.lower()
    unsigned = "unsigned" in column_type.lower()
    code = _TYPE_CODES.get(kind, _VAR_STRING)
    length = 0
    if kind == "tinyint":
        width = _WIDTH.match(column_type)
        length = int(width.group(1)) if width else 4
    elif kind == "bit":
        length = int(precision or 1)
    elif code == st.MY_NEWDECIMAL:
        length = int(precision or 10) + (1 if scale else 0) + (0 if unsigned else 1)
    col = st.MySQLColumn(
        name="",
        type_code=code,
        length=length,
        scale=int(scale or 0),
        flags=st.MY_UNSIGNED_FLAG if unsigned else 0,
        charsetnr=st.MY_BINARY_CHARSET if kind in _BINARY_TYPES else 33,
        data_type=kind,
    )
    return str(st.mysql_to_arrow(col))


def _default(value: Any) -> str | None:
    """MariaDB spells 'no default' on a nullable column as the text NULL."""
    if value is None or value == "NULL":
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def read_catalog(
    fields: Mapping[str, Any],
    *,
    tables: Sequence[str] | None = None,
    schema: str | None = None,
    samples: int = 0,
) -> Catalog:
    db = _schema(fields, schema)
    where, args = _filter("TABLE_NAME", tables)
    conn = _connect(fields)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT VERSION()")
                version = str(cur.fetchone()[0])
                cur.execute(
                    "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES "
                    f"WHERE TABLE_SCHEMA = %s{where} ORDER BY TABLE_NAME",
                    [db, *args],
                )
                found = cur.fetchall()
                cur.execute(
                    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, "
                    "COLUMN_DEFAULT, NUMERIC_PRECISION, NUMERIC_SCALE "
                    f"FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s{where} "
                    "ORDER BY TABLE_NAME, ORDINAL_POSITION",
                    [db, *args],
                )
                column_rows = cur.fetchall()
                cur.execute(
                    "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
                    "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
                    f"FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s{where} "
                    "ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
                    [db, *args],
                )
                key_rows = cur.fetchall()
                json_columns = _json_checks(cur, db, where, args)
            except Exception as err:
                raise _failed(fields, "reading the catalog", err) from None
            result = _build(db, found, column_rows, key_rows, json_columns)
            if samples > 0:
                result = tuple(_with_samples(fields, cur, db, t, samples) for t in result)
    finally:
        conn.close()
    return Catalog(family="mysql", tables=result, server_version=version)


def _json_checks(cur: Any, db: str, where: str, args: list[str]) -> set[tuple[str, str]]:
    """MariaDB's JSON columns: LONGTEXT with a json_valid(column) check (the extractor's rule)."""
    found: set[tuple[str, str]] = set()
    with contextlib.suppress(Exception):  # no CHECK_CONSTRAINTS before MySQL 8.0.16
        cur.execute(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            f"WHERE CONSTRAINT_SCHEMA = %s{where}",
            [db, *args],
        )
        for table, clause in cur.fetchall():
            text = str(clause).strip()
            if text.lower().startswith("json_valid(") and text.endswith(")"):
                found.add((str(table), text[11:-1].strip("`")))
    return found


def _build(
    db: str,
    found: Sequence[Sequence[Any]],
    column_rows: Sequence[Sequence[Any]],
    key_rows: Sequence[Sequence[Any]],
    json_columns: set[tuple[str, str]],
) -> tuple[Table, ...]:
    pk: dict[str, list[str]] = defaultdict(list)
    uniques: dict[str, dict[str, list[str]]] = defaultdict(dict)
    fks: dict[str, dict[str, list[tuple[str, str | None, str, str]]]] = defaultdict(dict)
    for table, constraint, column, ref_schema, ref_table, ref_column in key_rows:
        if constraint == "PRIMARY":
            pk[table].append(column)
        elif ref_table:
            fks[table].setdefault(constraint, []).append(
                (column, ref_schema, ref_table, ref_column)
            )
        else:
            uniques[table].setdefault(constraint, []).append(column)
    columns: dict[str, list[Column]] = defaultdict(list)
    for table, name, column_type, data_type, nullable, default, precision, scale in column_rows:
        kind = "json" if (table, name) in json_columns else str(data_type)
        key = pk[table]
        columns[table].append(
            Column(
                name=name,
                db_type=str(column_type),
                arrow_type=_arrow_type(kind, str(column_type), precision, scale),
                nullable=nullable == "YES",
                default=_default(default),
                primary_key_position=key.index(name) + 1 if name in key else None,
            )
        )
    out = []
    for table, table_type, rows in found:
        view = "VIEW" in str(table_type).upper()
        out.append(
            Table(
                name=table,
                schema=db,
                columns=tuple(columns[table]),
                kind="view" if view else "table",
                primary_key=tuple(pk[table]),
                unique_keys=tuple(tuple(c) for _, c in sorted(uniques[table].items())),
                foreign_keys=tuple(
                    ForeignKey(
                        tuple(p[0] for p in parts),
                        None if parts[0][1] == db else parts[0][1],
                        parts[0][2],
                        tuple(p[3] for p in parts),
                    )
                    for _, parts in sorted(fks[table].items())
                ),
                row_estimate=None if view or rows is None else int(rows),
            )
        )
    return tuple(out)


def _with_samples(fields: Mapping[str, Any], cur: Any, db: str, table: Table, n: int) -> Table:
    from dataclasses import replace

    from osiris.runtime.drivers.mysql import quote

    try:
        cur.execute(f"SELECT * FROM {quote(db)}.{quote(table.name)} LIMIT {int(n)}")
        names = [d[0] for d in cur.description or ()]
        rows = cur.fetchall()
    except Exception as err:
        raise _failed(fields, f"reading samples of {table.name}", err) from None
    return replace(table, samples=sample_rows(names, rows))
