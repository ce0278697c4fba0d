"""Partitioned reads on real servers: predicates cover every row once, and partitioned runs on
the local engine (threads) give exactly the unpartitioned result, or leave the target as it was."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from runtime_helpers import read_events, run_cli, run_steps, step, write_connections, write_manifest

from osiris.runtime.context import LocalStepContext, RunDatabase
from osiris.runtime.drivers.mysql import MySQLExtractor
from osiris.runtime.drivers.postgres import PostgresExtractor
from osiris.runtime.partitions import PartitionSpec, boundaries, predicates, stride_predicates

ROWS = 3000


def pg_connect(db: dict[str, Any]) -> psycopg.Connection[Any]:
    fields = {"host": db["host"], "port": db["port"], "user": db["user"], "dbname": db["database"]}
    return psycopg.connect(
        **fields, **({"password": db["password"]} if db["password"] else {}), autocommit=True
    )


def test_strides_split_the_range_without_gaps_or_overlap() -> None:
    assert boundaries(0, 100, 4) == [25, 50, 75]
    assert boundaries(0, 2, 4) == [1, 2]  # fewer distinct values than strides: fewer partitions
    assert boundaries(5, 5, 4) == []
    assert boundaries(dt.date(2024, 1, 1), dt.date(2024, 1, 5), 2) == [dt.date(2024, 1, 3)]
    assert boundaries(25, 26, 7) == [26]
    assert stride_predicates('"id"', [10, 20]) == [
        '"id" < 10 OR "id" IS NULL',
        '"id" >= 10 AND "id" < 20',
        '"id" >= 20',
    ]
    assert stride_predicates('"id"', []) == [None]
    never_called = lambda column: pytest.fail("no bounds needed")  # noqa: E731
    spec = PartitionSpec.parse({"column": "id", "count": 1})
    assert predicates(spec, str, never_called) == [None]


# -- every row in exactly one partition, at the edges too ---------------------------------------

EDGE_IDS = [None, None, -5, 0, 1, 24, 25, 26, 49, 50, 51, 74, 75, 76, 99, 100, 101, 1000]


def _context(step_id: str, config: dict[str, Any], connection: dict[str, Any], tmp: Path) -> Any:
    return LocalStepContext(
        step_id=step_id,
        config=config,
        connection=connection,
        inputs={},
        upstream=(),
        artifacts_dir=tmp,
        project_dir=tmp,
        database=RunDatabase(tmp / "unused.duckdb"),
    )


def _mysql_edges(db: dict[str, Any]) -> None:
    conn = pymysql.connect(**db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE dask_edges (id INT NULL, d DATE NULL, ts DATETIME(6) NULL)")
        cur.executemany(
            "INSERT INTO dask_edges VALUES (%s, %s, %s)",
            [
                (
                    i,
                    None if i is None else dt.date(2024, 1, 1) + dt.timedelta(days=i),
                    None if i is None else dt.datetime(2024, 1, 1) + dt.timedelta(hours=i),
                )
                for i in EDGE_IDS
            ],
        )
    conn.close()


def _pg_edges(db: dict[str, Any]) -> None:
    with pg_connect(db) as conn:
        conn.execute("CREATE TABLE dask_edges (id int, d date, ts timestamptz)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dask_edges VALUES (%s, %s, %s)",
                [
                    (
                        i,
                        None if i is None else dt.date(2024, 1, 1) + dt.timedelta(days=i),
                        None
                        if i is None
                        else dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i),
                    )
                    for i in EDGE_IDS
                ],
            )


def _matches(run_sql: Any, preds: list[str | None]) -> list[int]:
    """For each row of dask_edges: how many partitions' predicates it satisfies."""
    cases = " + ".join(f"(CASE WHEN {p or 'TRUE'} THEN 1 ELSE 0 END)" for p in preds)
    return [int(n) for (n,) in run_sql(f"SELECT {cases} FROM dask_edges")]


