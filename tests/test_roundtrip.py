"""Every mapped type through oml's engine: MySQL <-> PostgreSQL, via DuckDB/Parquet and back, exact values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from drivers_ctx import make_ctx
from runtime_helpers import run_steps, step
from test_drivers_mysql import seed_types as seed_mysql
from test_drivers_postgres import seed_types as seed_pg

from osiris.runtime.drivers.mysql import MySQLExtractor
from osiris.runtime.drivers.postgres import PostgresExtractor

pytestmark = [pytest.mark.mysql, pytest.mark.postgres]


def connections(project: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]) -> None:
    fields = ("host", "port", "user", "password", "database")
    text = json.dumps(
        {
            "connections": {
                "mysql": {"t": {k: mysql_db[k] for k in fields}},
                "postgres": {"t": {k: pg_db[k] for k in fields}},
            }
        }
    )
    (project / "osiris_connections.yaml").write_text(text, encoding="utf-8")


def read(kind: str, db: dict[str, Any], table: str, tmp: Path) -> pa.Table:
    driver = MySQLExtractor() if kind == "mysql" else PostgresExtractor()
    return (
        driver.extract(make_ctx(tmp, f"r_{table}", {"table": table}, db)).read_all().sort_by("id")
    )


def normalise(table: pa.Table) -> dict[str, list[Any]]:
    """Values as Python objects, with the documented lossy-by-design steps applied."""
    out: dict[str, list[Any]] = {}
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type) and col.type.tz:
            col = col.cast(pa.timestamp("us"))  # MySQL stores tz-aware values as UTC DATETIME(6)
        values = col.to_pylist()
        if (
            pa.types.is_decimal(col.type) and col.type.scale == 0
        ):  # BIGINT UNSIGNED -> numeric(20,0)
            values = [None if v is None else int(v) for v in values]
        out[name] = [
            str(v) if v is not None and not isinstance(v, int | float | bytes | bool) else v
            for v in values
        ]
    return out


def test_mysql_to_pg_to_mysql_through_engine(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    seed_mysql(mysql_db)
    connections(tmp_path, mysql_db, pg_db)
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "src", "mysql.extractor", "extractor", {"table": "t_types"}, connection="@mysql.t"
            ),
            step(
                "to_pg",
                "postgres.writer",
                "writer",
                {"table": "from_mysql", "primary_key": ["id"]},
                inputs={"df": "src"},
                connection="@postgres.t",
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    source = read("mysql", mysql_db, "t_types", tmp_path)
    in_pg = read("postgres", pg_db, "from_mysql", tmp_path)
    assert normalise(in_pg) == normalise(source)
    back = tmp_path / "back"
    back.mkdir()
    connections(back, mysql_db, pg_db)
    outcome, _ = run_steps(
        back,
        [
            step(
                "src",
                "postgres.extractor",
                "extractor",
                {"table": "from_mysql"},
                connection="@postgres.t",
            ),
            step(
                "to_my",
                "mysql.writer",
                "writer",
                {"table": "back", "primary_key": ["id"]},
                inputs={"df": "src"},
                connection="@mysql.t",
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    assert normalise(read("mysql", mysql_db, "back", tmp_path)) == normalise(source)


def test_pg_to_mysql_and_parquet_and_back(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    seed_pg(pg_db)
    connections(tmp_path, mysql_db, pg_db)
    parquet = tmp_path / "types.parquet"
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "src",
                "postgres.extractor",
                "extractor",
                {"table": "t_types"},
                connection="@postgres.t",
            ),
            step(
                "to_my",
                "mysql.writer",
                "writer",
                {"table": "from_pg", "primary_key": ["id"]},
                inputs={"df": "src"},
                connection="@mysql.t",
            ),
            step(
                "to_pq",
                "filesystem.parquet_writer",
                "writer",
                {"path": str(parquet)},
                inputs={"df": "src"},
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    source = read("postgres", pg_db, "t_types", tmp_path)
    in_my = normalise(read("mysql", mysql_db, "from_pg", tmp_path))
    expected = normalise(source)
    assert in_my == expected
    back = tmp_path / "back"
    back.mkdir()
    connections(back, mysql_db, pg_db)
    outcome, _ = run_steps(
        back,
        [
            step("pq", "filesystem.parquet_extractor", "extractor", {"path": str(parquet)}),
            step(
                "to_pg",
                "postgres.writer",
                "writer",
                {"table": "from_parquet", "primary_key": ["id"]},
                inputs={"df": "pq"},
                connection="@postgres.t",
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    assert normalise(read("postgres", pg_db, "from_parquet", tmp_path)) == expected


def test_processor_fan_out_and_fan_in(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    import pymysql

    conn = pymysql.connect(
        **{k: mysql_db[k] for k in ("host", "port", "user", "password", "database")},
        autocommit=True,
    )
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(10,2))")
        cur.execute("INSERT INTO orders SELECT seq, seq / 4 FROM seq_1_to_1000")
    conn.close()
    seed_pg(pg_db)
    connections(tmp_path, mysql_db, pg_db)
    query = 'SELECT o.id, o.amount, t.v FROM "orders" o LEFT JOIN "types" t ON t.id = o.id'
    outcome, _ = run_steps(
        tmp_path,
        [
            step(
                "orders", "mysql.extractor", "extractor", {"table": "orders"}, connection="@mysql.t"
            ),
            step(
                "types",
                "postgres.extractor",
                "extractor",
                {"table": "t_types"},
                connection="@postgres.t",
            ),
            step(
                "joined",
                "duckdb.processor",
                "processor",
                {"query": query},
                needs=["orders", "types"],
            ),
            step(
                "w_pg",
                "postgres.writer",
                "writer",
                {"table": "joined", "write_mode": "upsert", "primary_key": ["id"]},
                inputs={"df": "joined"},
                connection="@postgres.t",
            ),
            step(
                "w_my",
                "mysql.writer",
                "writer",
                {"table": "joined", "write_mode": "replace", "primary_key": ["id"]},
                inputs={"df": "joined"},
                connection="@mysql.t",
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    pg_rows = normalise(read("postgres", pg_db, "joined", tmp_path))
    my_rows = normalise(read("mysql", mysql_db, "joined", tmp_path))
    assert pg_rows == my_rows and len(pg_rows["id"]) == 1000 and pg_rows["v"][0] == "héllo 🎉"
