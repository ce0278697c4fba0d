"""MySQL/MariaDB driver on a real server: types, write modes, DDL, connection failures."""

from __future__ import annotations

import datetime as dt
import decimal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest
from drivers_ctx import make_ctx

from osiris.runtime.drivers.base import ConnectionFailure, DriverError
from osiris.runtime.drivers.mysql import MySQLExtractor, MySQLWriter

pytestmark = pytest.mark.mysql

TYPES_DDL = """CREATE TABLE t_types (
  id INT PRIMARY KEY, i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED,
  i24 MEDIUMINT, i32 INT, u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED, d DECIMAL(38,10),
  d2 DECIMAL(12,2), f FLOAT, db DOUBLE, b BOOL, c CHAR(5), v VARCHAR(50), t TEXT, dt DATE,
  tm TIME(6), dtt DATETIME(6), ts TIMESTAMP(6) NULL, j JSON, bl BLOB, vb VARBINARY(20),
  u UUID, e ENUM('a','b'), y YEAR, bits BIT(8)) CHARACTER SET utf8mb4"""
TYPES_ROW = (
    "(1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295, -9223372036854775808, "
    "18446744073709551615, 1234567890123456789012345678.0123456789, 12.30, 1.5, 0.1, 1, 'ab', "
    "'héllo 🎉', 'multi\\nline \"q\", comma NULL', '2024-02-29', '23:59:59.999999', "
    "'9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.5', '{\"a\": [1, 2]}', x'00ff10', "
    "x'0102', '123e4567-e89b-12d3-a456-426614174000', 'b', 2024, b'101')"
)
EXPECTED_SCHEMA = pa.schema(
    [
        ("id", pa.int32()),
        ("i8", pa.int8()),
        ("u8", pa.uint8()),
        ("i16", pa.int16()),
        ("u16", pa.uint16()),
        ("i24", pa.int32()),
        ("i32", pa.int32()),
        ("u32", pa.uint32()),
        ("i64", pa.int64()),
        ("u64", pa.uint64()),
        ("d", pa.decimal128(38, 10)),
        ("d2", pa.decimal128(12, 2)),
        ("f", pa.float32()),
        ("db", pa.float64()),
        ("b", pa.bool_()),
        ("c", pa.string()),
        ("v", pa.string()),
        ("t", pa.string()),
        ("dt", pa.date32()),
        ("tm", pa.time64("us")),
        ("dtt", pa.timestamp("us")),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("j", pa.json_()),
        ("bl", pa.binary()),
        ("vb", pa.binary()),
        ("u", pa.uuid()),
        ("e", pa.string()),
        ("y", pa.int16()),
        ("bits", pa.uint64()),
    ]
)


def my(db: dict[str, Any]) -> pymysql.Connection[Any]:
    fields = {k: db[k] for k in ("host", "port", "user", "password", "database")}
    return pymysql.connect(**fields, autocommit=True, charset="utf8mb4")


def execute(db: dict[str, Any], *statements: str) -> list[tuple[Any, ...]]:
    conn = my(db)
    try:
        with conn.cursor() as cur:
            for stmt in statements:
                cur.execute(stmt)
            return list(cur.fetchall())
    finally:
        conn.close()


def seed_types(db: dict[str, Any]) -> None:
    execute(
        db,
        TYPES_DDL,
        f"INSERT INTO t_types VALUES {TYPES_ROW}",
        "INSERT INTO t_types (id) VALUES (2)",
    )