@pytest.mark.parametrize(
    "partition",
    [
        {"column": "id", "count": 4, "lower": 0, "upper": 100},
        {"column": "id", "count": 3},  # MIN/MAX from the table
        {"column": "id", "count": 7, "lower": 25, "upper": 26},
        {"column": "d", "count": 4, "lower": "2024-01-01", "upper": "2024-04-10"},
        {"column": "d", "count": 5},
        {"column": "ts", "count": 4},
        {"column": "ts", "count": 3, "lower": "2024-01-02 00:00:00", "upper": "2024-01-04"},
    ],
    ids=lambda p: "-".join(str(v) for v in p.values()),
)
def test_every_row_in_exactly_one_partition(
    partition: dict[str, Any], mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    _mysql_edges(mysql_db)
    _pg_edges(pg_db)
    my_ctx = _context("src", {"table": "dask_edges"}, mysql_db, tmp_path)
    pg_ctx = _context("src", {"table": "dask_edges"}, pg_db, tmp_path)
    my_preds = MySQLExtractor().partitions(my_ctx, partition)
    pg_preds = PostgresExtractor().partitions(pg_ctx, partition)
    assert len(my_preds) > 1 and len(pg_preds) > 1
    conn = pymysql.connect(**mysql_db)

    def on_mysql(sql: str) -> list[Any]:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    assert _matches(on_mysql, my_preds) == [1] * len(EDGE_IDS)
    conn.close()
    with pg_connect(pg_db) as pg:
        assert _matches(lambda sql: pg.execute(sql).fetchall(), pg_preds) == [1] * len(EDGE_IDS)


# -- partitioned runs on the local engine -------------------------------------------------------


def _connections(project: Path, my: dict[str, Any], pg: dict[str, Any]) -> None:
    write_connections(
        project,
        "connections:\n"
        f"  mysql:\n    m: {{host: {my['host']}, port: {my['port']}, user: {my['user']}, "
        f'password: "{my["password"]}", database: {my["database"]}}}\n'
        f"  postgres:\n    p: {{host: {pg['host']}, port: {pg['port']}, user: {pg['user']}, "
        f'password: "{pg["password"]}", database: {pg["database"]}}}\n',
    )


def mysql_source(db: dict[str, Any], rows: int = ROWS, table: str = "dask_src") -> None:
    """table (dask_src): ids -20..rows-21 with every 97th NULL-valued v."""
    conn = pymysql.connect(**db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT NULL, name VARCHAR(40), "
            "amount DECIMAL(12,2), created DATE)"
        )
        cur.executemany(
            f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    i,
                    None if i % 97 == 0 else i * 3,
                    f"name-{i}",
                    f"{i}.25",
                    dt.date(2024, 1, 1) + dt.timedelta(days=i % 400),
                )
                for i in range(-20, rows - 20)
            ],
        )
    conn.close()


def pg_summary(db: dict[str, Any], table: str) -> tuple[Any, ...]:
    """Row count, key set digest and a checksum over every column."""
    with pg_connect(db) as conn:
        found = conn.execute(
            f"SELECT count(*), md5(string_agg(id::text, ',' ORDER BY id)), "
            f"md5(string_agg(concat_ws('|', id, v, name, amount, created), ',' ORDER BY id)) "
            f"FROM {table}"
        ).fetchone()
    assert found is not None
    return tuple(found)


def mysql_summary(db: dict[str, Any], table: str) -> tuple[Any, ...]:
    conn = pymysql.connect(**db)
    with conn.cursor() as cur:
        cur.execute("SET SESSION group_concat_max_len = 100000000")
        cur.execute(
            f"SELECT count(*), md5(group_concat(id ORDER BY id)), "
            f"md5(group_concat(concat_ws('|', id, v, name, amount, created) ORDER BY id)) "
            f"FROM {table}"
        )
        found = cur.fetchone()
    conn.close()
    return tuple(found)


def pg_tables(db: dict[str, Any]) -> list[str]:
    with pg_connect(db) as conn:
        return sorted(
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        )


def mysql_tables(db: dict[str, Any]) -> list[str]:
    conn = pymysql.connect(**db)
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        names = sorted(name for (name,) in cur.fetchall())
    conn.close()
    return names


