"""PostgreSQL/Supabase driver on a real server: types, write modes, DDL, connection failures."""

from __future__ import annotations

import datetime as dt
import decimal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from drivers_ctx import make_ctx

from osiris.runtime.drivers.base import ConnectionFailure, DriverError
from osiris.runtime.drivers.postgres import PostgresExtractor, PostgresWriter
from osiris.runtime.drivers.sql_common import DriverConfigError
from osiris.runtime.errors import ConfigurationError

pytestmark = pytest.mark.postgres

TYPES_DDL = """CREATE TABLE t_types (
  id int PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, n numeric(38,10), n20 numeric(20,0),
  nu numeric, r real, d double precision, b boolean, c char(3), v varchar(20), t text, dt date,
  tm time, ts timestamp, tz timestamptz, j json, jb jsonb, by bytea, u uuid, e mood)"""
TYPES_ROW = (
    "(1, -32768, -2147483648, -9223372036854775808, 1234567890123456789012345678.0123456789, "
    "18446744073709551615, 3.14159265358979323846, 1.5, 0.1, true, 'ab', 'héllo 🎉', "
    "E'multi\\nline \"q\", comma', '2024-02-29', '23:59:59.999999', '2024-01-01 10:00:00.5', "
    "'2024-01-01 10:00:00+02', '{\"a\": [1, 2]}', '{\"b\": null}', '\\x00ff10', "
    "'123e4567-e89b-12d3-a456-426614174000', 'happy')"
)
EXPECTED_SCHEMA = pa.schema(
    [
        ("id", pa.int32()),
        ("i2", pa.int16()),
        ("i4", pa.int32()),
        ("i8", pa.int64()),
        ("n", pa.decimal128(38, 10)),
        ("n20", pa.decimal128(20, 0)),
        ("nu", pa.string()),
        ("r", pa.float32()),
        ("d", pa.float64()),
        ("b", pa.bool_()),
        ("c", pa.string()),
        ("v", pa.string()),
        ("t", pa.string()),
        ("dt", pa.date32()),
        ("tm", pa.time64("us")),
        ("ts", pa.timestamp("us")),
        ("tz", pa.timestamp("us", tz="UTC")),
        ("j", pa.json_()),
        ("jb", pa.json_()),
        ("by", pa.binary()),
        ("u", pa.uuid()),
        ("e", pa.string()),
    ]
)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a connect timeout)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def pg(db: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], dbname=db["database"], autocommit=True
    )


def seed_types(db: dict[str, Any]) -> None:
    with pg(db) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
        conn.execute(TYPES_DDL)  # type: ignore[arg-type]
        conn.execute(f"INSERT INTO t_types VALUES {TYPES_ROW}")  # type: ignore[arg-type]
        conn.execute("INSERT INTO t_types (id) VALUES (2)")


def rows(db: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    with pg(db) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_extract_types_from_metadata(pg_db: dict[str, Any], tmp_path: Path) -> None:
    seed_types(pg_db)
    ctx = make_ctx(tmp_path, "ext", {"table": "t_types"}, pg_db)
    table = PostgresExtractor().extract(ctx).read_all().sort_by("id")
    assert table.schema == EXPECTED_SCHEMA
    first, nulls = table.to_pylist()
    assert first["i8"] == -9223372036854775808
    assert first["n"] == decimal.Decimal("1234567890123456789012345678.0123456789")
    assert first["n20"] == decimal.Decimal(18446744073709551615)
    assert first["nu"] == "3.14159265358979323846"
    assert first["d"] == 0.1 and first["b"] is True and first["c"] == "ab "
    assert first["v"] == "héllo 🎉" and first["t"] == 'multi\nline "q", comma'
    assert first["tm"] == dt.time(23, 59, 59, 999999)
    assert first["ts"] == dt.datetime(2024, 1, 1, 10, 0, 0, 500000)
    assert first["tz"] == dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.UTC)
    assert first["j"] == '{"a": [1, 2]}' and first["jb"] == '{"b": null}'
    assert first["by"] == b"\x00\xff\x10"
    assert first["u"] == uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
    assert first["e"] == "happy"
    assert all(v is None for k, v in nulls.items() if k != "id")


