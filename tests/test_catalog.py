"""runtime.catalog on the real servers, DuckDB and files: every column field, keys, estimates,
samples, and Arrow types equal to what the extractors produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from osiris.runtime.catalog.errors import CatalogError
from osiris.runtime.catalog.model import Catalog, ForeignKey, catalog_from_json, catalog_to_json
from osiris.runtime.catalog.read import catalog_digest, read_catalog


def _columns(catalog: Catalog, table: str) -> dict[str, tuple[Any, ...]]:
    t = catalog.table(table)
    assert t is not None, [x.name for x in catalog.tables]
    return {
        c.name: (c.db_type, c.arrow_type, c.nullable, c.default, c.primary_key_position)
        for c in t.columns
    }


# ---- MariaDB / MySQL ---------------------------------------------------------------------


def _mysql(db: dict[str, Any], *statements: str) -> None:
    import pymysql

    conn = pymysql.connect(**db, autocommit=True)
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


MYSQL_DDL = (
    "CREATE TABLE parent_catalog (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE)",
    "CREATE TABLE child_catalog (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
    "flag TINYINT(1) DEFAULT 1, amount DECIMAL(12,2) NOT NULL DEFAULT 0.00, doc JSON, "
    "at DATETIME(6), ts TIMESTAMP NULL, raw VARBINARY(10), bit1 BIT(1), yr YEAR, "
    "parent INT, name VARCHAR(20) DEFAULT 'x', small SMALLINT, "
    "PRIMARY KEY (id), UNIQUE KEY uq_name_yr (name, yr), "
    "CONSTRAINT fk_catalog FOREIGN KEY (parent) REFERENCES parent_catalog (id))",
    "INSERT INTO parent_catalog VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO child_catalog (amount, doc, parent, raw) VALUES (2.5, '{\"k\": 1}', 1, 0x00ff)",
    "ANALYZE TABLE parent_catalog, child_catalog",
    "CREATE VIEW view_catalog AS SELECT id FROM parent_catalog",
)


def test_mysql_catalog_fields_keys_estimates_and_samples(mysql_db: dict[str, Any]) -> None:
    _mysql(mysql_db, *MYSQL_DDL)
    catalog = read_catalog("mysql", mysql_db, samples=5)
    assert catalog.family == "mysql" and catalog.server_version
    assert [t.name for t in catalog.tables] == ["child_catalog", "parent_catalog", "view_catalog"]
    cols = _columns(catalog, "child_catalog")
    assert cols["id"] == ("bigint(20) unsigned", "uint64", False, None, 1)
    assert cols["flag"] == ("tinyint(1)", "bool", True, "1", None)
    assert cols["amount"] == ("decimal(12,2)", "decimal128(12, 2)", False, "0.00", None)
    assert cols["doc"][1] == "extension<arrow.json>"  # MariaDB: LONGTEXT + json_valid check
    assert cols["at"][:3] == ("datetime(6)", "timestamp[us]", True)
    assert cols["ts"][1] == "timestamp[us, tz=UTC]"
    assert cols["raw"][1] == "binary" and cols["bit1"][1] == "bool"
    assert cols["yr"][1] == "int16" and cols["small"][1] == "int16"
    assert cols["name"] == ("varchar(20)", "string", True, "'x'", None)
    child = catalog.table("child_catalog")
    assert child is not None
    assert child.primary_key == ("id",) and child.kind == "table"
    assert child.unique_keys == (("name", "yr"),)
    assert child.foreign_keys == (ForeignKey(("parent",), None, "parent_catalog", ("id",)),)
    assert child.samples[0]["amount"] == "2.50" and child.samples[0]["parent"] == 1
    assert child.samples[0]["raw"] == "base64:AP8="
    parent = catalog.table("parent_catalog")
    assert parent is not None and parent.row_estimate == 2 and parent.unique_keys == (("code",),)
    assert len(parent.samples) == 2
    view = catalog.table("view_catalog")
    assert view is not None and view.kind == "view" and view.row_estimate is None
    assert catalog_from_json(catalog_to_json(catalog)) == catalog


def test_mysql_arrow_types_are_the_extractors(mysql_db: dict[str, Any]) -> None:
    import pymysql

    from osiris.runtime.drivers.mysql import _columns as probe_columns
    from osiris.runtime.drivers.sqltypes import mysql_to_arrow

    _mysql(mysql_db, *MYSQL_DDL[:2])
    catalog = read_catalog("mysql", mysql_db)
    conn = pymysql.connect(**mysql_db)
    with conn.cursor() as cur:
        probed = probe_columns(cur, "SELECT * FROM child_catalog LIMIT 0")
    conn.close()
    expected = {c.name: str(mysql_to_arrow(c)) for c in probed}
    assert {k: v[1] for k, v in _columns(catalog, "child_catalog").items()} == expected


def test_mysql_tables_option_and_digest_changes_on_alter(mysql_db: dict[str, Any]) -> None:
    _mysql(mysql_db, *MYSQL_DDL[:2])
    only = read_catalog("mysql", mysql_db, tables=["parent_catalog"])
    assert [t.name for t in only.tables] == ["parent_catalog"]
    before = catalog_digest("mysql", mysql_db)
    assert catalog_digest("mysql", mysql_db) == before
    parent_only = catalog_digest("mysql", mysql_db, tables=["parent_catalog"])
    _mysql(mysql_db, "ALTER TABLE child_catalog MODIFY small INT")
    assert catalog_digest("mysql", mysql_db) != before
    assert catalog_digest("mysql", mysql_db, tables=["parent_catalog"]) == parent_only
    changed = catalog_digest("mysql", mysql_db)
    _mysql(mysql_db, "ALTER TABLE parent_catalog ADD UNIQUE KEY uq_catalog (id, code)")
    assert catalog_digest("mysql", mysql_db) != changed


# ---- PostgreSQL --------------------------------------------------------------------------


def _pg(db: dict[str, Any], *statements: str) -> None:
    import psycopg

    with psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], dbname=db["database"], autocommit=True
    ) as conn:
        for sql in statements:
            conn.execute(sql)


PG_DDL = (
    "CREATE SCHEMA catalog_s",
    "CREATE DOMAIN catalog_s.money3 AS numeric(8,3)",
    "CREATE TABLE catalog_s.parent_catalog (id int PRIMARY KEY, code varchar(10) NOT NULL UNIQUE)",
    "CREATE TABLE catalog_s.child_catalog (id bigserial PRIMARY KEY, flag boolean DEFAULT true, "
    "amount numeric(12,2) NOT NULL DEFAULT 0, doc jsonb, at timestamp, ts timestamptz, "
    "raw bytea, u uuid, m catalog_s.money3, parent int, n numeric, name text DEFAULT 'x', "
    "small smallint, CONSTRAINT fk_catalog FOREIGN KEY (parent) "
    "REFERENCES catalog_s.parent_catalog (id), UNIQUE (name, flag))",
    "CREATE UNIQUE INDEX catalog_small_idx ON catalog_s.child_catalog (small)",
    "INSERT INTO catalog_s.parent_catalog VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO catalog_s.child_catalog (parent, doc, raw, amount) "
    "VALUES (1, '{\"k\": 1}', '\\x00ff', 2.5)",
    "ANALYZE catalog_s.parent_catalog",
    "CREATE VIEW catalog_s.view_catalog AS SELECT id FROM catalog_s.parent_catalog",
)


def test_postgres_catalog_fields_keys_estimates_and_samples(pg_db: dict[str, Any]) -> None:
    _pg(pg_db, *PG_DDL)
    catalog = read_catalog("postgres", pg_db, schema="catalog_s", samples=5)
    assert [t.name for t in catalog.tables] == ["child_catalog", "parent_catalog", "view_catalog"]
    cols = _columns(catalog, "child_catalog")
    assert cols["id"] == (
        "bigint", "int64", False, "nextval('catalog_s.child_catalog_id_seq'::regclass)", 1
    )  # fmt: skip
    assert cols["flag"] == ("boolean", "bool", True, "true", None)
    assert cols["amount"] == ("numeric(12,2)", "decimal128(12, 2)", False, "0", None)
    assert cols["doc"][1] == "extension<arrow.json>" and cols["u"][1] == "extension<arrow.uuid>"
    assert cols["at"][1] == "timestamp[us]" and cols["ts"][1] == "timestamp[us, tz=UTC]"
    assert cols["raw"][1] == "binary" and cols["n"][1] == "string"
    assert cols["m"][:2] == ("catalog_s.money3", "decimal128(8, 3)")  # a domain: its base type
    assert cols["name"] == ("text", "string", True, "'x'::text", None)
    child = catalog.table("child_catalog")
    assert child is not None and child.primary_key == ("id",)
    assert set(child.unique_keys) == {("name", "flag"), ("small",)}
    assert child.foreign_keys == (ForeignKey(("parent",), None, "parent_catalog", ("id",)),)
    assert child.samples[0]["amount"] == "2.50" and child.samples[0]["doc"] == {"k": 1}
    parent = catalog.table("parent_catalog")
    assert parent is not None and parent.row_estimate == 2 and len(parent.samples) == 2
    view = catalog.table("view_catalog")
    assert view is not None and view.kind == "view" and view.row_estimate is None
    assert catalog_from_json(catalog_to_json(catalog)) == catalog


def test_postgres_arrow_types_are_the_extractors(pg_db: dict[str, Any]) -> None:
    import psycopg

    from osiris.runtime.drivers.sqltypes import pg_to_arrow

    _pg(pg_db, *PG_DDL[:4])
    catalog = read_catalog("postgres", pg_db, schema="catalog_s")
    with psycopg.connect(
        host=pg_db["host"], port=pg_db["port"], user=pg_db["user"], dbname=pg_db["database"]
    ) as conn:
        cur = conn.execute("SELECT * FROM catalog_s.child_catalog LIMIT 0")
        expected = {
            d.name: str(pg_to_arrow(d.type_code, d.precision, d.scale))
            for d in cur.description or ()
        }
    assert {k: v[1] for k, v in _columns(catalog, "child_catalog").items()} == expected


def test_postgres_digest_changes_on_alter_and_supabase_uses_it(pg_db: dict[str, Any]) -> None:
    _pg(pg_db, *PG_DDL[:4])
    before = catalog_digest("postgres", pg_db, schema="catalog_s")
    assert catalog_digest("postgres", pg_db, schema="catalog_s") == before
    assert catalog_digest("supabase", pg_db, schema="catalog_s") == before
    _pg(pg_db, "ALTER TABLE catalog_s.child_catalog ALTER COLUMN small TYPE int")
    changed = catalog_digest("postgres", pg_db, schema="catalog_s")
    assert changed != before
    _pg(pg_db, "ALTER TABLE catalog_s.child_catalog ALTER COLUMN name SET DEFAULT 'y'")
    assert catalog_digest("postgres", pg_db, schema="catalog_s") != changed
    assert read_catalog("supabase", pg_db, schema="catalog_s").family == "supabase"


# ---- DuckDB ------------------------------------------------------------------------------


def _duckdb_file(path: Path, *statements: str) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    for sql in statements:
        con.execute(sql)
    con.close()


DUCK_DDL = (
    "CREATE TABLE parent_catalog (id INTEGER PRIMARY KEY, code VARCHAR UNIQUE)",
    "CREATE TABLE child_catalog (id BIGINT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL DEFAULT 1.5, "
    "doc JSON, u UUID, flag BOOLEAN, tags INTEGER[], parent INTEGER REFERENCES parent_catalog(id), "
    "a INTEGER, b INTEGER, UNIQUE (a, b))",
    "INSERT INTO parent_catalog VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO child_catalog VALUES (1, 2.5, '{}', uuid(), true, [1, 2], 1, 1, 1)",
    "CREATE VIEW view_catalog AS SELECT id FROM parent_catalog",
)


def test_duckdb_catalog_fields_and_arrow_types_are_the_extractors(tmp_path: Path) -> None:
    from osiris.runtime.duckdb_settings import open_duckdb, plain_booleans

    path = tmp_path / "catalog.duckdb"
    _duckdb_file(path, *DUCK_DDL)
    catalog = read_catalog("duckdb", {"path": str(path)}, samples=3)
    assert [t.name for t in catalog.tables] == ["child_catalog", "parent_catalog", "view_catalog"]
    cols = _columns(catalog, "child_catalog")
    assert cols["id"] == ("BIGINT", "int64", False, None, 1)
    assert cols["amount"] == ("DECIMAL(10,2)", "decimal128(10, 2)", False, "1.5", None)
    child = catalog.table("child_catalog")
    assert child is not None and child.primary_key == ("id",)
    assert child.unique_keys == (("a", "b"),) and child.row_estimate == 1
    assert child.foreign_keys == (ForeignKey(("parent",), None, "parent_catalog", ("id",)),)
    assert child.samples[0]["tags"] == [1, 2] and child.samples[0]["amount"] == "2.50"
    view = catalog.table("view_catalog")
    assert view is not None and view.kind == "view" and view.row_estimate is None
    con = open_duckdb()
    con.execute(f"ATTACH '{path}' AS src (READ_ONLY)")
    reader = plain_booleans(con.sql("SELECT * FROM src.child_catalog").limit(0).to_arrow_reader(1))
    expected = {f.name: str(f.type) for f in reader.schema}
    reader.read_all()
    con.close()
    assert {k: v[1] for k, v in cols.items()} == expected


def test_duckdb_digest_changes_on_alter(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    _duckdb_file(path, *DUCK_DDL[:2])
    fields = {"path": str(path)}
    before = catalog_digest("duckdb", fields)
    _duckdb_file(path, "INSERT INTO parent_catalog VALUES (9, 'z')")
    assert catalog_digest("duckdb", fields) == before  # data is not shape
    _duckdb_file(path, "ALTER TABLE parent_catalog ADD COLUMN note VARCHAR")
    assert catalog_digest("duckdb", fields) != before


def test_duckdb_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        read_catalog("duckdb", {"path": str(tmp_path / "none.duckdb")})
    assert err.value.exit_code == 5 and "does not exist" in str(err.value)


# ---- files -------------------------------------------------------------------------------


def test_files_catalog_csv_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "orders_catalog.csv").write_text("id,name,amount\n1,a,2.5\n2,b,3\n")
    (tmp_path / "sub").mkdir()
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("ok", pa.bool_())])
    pq.write_table(pa.table({"id": [1, 2, 3], "ok": [True, None, False]}, schema=schema),
                   tmp_path / "sub" / "flags_catalog.parquet")  # fmt: skip
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skip.csv").write_text("a\n1\n")
    (tmp_path / "notes.txt").write_text("not data")
    fields = {"base_dir": str(tmp_path)}
    catalog = read_catalog("filesystem", fields, samples=2)
    assert [t.name for t in catalog.tables] == ["orders_catalog.csv", "sub/flags_catalog.parquet"]
    csv = catalog.table("orders_catalog.csv")
    assert csv is not None and csv.kind == "file" and csv.row_estimate is None
    assert [(c.name, c.db_type, c.arrow_type, c.nullable) for c in csv.columns] == [
        ("id", "BIGINT", "int64", True),
        ("name", "VARCHAR", "string", True),
        ("amount", "DOUBLE", "double", True),
    ]
    assert csv.samples == (
        {"id": 1, "name": "a", "amount": 2.5},
        {"id": 2, "name": "b", "amount": 3.0},
    )
    parquet = catalog.table("sub/flags_catalog.parquet")
    assert parquet is not None and parquet.row_estimate == 3
    assert [(c.name, c.arrow_type, c.nullable) for c in parquet.columns] == [
        ("id", "int64", False),
        ("ok", "bool", True),
    ]
    only = read_catalog("filesystem", fields, tables=["orders_catalog.csv"])
    assert [t.name for t in only.tables] == ["orders_catalog.csv"]
    before = catalog_digest("filesystem", fields)
    (tmp_path / "orders_catalog.csv").write_text("id,name,amount,extra\n1,a,2.5,x\n")
    assert catalog_digest("filesystem", fields) != before


def test_files_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as missing:
        read_catalog("filesystem", {"base_dir": str(tmp_path / "nope")})
    assert missing.value.exit_code == 5
    (tmp_path / "broken_catalog.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CatalogError) as broken:
        read_catalog("filesystem", {"base_dir": str(tmp_path)})
    assert broken.value.exit_code == 4 and "broken_catalog.parquet" in str(broken.value)


def test_unknown_family_is_a_configuration_error() -> None:
    with pytest.raises(CatalogError) as err:
        catalog_digest("mongodb", {})
    assert err.value.exit_code == 5 and "mongodb" in str(err.value)


def test_digests_see_a_table_replaced_by_a_view(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    _mysql(mysql_db, "CREATE TABLE base_catalog (id INT)", "CREATE TABLE t_catalog (id INT)")
    before = catalog_digest("mysql", mysql_db)
    _mysql(mysql_db, "DROP TABLE t_catalog", "CREATE VIEW t_catalog AS SELECT id FROM base_catalog")
    assert catalog_digest("mysql", mysql_db) != before
    path = tmp_path / "kinds.duckdb"
    _duckdb_file(
        path, "CREATE TABLE base_catalog (id INTEGER)", "CREATE TABLE t_catalog (id INTEGER)"
    )
    fields = {"path": str(path)}
    before = catalog_digest("duckdb", fields)
    _duckdb_file(
        path, "DROP TABLE t_catalog", "CREATE VIEW t_catalog AS SELECT id FROM base_catalog"
    )
    assert catalog_digest("duckdb", fields) != before