def two_steps(
    partition: dict[str, Any] | None,
    *,
    source: tuple[str, str] = ("mysql.extractor", "@mysql.m"),
    sink: tuple[str, str] = ("postgres.writer", "@postgres.p"),
    table: str = "dask_dst",
    write_mode: str = "replace",
    extract: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    writer = {"table": table, "write_mode": write_mode}
    if write_mode == "upsert":
        writer["primary_key"] = ["id"]
    return [
        step(
            "src",
            source[0],
            "extractor",
            extract or {"table": "dask_src"},
            connection=source[1],
            partition=partition,
        ),
        step("dst", sink[0], "writer", writer, connection=sink[1], needs=["src"]),
    ]


@pytest.mark.parametrize("write_mode", ["replace", "append", "upsert"])
def test_mysql_to_postgres_partitioned_equals_unpartitioned(
    write_mode: str, mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db)
    _connections(tmp_path, mysql_db, pg_db)
    plain, _ = run_steps(
        tmp_path / "a",
        two_steps(None, table="dask_plain"),
        connections=tmp_path / "osiris_connections.yaml",
    )
    assert plain.status == "ok", plain.error
    if write_mode != "replace":  # an existing target: the mode's own statement publishes
        seeded, _ = run_steps(
            tmp_path / "b", two_steps(None), connections=tmp_path / "osiris_connections.yaml"
        )
        assert seeded.status == "ok"
        with pg_connect(pg_db) as c:
            c.execute("ALTER TABLE dask_dst ADD PRIMARY KEY (id)")
            c.execute("DELETE FROM dask_dst WHERE id > 100")
            if write_mode == "upsert":  # the merge must overwrite these
                c.execute("UPDATE dask_dst SET name = 'stale'")
    partition = {"column": "id", "count": 4, "lower": 0, "upper": 2000}  # rows below and above
    outcome, run_dir = run_steps(
        tmp_path / "c",
        two_steps(
            partition,
            write_mode=write_mode,
            extract={"table": "dask_src", "where": "id > 100"} if write_mode == "append" else None,
        ),
        connections=tmp_path / "osiris_connections.yaml",
    )
    assert outcome.status == "ok", outcome.error
    assert pg_summary(pg_db, "dask_dst") == pg_summary(pg_db, "dask_plain")
    assert [s.rows_out for s in outcome.steps] == [
        ROWS - (101 + 20 if write_mode == "append" else 0)
    ] * 2
    assert run_dir is not None
    events = read_events(run_dir)
    parts = [e for e in events if e["event"] == "partition_finished"]
    assert [p["partition"] for p in parts] == [0, 1, 2, 3]
    assert all(p["worker"] == "local" and p["status"] == "ok" for p in parts)
    assert sum(p["rows"] for p in parts) == outcome.steps[0].rows_out
    started = next(e for e in events if e["event"] == "run_started")
    assert {"kind": "partitioned", "steps": ["src", "dst"]} in started["units"]
    assert pg_tables(pg_db) == ["dask_dst", "dask_plain"]  # no staging table left


def test_postgres_to_mysql_partitioned_equals_unpartitioned(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    to_pg, _ = run_steps(tmp_path / "a", two_steps(None, table="dask_pg_src"), connections=conns)
    assert to_pg.status == "ok"
    back = {"source": ("postgres.extractor", "@postgres.p"), "sink": ("mysql.writer", "@mysql.m")}
    extract = {"table": "dask_pg_src"}
    plain, _ = run_steps(
        tmp_path / "b",
        two_steps(None, table="dask_plain", extract=extract, **back),
        connections=conns,
    )
    assert plain.status == "ok", plain.error
    by_date = {"column": "created", "count": 3}
    outcome, _ = run_steps(
        tmp_path / "c", two_steps(by_date, extract=extract, **back), connections=conns
    )
    assert outcome.status == "ok", outcome.error
    assert mysql_summary(mysql_db, "dask_dst") == mysql_summary(mysql_db, "dask_plain")
    assert mysql_summary(mysql_db, "dask_dst")[0] == ROWS
    assert mysql_tables(mysql_db) == ["dask_dst", "dask_plain", "dask_src"]


def test_a_failing_partition_leaves_the_target_unchanged(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    with pg_connect(pg_db) as c:
        # only the partition holding id 1600 (v = 4800) breaks the CHECK
        c.execute(
            "CREATE TABLE dask_dst (id int PRIMARY KEY, v int CHECK (v <> 4800), name text, "
            "amount numeric(12,2), created date)"
        )
        c.execute("INSERT INTO dask_dst VALUES (1, 1, 'before', 1.00, '2020-01-01')")
    before = pg_summary(pg_db, "dask_dst")
    partition = {"column": "id", "count": 4, "lower": 0, "upper": 3000}
    for mode in ("replace", "append", "upsert"):
        outcome, run_dir = run_steps(
            tmp_path / mode, two_steps(partition, write_mode=mode), connections=conns
        )
        assert outcome.status == "failed" and outcome.exit_code == 4
        assert "partition 3 of 4 failed" in (outcome.error or "")
        assert pg_summary(pg_db, "dask_dst") == before
        assert pg_tables(pg_db) == ["dask_dst"]
        assert run_dir is not None
        parts = [e for e in read_events(run_dir) if e["event"] == "partition_finished"]
        assert [p["status"] for p in parts] == ["ok", "ok", "failed", "ok"]
    # MariaDB as the target: a NOT NULL column rejects the NULLs of one range only
    pg_source = {
        "source": ("postgres.extractor", "@postgres.p"),
        "sink": ("mysql.writer", "@mysql.m"),
    }
    conn = pymysql.connect(**mysql_db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE dask_dst (id INT PRIMARY KEY, v INT NULL, name VARCHAR(40), amount DECIMAL(12,2), created DATE)"
        )
        cur.execute(
            "INSERT INTO dask_dst SELECT * FROM dask_src WHERE v IS NOT NULL AND (id < 50 OR id > 2000)"
        )
        cur.execute("ALTER TABLE dask_dst MODIFY v INT NOT NULL DEFAULT 0")
    conn.close()
    before = mysql_summary(mysql_db, "dask_dst")
    with pg_connect(pg_db) as c:
        c.execute("DELETE FROM dask_dst")
        c.execute("ALTER TABLE dask_dst DROP CONSTRAINT dask_dst_v_check")
        c.execute(
            "INSERT INTO dask_dst SELECT i, CASE WHEN i = 1500 THEN NULL ELSE i END, 'n', 1, '2024-01-01' FROM generate_series(1, 2999) i"
        )
    for mode in ("replace", "append"):
        outcome, _ = run_steps(
            tmp_path / f"my-{mode}",
            two_steps(partition, write_mode=mode, extract={"table": "dask_dst"}, **pg_source),
            connections=conns,
        )
        assert outcome.status == "failed", mode
        assert "partition 3 of 4 failed" in (outcome.error or "")
        assert mysql_summary(mysql_db, "dask_dst") == before
        assert mysql_tables(mysql_db) == ["dask_dst", "dask_src"]


# -- partitioned Parquet targets ------------------------------------------------------------------

PQ_PARTITION = {"column": "id", "count": 4, "lower": 0, "upper": 3000}
# Fails on the row with id 1600 only (a correlated subquery returning two rows there), so only
# the partition reading it fails: partition 3 of PQ_PARTITION.
PQ_FAILING_WHERE = (
    "(SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2) AS t WHERE pq_orders.id = 1600) IS NULL"
)


def parquet_summary(path: Path | str) -> tuple[Any, ...]:
    """Row count, key set digest and an order-independent checksum over every column of a
    Parquet file or glob (as pg_summary)."""
    import duckdb

    con = duckdb.connect()
    try:
        found = con.execute(
            "SELECT count(*), md5(string_agg(id::text, ',' ORDER BY id)), "
            "md5(string_agg(concat_ws('|', id, v, name, amount, created), ',' ORDER BY id)) "
            "FROM read_parquet(?)",
            [str(path)],
        ).fetchone()
    finally:
        con.close()
    assert found is not None
    return tuple(found)


def parquet_steps(
    partition: dict[str, Any] | None,
    path: str,
    extract: dict[str, Any] | None = None,
    **writer: Any,
) -> list[dict[str, Any]]:
    """MariaDB pq_orders -> filesystem.parquet_writer at path."""
    return [
        step(
            "src",
            "mysql.extractor",
            "extractor",
            {"table": "pq_orders", **(extract or {})},
            connection="@mysql.m",
            partition=partition,
        ),
        step(
            "out",
            "filesystem.parquet_writer",
            "writer",
            {"path": path, **writer},
            needs=["src"],
        ),
    ]


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file's bytes under path (or of the file path itself), by relative name."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def hidden(folder: Path) -> list[str]:
    """Hidden names anywhere under folder: staging directories and temp files."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def no_ledger(project: Path) -> bool:
    return not list((project / "runs").glob("*/debris.jsonl"))


def test_mysql_to_parquet_partitioned_equals_unpartitioned(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """4 partitions on threads into one file, and into a dataset directory of 4 files: both
    hold exactly the rows, types and values of the unpartitioned (streamed) run."""
    import pyarrow.parquet as pq

    mysql_source(mysql_db, table="pq_orders")
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    lake = tmp_path / "lake"
    plain, run_dir = run_steps(
        tmp_path, parquet_steps(None, "lake/plain.parquet"), connections=conns
    )
    assert plain.status == "ok", plain.error
    assert run_dir is not None
    started = next(e for e in read_events(run_dir) if e["event"] == "run_started")
    assert {"kind": "stream", "steps": ["src", "out"]} in started["units"]
    expected = parquet_summary(lake / "plain.parquet")
    assert expected[0] == ROWS
    schema = pq.read_schema(lake / "plain.parquet")

    for _again in range(2):  # the second run replaces the first's file
        outcome, run_dir = run_steps(
            tmp_path, parquet_steps(PQ_PARTITION, "lake/orders.parquet"), connections=conns
        )
        assert outcome.status == "ok", outcome.error
        assert [s.rows_out for s in outcome.steps] == [ROWS, ROWS]
        assert (lake / "orders.parquet").is_file()
        assert parquet_summary(lake / "orders.parquet") == expected
        assert pq.read_schema(lake / "orders.parquet").equals(schema)
    assert run_dir is not None
    events = read_events(run_dir)
    started = next(e for e in events if e["event"] == "run_started")
    assert {"kind": "partitioned", "steps": ["src", "out"]} in started["units"]
    parts = [e for e in events if e["event"] == "partition_finished"]
    assert [p["partition"] for p in parts] == [0, 1, 2, 3]
    assert all(p["worker"] == "local" and p["status"] == "ok" for p in parts)
    assert sum(p["rows"] for p in parts) == ROWS

    (lake / "orders").mkdir()
    (lake / "orders" / "stale.parquet").write_bytes(b"old")  # replaced with the directory
    for _again in range(2):
        outcome, _ = run_steps(
            tmp_path,
            parquet_steps(PQ_PARTITION, "lake/orders", layout="dataset"),
            connections=conns,
        )
        assert outcome.status == "ok", outcome.error
        assert outcome.steps[1].rows_out == ROWS
        names = sorted(p.name for p in (lake / "orders").iterdir())
        assert names == [f"part-0000{i}.parquet" for i in range(4)]
        assert parquet_summary(lake / "orders" / "*.parquet") == expected
        for name in names:
            assert pq.read_schema(lake / "orders" / name).equals(schema)
    # without partition:, a dataset is one file
    outcome, _ = run_steps(
        tmp_path, parquet_steps(None, "lake/whole", layout="dataset"), connections=conns
    )
    assert outcome.status == "ok", outcome.error
    assert [p.name for p in (lake / "whole").iterdir()] == ["part-00000.parquet"]
    assert parquet_summary(lake / "whole" / "*.parquet") == expected
    assert hidden(lake) == [] and no_ledger(tmp_path)


def test_parquet_partitions_with_partition_by_and_one_partition(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """partition_by: the parts are written again as one hive directory; one partition: its
    file is the target; layout dataset with partition_by is refused before anything runs."""
    mysql_source(mysql_db, table="pq_orders")
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    lake = tmp_path / "lake"
    plain, _ = run_steps(tmp_path, parquet_steps(None, "lake/plain.parquet"), connections=conns)
    assert plain.status == "ok", plain.error
    expected = parquet_summary(lake / "plain.parquet")
    outcome, _ = run_steps(
        tmp_path,
        parquet_steps(PQ_PARTITION, "lake/by_day", partition_by=["created"]),
        connections=conns,
    )
    assert outcome.status == "ok", outcome.error
    days = list((lake / "by_day").iterdir())
    assert len(days) == 400 and all(d.name.startswith("created=") for d in days)
    import duckdb

    con = duckdb.connect()
    try:
        count, keys = con.execute(
            "SELECT count(*), md5(string_agg(id::text, ',' ORDER BY id)) "
            "FROM read_parquet(?, hive_partitioning = true)",
            [str(lake / "by_day" / "*" / "*.parquet")],
        ).fetchone() or (0, "")
    finally:
        con.close()
    assert (count, keys) == expected[:2]
    one = {"column": "id", "count": 1}
    outcome, _ = run_steps(tmp_path, parquet_steps(one, "lake/one.parquet"), connections=conns)
    assert outcome.status == "ok", outcome.error
    assert parquet_summary(lake / "one.parquet") == expected
    refused, _ = run_steps(
        tmp_path,
        parquet_steps(PQ_PARTITION, "lake/bad", layout="dataset", partition_by=["created"]),
        connections=conns,
    )
    assert refused.status == "failed" and refused.exit_code == 4
    assert "layout dataset cannot be combined with partition_by" in (refused.error or "")
    assert not (lake / "bad").exists()
    assert hidden(lake) == [] and no_ledger(tmp_path)


def test_a_failing_parquet_partition_leaves_the_target_unchanged(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db, table="pq_orders")
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    lake = tmp_path / "lake"
    for path, layout in (("lake/orders.parquet", "file"), ("lake/orders", "dataset")):
        seeded, _ = run_steps(
            tmp_path, parquet_steps(PQ_PARTITION, path, layout=layout), connections=conns
        )
        assert seeded.status == "ok", seeded.error
        before = snapshot(tmp_path / path)
        outcome, run_dir = run_steps(
            tmp_path,
            parquet_steps(PQ_PARTITION, path, {"where": PQ_FAILING_WHERE}, layout=layout),
            connections=conns,
        )
        assert outcome.status == "failed" and outcome.exit_code == 4, layout
        assert "partition 3 of 4 failed" in (outcome.error or "")
        assert run_dir is not None
        parts = [e for e in read_events(run_dir) if e["event"] == "partition_finished"]
        assert [p["status"] for p in parts] == ["ok", "ok", "failed", "ok"]
        assert snapshot(tmp_path / path) == before, layout
        assert hidden(lake) == [], layout
    assert no_ledger(tmp_path)


def test_atomic_run_publishes_partitioned_parquet_only_with_every_target(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """--atomic: the partitioned Parquet target is published in the run's final phase, and not
    at all when another step of the run fails."""
    mysql_source(mysql_db, table="pq_orders")
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    lake = tmp_path / "lake"
    plain, _ = run_steps(tmp_path, parquet_steps(None, "lake/plain.parquet"), connections=conns)
    assert plain.status == "ok", plain.error
    expected = parquet_summary(lake / "plain.parquet")
    broken = [
        step("bad", "mysql.extractor", "extractor", {"table": "pq_missing"}, connection="@mysql.m"),
        step("bad_out", "filesystem.csv_writer", "writer", {"path": "lake/bad.csv"}, needs=["bad"]),
    ]
    for layout, path, glob in (("dataset", "ds", "*.parquet"), ("file", "f.parquet", "")):
        if layout == "dataset":
            (lake / path).mkdir()
            (lake / path / "old.parquet").write_bytes(b"old")
        else:
            (lake / path).write_bytes(b"old")
        before = snapshot(lake / path)
        steps = parquet_steps(PQ_PARTITION, f"lake/{path}", layout=layout)
        failed, _ = run_steps(
            tmp_path, steps + broken, connections=conns, atomic=True, max_parallel=1
        )
        assert failed.status == "failed", layout
        assert [s.status for s in failed.steps][:2] == ["ok", "ok"]  # staged, then discarded
        assert snapshot(lake / path) == before
        assert hidden(lake) == []
        outcome, _ = run_steps(tmp_path, steps, connections=conns, atomic=True)
        assert outcome.status == "ok", outcome.error
        assert parquet_summary(lake / path / glob) == expected
        assert hidden(lake) == []
    assert no_ledger(tmp_path)


def test_cancel_leaves_a_parquet_target_and_no_staging(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    import threading

    from osiris.runtime.cancel import CancelToken

    _connections(tmp_path, mysql_db, pg_db)
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "out.parquet").write_bytes(b"before")
    slow = "SELECT i AS id FROM generate_series(1, 4000) i WHERE pg_sleep(0.005) IS NOT NULL"
    steps = [
        step(
            "src",
            "postgres.extractor",
            "extractor",
            {"query": slow},
            connection="@postgres.p",
            partition={"column": "id", "count": 4, "lower": 1, "upper": 4000},
        ),
        step(
            "out",
            "filesystem.parquet_writer",
            "writer",
            {"path": "lake/out.parquet"},
            needs=["src"],
        ),
    ]
    token = CancelToken()
    threading.Timer(2.0, token.cancel).start()
    outcome, _ = run_steps(
        tmp_path, steps, connections=tmp_path / "osiris_connections.yaml", cancel=token
    )
    assert outcome.status == "cancelled" and outcome.exit_code == 130
    assert (lake / "out.parquet").read_bytes() == b"before"
    assert hidden(lake) == [] and no_ledger(tmp_path)


def test_a_partition_job_resolves_paths_against_the_clients_project(tmp_path: Path) -> None:
    """A worker's current directory is not the project: the job carries the client's."""
    from osiris.runtime.cancel import CancelToken
    from osiris.runtime.debris import PartScratch
    from osiris.runtime.partitioned import PartEnd, _context

    end = PartEnd("out", "filesystem.parquet_writer", {"path": "lake/o.parquet"}, None)
    side = PartScratch("run-1", 0)
    try:
        ctx = _context(end, side, str(tmp_path), CancelToken(), None, [])
        assert ctx.resolve_path("lake/o.parquet") == tmp_path / "lake" / "o.parquet"
    finally:
        side.close()
    assert Path.cwd() != tmp_path


def test_long_target_names_get_distinct_staging_tables(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """Staging names are cut to fit the identifier limit (and PostgreSQL's "_" + name of the
    table's array type), keeping the partition number: parts created at once never collide."""
    mysql_source(mysql_db, rows=400)
    _connections(tmp_path, mysql_db, pg_db)
    conns = tmp_path / "osiris_connections.yaml"
    long = "dask_" + "x" * 55
    partition = {"column": "id", "count": 8}
    outcome, _ = run_steps(tmp_path / "pg", two_steps(partition, table=long), connections=conns)
    assert outcome.status == "ok", outcome.error
    assert pg_tables(pg_db) == [long]
    back = {"source": ("postgres.extractor", "@postgres.p"), "sink": ("mysql.writer", "@mysql.m")}
    outcome, _ = run_steps(
        tmp_path / "my",
        two_steps(partition, table=long, extract={"table": long}, **back),
        connections=conns,
    )
    assert outcome.status == "ok", outcome.error
    assert mysql_summary(mysql_db, long) == mysql_summary(mysql_db, "dask_src")
    assert mysql_tables(mysql_db) == ["dask_src", long]


def test_plain_output_has_a_line_per_partition(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    mysql_source(mysql_db, rows=500)
    _connections(tmp_path, mysql_db, pg_db)
    manifest = write_manifest(tmp_path / "build", two_steps({"column": "id", "count": 2}))
    result = run_cli([str(manifest)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    parts = [line for line in result.stdout.splitlines() if line.startswith("part ")]
    assert len(parts) == 2, result.stdout
    assert parts[0].startswith("part    dst 1/2 on local: ok, ") and parts[0].endswith("s")
    rows = [int(line.split(", ")[1].split()[0]) for line in parts]
    assert sum(rows) == 500


def test_cancel_stops_every_partition_and_leaves_the_target(
    mysql_db: dict[str, Any], pg_db: dict[str, Any], tmp_path: Path
) -> None:
    import threading

    from osiris.runtime.cancel import CancelToken

    _connections(tmp_path, mysql_db, pg_db)
    with pg_connect(pg_db) as c:
        c.execute("CREATE TABLE dask_dst (id int PRIMARY KEY)")
        c.execute("INSERT INTO dask_dst VALUES (7)")
    slow = "SELECT i AS id FROM generate_series(1, 4000) i WHERE pg_sleep(0.005) IS NOT NULL"
    steps = two_steps(
        {"column": "id", "count": 4, "lower": 1, "upper": 4000},
        source=("postgres.extractor", "@postgres.p"),
        extract={"query": slow},
    )
    token = CancelToken()
    threading.Timer(2.0, token.cancel).start()
    started = time.monotonic()
    outcome, _ = run_steps(
        tmp_path / "run", steps, connections=tmp_path / "osiris_connections.yaml", cancel=token
    )
    assert outcome.status == "cancelled" and outcome.exit_code == 130
    assert time.monotonic() - started < 8  # the statements were cancelled (uncancelled: ~10 s)
    with pg_connect(pg_db) as c:
        assert c.execute("SELECT array_agg(id) FROM dask_dst").fetchone() == ([7],)
    assert pg_tables(pg_db) == ["dask_dst"]