def test_extract_is_batched_and_honours_columns_where_limit(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    with pg(pg_db) as conn:
        conn.execute("CREATE SCHEMA s")
        conn.execute("CREATE TABLE s.nums (n int, label text)")
        conn.execute("INSERT INTO s.nums SELECT g, 'x' || g FROM generate_series(1, 100) g")
    config = {"table": "nums", "schema": "s", "columns": ["n"], "where": "n > 10", "limit": 25}
    reader = PostgresExtractor().extract(
        make_ctx(tmp_path, "e", {**config, "batch_size": 7}, pg_db)
    )
    sizes = [b.num_rows for b in reader]
    assert sizes == [7, 7, 7, 4]
    query = {"query": "SELECT n * 2 AS twice FROM s.nums WHERE false"}
    empty = PostgresExtractor().extract(make_ctx(tmp_path, "q", query, pg_db)).read_all()
    assert empty.num_rows == 0 and empty.schema == pa.schema([("twice", pa.int32())])


def test_extract_rows_longer_than_a_parse_chunk(pg_db: dict[str, Any], tmp_path: Path) -> None:
    # 5 MiB values with quotes, commas and line breaks between short rows: a streaming CSV
    # reader with 4 MiB blocks failed on them ("straddling object straddles two block boundaries").
    query = (
        "SELECT g, CASE WHEN g % 3 = 0 THEN repeat(E'a,\\n\"b', 1310720) ELSE 'x' || g END AS v "
        "FROM generate_series(1, 9) g ORDER BY g"
    )
    ctx = make_ctx(tmp_path, "e", {"query": query, "batch_size": 4}, pg_db)
    table = PostgresExtractor().extract(ctx).read_all()
    values = table.column("v").to_pylist()
    assert table.column("g").to_pylist() == list(range(1, 10))
    for g, value in zip(range(1, 10), values, strict=True):
        assert value == ('a,\n"b' * 1310720 if g % 3 == 0 else f"x{g}")


def _reader(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2))


def test_write_creates_table_and_round_trips(pg_db: dict[str, Any], tmp_path: Path) -> None:
    seed_types(pg_db)
    source = PostgresExtractor().extract(make_ctx(tmp_path, "e", {"table": "t_types"}, pg_db))
    data = source.read_all()
    config = {"table": "copy", "primary_key": ["id"]}
    result = PostgresWriter().write(make_ctx(tmp_path, "w", config, pg_db), _reader(data))
    assert result.rows_out == 2
    ddl = (tmp_path / "artifacts" / "w" / "copy.ddl.sql").read_text()
    assert 'PRIMARY KEY ("id")' in ddl and '"tz" timestamptz' in ddl and '"u" uuid' in ddl
    back = PostgresExtractor().extract(make_ctx(tmp_path, "b", {"table": "copy"}, pg_db))
    assert back.read_all().sort_by("id").equals(data.sort_by("id"))


def _orders(ids: list[int], label: str) -> pa.RecordBatchReader:
    table = pa.table({"id": pa.array(ids, pa.int64()), "label": [f"{label}{i}" for i in ids]})
    return _reader(table)


def test_write_modes(pg_db: dict[str, Any], tmp_path: Path) -> None:
    w = PostgresWriter()

    def write(mode: str, ids: list[int], label: str) -> None:
        cfg = {"table": "o", "write_mode": mode, "primary_key": ["id"]}
        w.write(make_ctx(tmp_path, "w", cfg, pg_db), _orders(ids, label))

    write("append", [1, 2], "a")
    write("append", [3], "a")
    assert rows(pg_db, "SELECT id, label FROM o ORDER BY id") == [(1, "a1"), (2, "a2"), (3, "a3")]
    write("upsert", [2, 4], "u")
    first = rows(pg_db, "SELECT id, label FROM o ORDER BY id")
    write("upsert", [2, 4], "u")
    assert rows(pg_db, "SELECT id, label FROM o ORDER BY id") == first
    assert first == [(1, "a1"), (2, "u2"), (3, "a3"), (4, "u4")]
    with pg(pg_db) as conn:
        conn.execute("CREATE INDEX o_label ON o (label)")
    write("replace", [7, 8], "r")
    write("replace", [8, 9], "r")  # twice: constraint and index names must survive the swap
    assert rows(pg_db, "SELECT id, label FROM o ORDER BY id") == [(8, "r8"), (9, "r9")]
    indexes = {r[0] for r in rows(pg_db, "SELECT indexname FROM pg_indexes WHERE tablename = 'o'")}
    assert indexes == {"o_pkey", "o_label"}
    with pytest.raises(DriverError):  # duplicate key: the whole append rolls back
        write("append", [10, 9], "x")
    assert rows(pg_db, "SELECT count(*) FROM o") == [(2,)]


