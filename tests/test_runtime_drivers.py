"""File and DuckDB drivers through the local engine, on real files and real DuckDB databases."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from runtime_helpers import run_steps, step, write_connections

from osiris.runtime.drivers.registry import DRIVERS, driver_class

CSV = "filesystem.csv_extractor"
CSV_OUT = "filesystem.csv_writer"
PQ = "filesystem.parquet_extractor"
PQ_OUT = "filesystem.parquet_writer"


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run_table(run_dir: Path, table: str) -> list[tuple[object, ...]]:
    return query(run_dir / "run.duckdb", f'SELECT * FROM "{table}" ORDER BY ALL')


def test_csv_extractor_options(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(
        "# exported by a tool\nid;name;score\n1;'a;b';NA\n2;bee;7\n3;'it''s';8\n",
        encoding="utf-8",
    )
    outcome, run_dir = run_steps(
        tmp_path,
        [
            step(
                "src",
                CSV,
                "extractor",
                {
                    "path": "in.csv",
                    "delimiter": ";",
                    "header": True,
                    "quote": "'",
                    "escape": "'",
                    "null_value": "NA",
                    "skip_rows": 1,
                    "columns": ["id", "score", "name"],
                    "column_types": {"score": "DOUBLE"},
                },
            )
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    assert run_table(run_dir, "src") == [(1, None, "a;b"), (2, 7.0, "bee"), (3, 8.0, "it's")]
    types = query(run_dir / "run.duckdb", "SELECT column_type FROM (DESCRIBE src)")
    assert [t[0] for t in types] == ["BIGINT", "DOUBLE", "VARCHAR"]


def test_csv_extractor_glob_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    for n in range(3):
        with gzip.open(tmp_path / "parts" / f"p{n}.csv.gz", "wt") as out:
            out.write(f"id,v\n{n},x{n}\n{n + 10},y{n}\n")
    outcome, run_dir = run_steps(
        tmp_path,
        [step("src", CSV, "extractor", {"path": "parts/*.csv.gz", "compression": "gzip"})],
    )
    assert outcome.exit_code == 0, outcome.error
    assert [r[0] for r in run_table(run_dir, "src")] == [0, 1, 2, 10, 11, 12]
    assert outcome.steps[0].rows_out == 6


def test_csv_extractor_missing_file_fails_the_step(tmp_path: Path) -> None:
    outcome, _ = run_steps(tmp_path, [step("src", CSV, "extractor", {"path": "nope.csv"})])
    assert outcome.exit_code == 4
    assert "nope.csv" in (outcome.error or "")
    assert "does not exist" in (outcome.error or "")


def test_csv_writer_replace_append_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,name\n1,a\n2,\n", encoding="utf-8")
    steps = [
        step("src", CSV, "extractor", {"path": "in.csv"}),
        step(
            "out",
            CSV_OUT,
            "writer",
            {
                "path": "out/o.csv",
                "delimiter": "|",
                "null_value": "NULL",
                "columns": ["name", "id"],
            },
            needs=["src"],
        ),
        step(
            "log",
            CSV_OUT,
            "writer",
            {"path": "out/log.csv.gz", "write_mode": "append", "compression": "gzip"},
            needs=["src"],
        ),
    ]
    first, _ = run_steps(tmp_path, steps)
    assert first.exit_code == 0, first.error
    assert (tmp_path / "out/o.csv").read_text() == "name|id\na|1\nNULL|2\n"
    second, _ = run_steps(tmp_path, steps)
    assert second.exit_code == 0, second.error
    # replace: same content again; append: header once, rows twice (concatenated gzip members)
    assert (tmp_path / "out/o.csv").read_text() == "name|id\na|1\nNULL|2\n"
    with gzip.open(tmp_path / "out/log.csv.gz", "rt") as log:
        assert log.read() == "id,name\n1,a\n2,\n1,a\n2,\n"
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_parquet_round_trip_with_partitions(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,region,amount\n1,eu,10\n2,us,20\n3,eu,30\n")
    big = "".join(f"{i}\n" for i in range(10_000))
    (tmp_path / "big.csv").write_text("n\n" + big)
    outcome, _ = run_steps(
        tmp_path,
        [
            step("src", CSV, "extractor", {"path": "in.csv"}),
            step(
                "flat",
                PQ_OUT,
                "writer",
                {"path": "pq/flat.parquet", "compression": "zstd"},
                needs=["src"],
            ),
            step("big", CSV, "extractor", {"path": "big.csv"}),
            step(
                "groups",
                PQ_OUT,
                "writer",
                {"path": "pq/big.parquet", "row_group_size": 4096},
                needs=["big"],
            ),
            step(
                "parts",
                PQ_OUT,
                "writer",
                {"path": "pq/parts", "partition_by": ["region"]},
                needs=["src"],
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    meta = pq.ParquetFile(tmp_path / "pq/flat.parquet").metadata
    assert meta.num_rows == 3
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert pq.ParquetFile(tmp_path / "pq/big.parquet").metadata.num_row_groups == 3
    assert sorted(p.name for p in (tmp_path / "pq/parts").iterdir()) == ["region=eu", "region=us"]

    outcome, run_dir = run_steps(
        tmp_path,
        [
            step("flat", PQ, "extractor", {"path": "pq/flat.parquet", "columns": ["amount", "id"]}),
            step("parts", PQ, "extractor", {"path": "pq/parts/*/*.parquet"}),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    assert run_table(run_dir, "flat") == [(10, 1), (20, 2), (30, 3)]
    assert [r[0] for r in run_table(run_dir, "parts")] == [1, 2, 3]


def test_parquet_replace_swaps_partition_directory(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,k\n1,x\n2,y\n")
    (tmp_path / "b.csv").write_text("id,k\n3,z\n")
    for source, expected in (("a.csv", ["k=x", "k=y"]), ("b.csv", ["k=z"])):
        outcome, _ = run_steps(
            tmp_path,
            [
                step("src", CSV, "extractor", {"path": source}),
                step(
                    "out", PQ_OUT, "writer", {"path": "parts", "partition_by": "k"}, needs=["src"]
                ),
            ],
        )
        assert outcome.exit_code == 0, outcome.error
        assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == expected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".parts")]


def _warehouse(tmp_path: Path) -> Path:
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA sales")
    con.execute(
        "CREATE TABLE sales.orders AS SELECT i AS id, 'c' || (i % 3) AS customer, i * 1.5 AS amount "
        "FROM range(1, 11) t(i)"
    )
    con.close()
    return db


def test_duckdb_extractor_table_columns_where_limit(tmp_path: Path) -> None:
    _warehouse(tmp_path)
    write_connections(tmp_path, "version: 1\nconnections:\n  duckdb:\n    wh: {path: wh.duckdb}\n")
    outcome, run_dir = run_steps(
        tmp_path,
        [
            step(
                "t",
                "duckdb.extractor",
                "extractor",
                {
                    "table": "orders",
                    "schema": "sales",
                    "columns": ["id", "amount"],
                    "where": "id > 3",
                    "limit": 4,
                },
                connection="@duckdb.wh",
            ),
            step(
                "q",
                "duckdb.extractor",
                "extractor",
                {
                    "path": "wh.duckdb",
                    "query": "SELECT customer, count(*) AS n FROM sales.orders GROUP BY 1",
                },
            ),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    rows = run_table(run_dir, "t")
    assert len(rows) == 4 and all(r[0] > 3 for r in rows)
    assert run_table(run_dir, "q") == [("c0", 3), ("c1", 4), ("c2", 3)]


def _write_rows(
    tmp_path: Path, rows: str, config: dict[str, object], name: str = "in.csv"
) -> tuple[Any, Path | None]:
    (tmp_path / name).write_text("id,v\n" + rows)
    return run_steps(
        tmp_path,
        [
            step("src", CSV, "extractor", {"path": name}),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"path": "target.duckdb", **config},
                needs=["src"],
            ),
        ],
    )


def test_duckdb_writer_append_creates_then_appends(tmp_path: Path) -> None:
    for _ in range(2):
        outcome, _ = _write_rows(tmp_path, "1,a\n2,b\n", {"table": "t", "write_mode": "append"})
        assert outcome.exit_code == 0, outcome.error
    assert query(tmp_path / "target.duckdb", "SELECT count(*) FROM t") == [(4,)]


def test_duckdb_writer_replace(tmp_path: Path) -> None:
    _, created_in = _write_rows(
        tmp_path, "1,a\n2,b\n", {"table": "t", "write_mode": "replace", "schema": "stage"}
    )
    assert created_in is not None
    assert "CREATE TABLE" in (created_in / "artifacts/load/ddl.sql").read_text()
    outcome, run_dir = _write_rows(
        tmp_path, "9,z\n", {"table": "t", "write_mode": "replace", "schema": "stage"}
    )
    assert outcome.exit_code == 0, outcome.error
    assert query(tmp_path / "target.duckdb", "SELECT * FROM stage.t") == [(9, "z")]
    tables = query(tmp_path / "target.duckdb", "SELECT table_name FROM duckdb_tables()")
    assert tables == [("t",)]  # no staging table left behind
    assert run_dir is not None and not (run_dir / "artifacts/load/ddl.sql").exists()  # kept


def test_duckdb_writer_upsert_twice_is_idempotent(tmp_path: Path) -> None:
    config = {"table": "t", "write_mode": "upsert", "primary_key": ["id"]}
    _write_rows(tmp_path, "1,a\n2,b\n", config)
    first, _ = _write_rows(tmp_path, "2,B\n3,c\n", config)
    assert first.exit_code == 0, first.error
    after_first = query(tmp_path / "target.duckdb", "SELECT * FROM t ORDER BY id")
    assert after_first == [(1, "a"), (2, "B"), (3, "c")]
    second, _ = _write_rows(tmp_path, "2,B\n3,c\n", config)
    assert second.exit_code == 0, second.error
    assert query(tmp_path / "target.duckdb", "SELECT * FROM t ORDER BY id") == after_first


def test_duckdb_writer_upsert_duplicate_keys_leaves_table_as_it_was(tmp_path: Path) -> None:
    config = {"table": "t", "write_mode": "upsert", "primary_key": "id"}
    _write_rows(tmp_path, "1,a\n", config)
    outcome, _ = _write_rows(tmp_path, "1,x\n1,y\n", config)
    assert outcome.exit_code == 4
    assert "more than once" in (outcome.error or "")
    assert query(tmp_path / "target.duckdb", "SELECT * FROM t") == [(1, "a")]


def test_duckdb_writer_failed_append_rolls_back(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "target.duckdb"))
    con.execute("CREATE TABLE t (id INTEGER, v INTEGER)")
    con.execute("INSERT INTO t VALUES (1, 1)")
    con.close()
    # the first row converts, the second cannot: the whole insert must roll back
    outcome, _ = _write_rows(tmp_path, "2,3\n3,three\n", {"table": "t"})
    assert outcome.exit_code == 4
    assert query(tmp_path / "target.duckdb", "SELECT * FROM t") == [(1, 1)]


def test_duckdb_writer_create_if_missing_false(tmp_path: Path) -> None:
    duckdb.connect(str(tmp_path / "target.duckdb")).close()
    outcome, _ = _write_rows(tmp_path, "1,a\n", {"table": "absent", "create_if_missing": False})
    assert outcome.exit_code == 4
    assert "absent does not exist and create_if_missing is false" in (outcome.error or "")
    assert query(tmp_path / "target.duckdb", "SELECT count(*) FROM duckdb_tables()") == [(0,)]


@pytest.mark.parametrize("step_id", ["orders-2024", "orders"])
def test_processor_sees_step_id_and_aliases(tmp_path: Path, step_id: str) -> None:
    (tmp_path / "o.csv").write_text("id,amount\n1,10\n2,20\n")
    sql = (
        f'SELECT (SELECT sum(amount) FROM "{step_id}") AS by_id, '
        "(SELECT sum(amount) FROM input) AS by_input, "
        "(SELECT sum(amount) FROM input_df) AS by_input_df, "
        f'(SELECT sum(amount) FROM "df_{step_id}") AS by_df_id, '
        "(SELECT sum(amount) FROM src) AS by_input_name"
    )
    outcome, run_dir = run_steps(
        tmp_path,
        [
            step(step_id, CSV, "extractor", {"path": "o.csv"}),
            step("calc", "duckdb.processor", "processor", {"query": sql}, inputs={"src": step_id}),
        ],
    )
    assert outcome.exit_code == 0, outcome.error
    assert run_table(run_dir, "calc") == [(30, 30, 30, 30, 30)]
    # the aliases were temporary: only step tables are in the run database
    names = query(run_dir / "run.duckdb", "SELECT table_name FROM duckdb_tables() ORDER BY 1")
    assert names == sorted([("calc",), (step_id,)])
    views = query(run_dir / "run.duckdb", "SELECT count(*) FROM duckdb_views() WHERE NOT internal")
    assert views == [(0,)]


def test_processor_with_two_inputs_has_no_input_alias(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id\n1\n")
    (tmp_path / "b.csv").write_text("id\n2\n")
    outcome, _ = run_steps(
        tmp_path,
        [
            step("a", CSV, "extractor", {"path": "a.csv"}),
            step("b", CSV, "extractor", {"path": "b.csv"}),
            step(
                "p",
                "duckdb.processor",
                "processor",
                {"query": "SELECT * FROM input"},
                needs=["a", "b"],
            ),
        ],
    )
    assert outcome.exit_code == 4
    assert "input" in (outcome.error or "")


def test_duckdb_writer_refuses_read_only_connection(tmp_path: Path) -> None:
    write_connections(
        tmp_path, "version: 1\nconnections:\n  duckdb:\n    ro: {path: t.duckdb, read_only: true}\n"
    )
    (tmp_path / "in.csv").write_text("id\n1\n")
    outcome, _ = run_steps(
        tmp_path,
        [
            step("src", CSV, "extractor", {"path": "in.csv"}),
            step(
                "load",
                "duckdb.writer",
                "writer",
                {"table": "t"},
                needs=["src"],
                connection="@duckdb.ro",
            ),
        ],
    )
    assert outcome.exit_code == 4 and "read_only" in (outcome.error or "")
    assert not (tmp_path / "t.duckdb").exists()


class _FileCtx:
    """Just enough StepContext for the CSV query builders."""

    def __init__(self, project: Path, config: dict[str, Any]) -> None:
        self.step_id = "orders"
        self.config = config
        self.project_dir = project
        self.connection = None

    def resolve_path(self, value: str) -> Path:
        return self.project_dir / value


_LATE_QUOTE = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(60_000)) + '60000,"x,y"\n'


@pytest.mark.parametrize(
    ("text", "options", "fails"),
    [
        ("id,when,price,ok\n1,2024-01-02 03:04:05,1.5,true\n2,,2.25,false\n", {}, False),
        ("a;b\n1;x\n2;NA\n", {"delimiter": ";", "null_value": "NA"}, False),
        ("junk\n1,2\n3,4\n", {"header": False, "skip_rows": 1}, False),
        ('id,t\n1,"a, ""quoted"" one"\n2,plain\n', {"column_types": {"id": "VARCHAR"}}, False),
        ("id,name\n1,ü😀\n2,x\n", {"columns": ["name"]}, False),
        ("d\n01/02/2024\n13/12/2024\n", {}, False),
        (_LATE_QUOTE, {}, True),  # quotes only past the sniffed sample: both fail alike
    ],
)
@pytest.mark.parametrize("gzipped", [False, True])
def test_pinned_csv_query_reads_what_read_csv_reads(
    tmp_path: Path, text: str, options: dict[str, Any], fails: bool, gzipped: bool
) -> None:
    from osiris.runtime.drivers.files import csv_source_query, pinned_csv_query

    name = "data.csv.gz" if gzipped else "data.csv"
    data = text.encode()
    (tmp_path / name).write_bytes(gzip.compress(data) if gzipped else data)
    ctx: Any = _FileCtx(tmp_path, {"path": name, **options})
    detected, pinned = csv_source_query(ctx), pinned_csv_query(ctx, duckdb.connect())
    assert "auto_detect=false" in pinned and "auto_detect" not in detected

    def read(query: str) -> Any:
        try:
            rel = duckdb.connect().sql(query)
            return rel.columns, rel.types, rel.fetchall()
        except duckdb.Error as err:
            return type(err).__name__

    expected = read(detected)
    assert isinstance(expected, str) == fails, expected
    assert read(pinned) == expected


def test_pinned_csv_query_leaves_globs_to_read_csv(tmp_path: Path) -> None:
    from osiris.runtime.drivers.files import csv_source_query, pinned_csv_query

    for part in ("a", "b"):
        (tmp_path / f"part-{part}.csv").write_text("id\n1\n")
    ctx: Any = _FileCtx(tmp_path, {"path": "part-*.csv"})
    assert pinned_csv_query(ctx, duckdb.connect()) == csv_source_query(ctx)


# ------------------------------------------------------------- the ability declarations

ROLE_METHODS = {"extractor": "extract", "processor": "transform", "writer": "write"}
PROMISED_METHODS = {
    "native_source": ("source_query", "define_view"),
    "sized_source": ("source_files", "source_bytes"),
    "view_processor": ("define_view",),
    "run_database_sink": ("write_from_run_db",),
    "database_file": ("database_file",),
    "partitioned_source": ("partitions",),
    "partitioned_sink": ("part_tables", "stage_part", "finish_parts"),
}


@pytest.mark.parametrize("driver_id", sorted(DRIVERS))
def test_declared_abilities_are_exactly_what_the_driver_does(driver_id: str) -> None:
    cls = driver_class(driver_id)
    declared = cls.abilities
    assert set(declared.roles) == {r for r, m in ROLE_METHODS.items() if hasattr(cls, m)}
    for ability, methods in PROMISED_METHODS.items():
        if getattr(declared, ability):
            assert all(callable(getattr(cls, m, None)) for m in methods), ability
    # and nothing it can do goes undeclared
    assert declared.native_source == hasattr(cls, "source_query")
    assert declared.sized_source == hasattr(cls, "source_bytes")
    assert declared.view_processor == (
        "processor" in declared.roles and hasattr(cls, "define_view")
    )
    assert declared.run_database_sink == hasattr(cls, "write_from_run_db")
    assert declared.database_file == hasattr(cls, "database_file")
    assert declared.partitioned_source == hasattr(cls, "partitions")
    assert declared.partitioned_sink == hasattr(cls, "stage_part")