def test_extract_types_from_metadata(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    seed_types(mysql_db)
    ctx = make_ctx(tmp_path, "ext", {"table": "t_types"}, mysql_db)
    table = MySQLExtractor().extract(ctx).read_all().sort_by("id")
    assert table.schema == EXPECTED_SCHEMA
    first, nulls = table.to_pylist()
    assert first["u64"] == 18446744073709551615 and first["i64"] == -9223372036854775808
    assert first["d"] == decimal.Decimal("1234567890123456789012345678.0123456789")
    assert str(first["d2"]) == "12.30"
    assert first["f"] == 1.5 and first["db"] == 0.1 and first["b"] is True
    assert first["v"] == "héllo 🎉" and first["t"] == 'multi\nline "q", comma NULL'
    assert first["tm"] == dt.time(23, 59, 59, 999999)
    assert first["dtt"] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert first["ts"] == dt.datetime(2038, 1, 19, 3, 14, 7, 500000, tzinfo=dt.UTC)
    assert first["j"] == '{"a": [1, 2]}' and first["bl"] == b"\x00\xff\x10"
    assert first["u"] == uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
    assert first["e"] == "b" and first["y"] == 2024 and first["bits"] == 5
    assert all(v is None for k, v in nulls.items() if k != "id")


def test_extract_batches_columns_where_limit_query(
    mysql_db: dict[str, Any], tmp_path: Path
) -> None:
    execute(
        mysql_db,
        "CREATE TABLE nums (n INT, label VARCHAR(10))",
        "INSERT INTO nums SELECT seq, CONCAT('x', seq) FROM seq_1_to_100",
    )
    config = {"table": "nums", "columns": ["n"], "where": "n > 10", "limit": 25, "batch_size": 7}
    reader = MySQLExtractor().extract(make_ctx(tmp_path, "e", config, mysql_db))
    assert reader.schema == pa.schema([("n", pa.int32())])
    assert [b.num_rows for b in reader] == [7, 7, 7, 4]
    query = {"query": "SELECT n, NULL AS nothing FROM nums WHERE n < 0;"}
    empty = MySQLExtractor().extract(make_ctx(tmp_path, "q", query, mysql_db)).read_all()
    assert empty.num_rows == 0 and empty.schema.names == ["n", "nothing"]


def test_extract_backlog_spills_to_disk_and_reads_back_exactly(
    mysql_db: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from osiris.runtime.drivers import readahead

    seed_types(mysql_db)
    execute(
        mysql_db,
        "INSERT INTO t_types (id, v, d, ts) SELECT seq + 2, CONCAT('é', seq), seq / 7, "
        "TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM seq_1_to_30000",
    )
    config = {"table": "t_types", "batch_size": 500}
    expected = MySQLExtractor().extract(make_ctx(tmp_path, "a", config, mysql_db)).read_all()
    spill_root = tmp_path / "spill"
    spill_root.mkdir()
    monkeypatch.setattr(readahead, "DEFAULT_BUDGET", 1)  # everything queued goes to disk
    monkeypatch.setattr(readahead.tempfile, "tempdir", str(spill_root))
    spilled_files = 0
    batches = []
    for batch in MySQLExtractor().extract(make_ctx(tmp_path, "b", config, mysql_db)):
        batches.append(batch)
        spilled_files += len(list(spill_root.glob("*/*.arrows")))
        time.sleep(0.002)  # a slow writer: connectorx runs ahead
    assert spilled_files > 0
    assert pa.Table.from_batches(batches).equals(expected)
    assert list(spill_root.iterdir()) == []


def _reader(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2))


def test_write_creates_table_and_round_trips(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    seed_types(mysql_db)
    data = (
        MySQLExtractor().extract(make_ctx(tmp_path, "e", {"table": "t_types"}, mysql_db)).read_all()
    )
    config = {"table": "copy", "primary_key": ["id"]}
    assert (
        MySQLWriter().write(make_ctx(tmp_path, "w", config, mysql_db), _reader(data)).rows_out == 2
    )
    ddl = (tmp_path / "artifacts" / "w" / "copy.ddl.sql").read_text()
    assert "PRIMARY KEY (`id`)" in ddl and "`j` JSON" in ddl and "`u` UUID" in ddl
    back = MySQLExtractor().extract(make_ctx(tmp_path, "b", {"table": "copy"}, mysql_db)).read_all()
    # documented: MySQL has no full-range tz-aware type, so timestamptz lands in DATETIME(6) as UTC
    expected = data.set_column(21, "ts", data["ts"].cast(pa.timestamp("us")))
    assert back.sort_by("id").equals(expected.sort_by("id"))


def _orders(ids: list[int], label: str) -> pa.RecordBatchReader:
    return _reader(
        pa.table({"id": pa.array(ids, pa.int64()), "label": [f"{label}{i}" for i in ids]})
    )


def test_write_modes(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    w = MySQLWriter()

    def write(mode: str, ids: list[int], label: str) -> None:
        cfg = {"table": "o", "write_mode": mode, "primary_key": ["id"]}
        w.write(make_ctx(tmp_path, "w", cfg, mysql_db), _orders(ids, label))

    def table() -> list[tuple[Any, ...]]:
        return execute(mysql_db, "SELECT id, label FROM o ORDER BY id")

    write("append", [1, 2], "a")
    write("append", [3], "a")
    assert table() == [(1, "a1"), (2, "a2"), (3, "a3")]
    write("upsert", [2, 4], "u")
    first = table()
    write("upsert", [2, 4], "u")
    assert table() == first == [(1, "a1"), (2, "u2"), (3, "a3"), (4, "u4")]
    write("replace", [7, 8], "r")
    write("replace", [8, 9], "r")
    assert table() == [(8, "r8"), (9, "r9")]
    with pytest.raises(DriverError):  # duplicate key: nothing of this append stays
        write("append", [10, 9], "x")
    assert table() == [(8, "r8"), (9, "r9")]
    leftovers = execute(mysql_db, "SHOW TABLES")
    assert leftovers == [("o",)]


def test_failed_create_leaves_no_table(mysql_db: dict[str, Any], tmp_path: Path) -> None:
    cfg = {"table": "fresh", "primary_key": ["id"]}
    with pytest.raises(DriverError):
        MySQLWriter().write(make_ctx(tmp_path, "w", cfg, mysql_db), _orders([1, 1], "d"))
    assert execute(mysql_db, "SHOW TABLES") == []


@pytest.fixture
def silent_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"port": 1}, "refused"),
        ({"user": "osiris_nobody"}, "authentication"),
        ({"database": "osiris_no_such_db"}, "unknown_database"),
        ({"port": "SILENT", "connect_timeout": 1}, "unreachable"),
    ],
)
def test_connection_failures_are_one_secret_free_line(
    mysql_db: dict[str, Any],
    tmp_path: Path,
    silent_port: int,
    change: dict[str, Any],
    reason: str,
) -> None:
    conn = {**mysql_db, "password": "s3cr3t-pw", **change}
    if conn["port"] == "SILENT":
        conn["port"] = silent_port
    if "database" in change:
        conn["password"] = mysql_db["password"]  # root has no password here
    with pytest.raises(ConnectionFailure) as info:
        MySQLExtractor().extract(make_ctx(tmp_path, "e", {"table": "t"}, conn))
    message = str(info.value)
    assert info.value.reason == reason, message
    assert "s3cr3t-pw" not in message and "\n" not in message