def test_created_table_gets_its_key_after_the_load(pg_db: dict[str, Any], tmp_path: Path) -> None:
    w = PostgresWriter()
    cfg = {"table": "k", "primary_key": ["id"]}
    with pytest.raises(DriverError, match=r"k_pkey|duplicate|unique"):  # duplicate key in the data
        w.write(make_ctx(tmp_path, "w", cfg, pg_db), _orders([1, 2, 1], "a"))
    assert rows(pg_db, "SELECT to_regclass('k') IS NULL") == [(True,)]  # nothing left behind
    w.write(make_ctx(tmp_path, "w", cfg, pg_db), _orders([1, 2], "a"))
    key = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'k'::regclass"
    assert rows(pg_db, key) == [("PRIMARY KEY (id)",)]
    nullable = "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'k' AND column_name = 'id'"
    assert rows(pg_db, nullable) == [("NO",)]


def test_missing_table_without_create(pg_db: dict[str, Any], tmp_path: Path) -> None:
    cfg = {"table": "nope", "create_if_missing": False}
    with pytest.raises(DriverError, match="does not exist"):
        PostgresWriter().write(make_ctx(tmp_path, "w", cfg, pg_db), _orders([1], "a"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"port": 1}, "refused"),
        ({"database": "osiris_no_such_db"}, "unknown_database"),
        ({"port": "SILENT", "connect_timeout": 1}, "unreachable"),
    ],
)
def test_connection_failures_are_one_secret_free_line(
    pg_db: dict[str, Any],
    tmp_path: Path,
    silent_port: int,
    change: dict[str, Any],
    reason: str,
) -> None:
    conn = {**pg_db, "password": "s3cr3t-pw", **change}
    if conn["port"] == "SILENT":
        conn["port"] = silent_port
    with pytest.raises(ConnectionFailure) as info:
        PostgresExtractor().extract(make_ctx(tmp_path, "e", {"table": "t"}, conn))
    message = str(info.value)
    assert info.value.reason == reason, message
    assert "s3cr3t-pw" not in message and "\n" not in message


def test_supabase_rest_only_credentials_are_a_configuration_error(tmp_path: Path) -> None:
    conn = {"url": "https://abc.supabase.co", "key": "eyJ-secret-key"}
    with pytest.raises(DriverConfigError) as info:
        PostgresWriter().write(make_ctx(tmp_path, "w", {"table": "t"}, conn), _orders([1], "a"))
    assert isinstance(info.value, ConfigurationError) and info.value.exit_code == 5
    assert "Project Settings -> Database" in str(info.value)
    assert "eyJ-secret-key" not in str(info.value)


@pytest.mark.parametrize(
    "values",
    [
        ["plain", "", None, "  spaced  ", "ü😀"],  # unquoted batch: '' stays '', None is NULL
        ["\\N", "\\.", "", None],  # markers: the batch is quoted, the markers stay text
        ["a,b", 'q"z', "multi\nline", "cr\rhere", None],  # need quotes
        ["\\."],  # alone on its line: must not end the COPY
    ],
)
def test_strings_round_trip_exactly(
    pg_db: dict[str, Any], tmp_path: Path, values: list[str | None]
) -> None:
    import datetime as dt_

    stamps = [dt_.datetime(2024, 1, 1, 0, 0, i) for i in range(len(values))]
    if len(values) > 1:
        stamps[1] = dt_.datetime(2024, 1, 1, 0, 0, 1, 250)  # a fraction keeps microseconds
    table = pa.table(
        {"s": pa.array(values, pa.string())}
        if len(values) == 1
        else {"s": pa.array(values, pa.string()), "ts": pa.array(stamps, pa.timestamp("us"))}
    )
    PostgresWriter().write(make_ctx(tmp_path, "w", {"table": "strs"}, pg_db), _reader(table))
    back = PostgresExtractor().extract(make_ctx(tmp_path, "r", {"table": "strs"}, pg_db))
    assert back.read_all().equals(table)
