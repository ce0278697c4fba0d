"""Schema-aware checking: tables, columns, writer keys and processor SQL against discovered
catalogs (built here as data, exactly as discovery returns them)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from oml_cases import CONNECTIONS, HEADER

from osiris.compiler.compile import compile_text
from osiris.compiler.connections import index_connections
from osiris.compiler.frontend import check_text, schema_catalogs
from osiris.oml.diagnostics import Diagnostic, DiagnosticList
from osiris.oml.span import SourceText
from osiris.runtime.catalog.model import Catalog, Column, Table
from osiris.runtime.contract.connections import ConnectionRef
from osiris.runtime.contract.exits import ExitCode

ROOT = Path(__file__).resolve().parent.parent


def col(name: str, arrow: str = "int64", db: str = "int", pk: int | None = None) -> Column:
    return Column(name, db, arrow, True, primary_key_position=pk)


ORDERS = Table(
    "orders",
    None,
    (
        col("id", pk=1),
        col("customer_id"),
        col("amount", "decimal128(12, 2)", "decimal(12,2)"),
        col("status", "string", "varchar(20)"),
        col("created_at", "timestamp[us]", "datetime"),
    ),
    primary_key=("id",),
)
CUSTOMERS = Table("customers", None, (col("id", pk=1), col("email", "string", "varchar(200)")))
SHOP = Catalog("mysql", (ORDERS, CUSTOMERS))
WAREHOUSE = Catalog(
    "postgres",
    (
        Table("orders", "sales", (col("id"), col("Total", "double", "double precision"))),
        Table("orders", "public", (col("id"),)),
        Table("regions", "public", (col("code", "string", "text"),)),
    ),
)
CATALOGS = {("mysql", "shop"): SHOP, ("postgres", "main"): WAREHOUSE}


def lookup(ref: ConnectionRef) -> Catalog | None:
    alias = ref.alias or "shop"  # @mysql is the default alias in CONNECTIONS
    return CATALOGS.get((ref.family, alias))


def connections():  # type: ignore[no-untyped-def]
    return index_connections(SourceText("osiris_connections.yaml", CONNECTIONS), DiagnosticList())


def doc(steps: str, head: str = HEADER) -> str:
    return head + "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")


def check(text: str, catalogs: Callable[[ConnectionRef], Catalog | None] | None = lookup):
    return check_text(text, "p.oml", connections=connections(), catalogs=catalogs)


def found(text: str, code: str | None = None) -> list[Diagnostic]:
    return [d for d in check(text).diagnostics if code is None or d.code == code]


def where(text: str, d: Diagnostic) -> str:
    """The source text a diagnostic's span covers, and its line:column."""
    assert d.span is not None
    data = text.encode("utf-8")
    covered = data[d.span.start.byte : d.span.end.byte].decode("utf-8")
    return f"{d.span.start.line}:{d.span.start.column} {covered}"


MYSQL_TABLE = """\
- id: src
  component: mysql.extractor
  mode: read
  config:
    connection: "@mysql.shop"
    table: {table}
"""
PG_LOAD = """\
- id: load
  component: postgres.writer
  mode: write
  needs: [src]
  config: {connection: "@postgres.main", table: orders_copy}
"""
CHAIN = """\
- id: src
  component: mysql.extractor
  mode: read
  config:
    connection: "@mysql.shop"
    table: orders
    columns: [id, amount, status]
- id: paid
  component: duckdb.processor
  mode: transform
  needs: [src]
  config:
    query: |
      SELECT id, amount * 2 AS doubled, status
      FROM input
      WHERE status = 'paid'
- id: summary
  component: duckdb.processor
  mode: transform
  needs: [paid]
  config:
    query: |
      SELECT status,
             sum(dobled) AS total
      FROM paid
      GROUP BY status
"""

# (name, text, expected codes): every OML15x on a small pipeline with the catalogs above
SCHEMA_CASES: list[tuple[str, str, set[str]]] = [
    ("unknown-table", doc(MYSQL_TABLE.format(table="order")), {"OML150"}),
    (
        "unknown-column",
        doc(MYSQL_TABLE.format(table="orders") + "    columns: [id, amout]\n"),
        {"OML151"},
    ),
    (
        "writer-key-not-in-target",
        doc(
            MYSQL_TABLE.format(table="orders")
            + textwrap.dedent(
                """\
                - id: load
                  component: mysql.writer
                  mode: write
                  needs: [src]
                  config: {connection: "@mysql.shop", table: customers, write_mode: upsert, primary_key: [customer_id]}
                """
            )
        ),
        {"OML152"},
    ),
    ("processor-column-typo", doc(CHAIN), {"OML153"}),
    (
        "partition-column-unknown",
        doc(
            MYSQL_TABLE.format(table="orders") + "  partition: {column: idd, count: 4}\n" + PG_LOAD
        ),
        {"OML174"},
    ),
    (
        "partition-column-not-ordered",
        doc(
            MYSQL_TABLE.format(table="orders")
            + "  partition: {column: status, count: 4}\n"
            + PG_LOAD
        ),
        {"OML174"},
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "expected"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES]
)
def test_schema_cases(case: str, text: str, expected: set[str]) -> None:
    codes = {d.code for d in check(text).diagnostics}
    assert codes == expected, case
    # without catalogs (--schema off) the same pipelines are clean: nothing else changes
    assert not check(text, catalogs=None).diagnostics


def test_unknown_table_points_at_the_name_with_did_you_mean() -> None:
    text = doc(MYSQL_TABLE.format(table="order"))
    (d,) = found(text)
    assert d.code == "OML150" and d.severity.value == "error"
    assert d.summary == "table 'order' does not exist in @mysql.shop"
    assert where(text, d) == "9:14 order"
    assert "Did you mean 'orders'?" in d.why
    assert [s.replacement for s in d.suggestions] == ["orders"]


def test_unknown_column_points_at_the_entry() -> None:
    text = doc(MYSQL_TABLE.format(table="orders") + "    columns: [id, amout, status]\n")
    (d,) = found(text)
    assert (d.code, d.summary) == (
        "OML151",
        "column 'amout' is not in table 'orders' of @mysql.shop",
    )
    assert where(text, d) == "10:21 amout"
    assert "Did you mean 'amount'?" in d.why
    assert [s.replacement for s in d.suggestions] == ["amount"]


def test_block_list_columns_and_quoted_entries() -> None:
    text = doc(MYSQL_TABLE.format(table="orders") + '    columns:\n      - id\n      - "stauts"\n')
    (d,) = found(text)
    assert where(text, d) == '12:11 "stauts"'
    assert [s.replacement for s in d.suggestions] == ['"status"']


def test_mysql_names_are_case_insensitive_postgres_names_are_not() -> None:
    mysql = doc(MYSQL_TABLE.format(table="ORDERS") + "    columns: [ID, Amount]\n")
    assert not found(mysql)
    pg = doc(
        """\
        - id: src
          component: postgres.extractor
          mode: read
          config: {connection: "@postgres.main", schema: sales, table: orders, columns: [id, total]}
        """
    )
    (d,) = found(pg)
    assert d.code == "OML151" and "Did you mean 'Total'?" in d.why
    assert where(pg, d) == "7:88 total"


def test_schema_is_respected_in_lookup_and_suggestions() -> None:
    text = doc(
        """\
        - id: src
          component: postgres.extractor
          mode: read
          config: {connection: "@postgres.main", schema: sales, table: region}
        """
    )
    (d,) = found(text)
    assert d.summary == "table 'region' does not exist in @postgres.main (schema 'sales')"
    assert "regions" not in d.why  # it is in public, not in sales
    public = text.replace("schema: sales", "schema: public")
    (d,) = found(public)
    assert "Did you mean 'regions'?" in d.why


def test_unknown_schema_or_connection_is_not_judged() -> None:
    other_schema = doc(
        """\
        - id: src
          component: postgres.extractor
          mode: read
          config: {connection: "@postgres.main", schema: audit, table: anything}
        """
    )
    assert not found(other_schema)
    no_entry = doc(MYSQL_TABLE.format(table="nothing"))
    assert not check(no_entry, catalogs=lambda ref: None).diagnostics


def test_writer_key_warning_only_for_an_existing_target() -> None:
    writer = textwrap.dedent(
        """\
        - id: load
          component: mysql.writer
          mode: write
          needs: [src]
          config:
            connection: "@mysql.shop"
            table: {table}
            write_mode: upsert
            primary_key: idd
        """
    )
    text = doc(MYSQL_TABLE.format(table="orders") + writer.format(table="orders"))
    (d,) = found(text)
    assert d.code == "OML152" and d.severity.value == "warning"
    assert (
        d.summary
        == "key column 'idd' is not a column of the existing table 'orders' in @mysql.shop"
    )
    assert where(text, d) == "18:20 idd"
    assert [s.replacement for s in d.suggestions] == ["id"]
    created = doc(MYSQL_TABLE.format(table="orders") + writer.format(table="new_orders"))
    assert not found(created)  # the writer creates it


def test_processor_chain_reports_the_misspelt_column_in_the_second_query() -> None:
    result = check(doc(CHAIN))
    (d,) = result.diagnostics
    assert d.code == "OML153"
    assert d.summary == (
        "the query of 'summary' does not fit its inputs: Referenced column \"dobled\" not found "
        "in FROM clause!"
    )
    assert where(doc(CHAIN), d) == "27:20 dobled"
    assert "paid: id, doubled, status" in d.why
    assert 'Candidate bindings: "doubled"' in d.why
    assert [s.replacement for s in d.suggestions] == ["doubled"]
    assert result.context is not None
    assert result.context.schema_columns["paid"] == (
        ("id", "BIGINT"),
        ("doubled", "DECIMAL(18,2)"),
        ("status", "VARCHAR"),
    )


def test_processor_type_error_and_function_typo() -> None:
    typed = doc(CHAIN.replace("sum(dobled)", "upper(doubled)"))
    (d,) = found(typed)
    assert d.code == "OML153" and "upper(DECIMAL(18,2))" in d.summary
    assert where(typed, d) == "27:16 upper"
    misspelt = doc(CHAIN.replace("sum(dobled)", "sume(doubled)"))
    (d,) = found(misspelt)
    assert where(misspelt, d) == "27:16 sume" and 'Did you mean "sum"' in d.why


def test_processor_aliases_inputs_and_df_names_bind() -> None:
    text = doc(
        MYSQL_TABLE.format(table="orders")
        + textwrap.dedent(
            """\
            - id: c
              component: mysql.extractor
              mode: read
              config: {connection: "@mysql.shop", table: customers}
            - id: joined
              component: duckdb.processor
              mode: transform
              needs: [src, c]
              config:
                query: "SELECT src.id, df_c.email, src.status FROM src JOIN df_c ON df_c.id = src.customer_id"
            - id: bad
              component: duckdb.processor
              mode: transform
              needs: [joined]
              config: {query: "SELECT input_df.mail FROM input_df"}
            """
        )
    )
    (d,) = found(text)
    assert d.code == "OML153" and "bad" in d.summary
    assert where(text, d) == "24:29 input_df.mail"
    assert [s.replacement for s in d.suggestions] == ["input_df.email"]


def test_params_in_processor_sql_do_not_break_binding() -> None:
    head = HEADER + (
        "params:\n  since: {type: date}\n  state: {type: string, default: paid}\n"
        "  n: {type: integer}\n"
    )
    text = doc(
        MYSQL_TABLE.format(table="orders")
        + textwrap.dedent(
            """\
            - id: p
              component: duckdb.processor
              mode: transform
              needs: [src]
              config:
                query: "SELECT id FROM src WHERE created_at >= ${params.since} AND status = '${params.state}' LIMIT ${params.n}"
            """
        ),
        head,
    )
    assert not found(text)
    typo = text.replace("SELECT id FROM", "SELECT idd FROM")
    (d,) = found(typo)
    assert where(typo, d) == "19:22 idd"
    after = text.replace("LIMIT", "AND amout > 0 LIMIT")
    (d,) = found(after)
    assert where(after, d).endswith(" amout")


UNKNOWN_SOURCES = [
    (
        "query-extractor",
        """\
        - id: src
          component: mysql.extractor
          mode: read
          config: {connection: "@mysql.shop", query: "SELECT 1 AS x"}
        """,
    ),
    (
        "csv-file",
        """\
        - id: src
          component: filesystem.csv_extractor
          mode: read
          config: {path: data/in.csv}
        """,
    ),
    (
        "no-cache-entry",
        """\
        - id: src
          component: mysql.extractor
          mode: read
          config: {connection: "@mysql", table: whatever}
        """,
    ),
    (
        "unknown-arrow-type",
        """\
        - id: src
          component: postgres.extractor
          mode: read
          config: {connection: "@postgres.main", table: odd}
        """,
    ),
]


@pytest.mark.parametrize(("case", "source"), UNKNOWN_SOURCES, ids=[c[0] for c in UNKNOWN_SOURCES])
def test_unknown_columns_skip_dependent_checks(case: str, source: str) -> None:
    odd = Table("odd", "public", (col("geo", "struct<x: double, y: double>", "point"),))
    catalogs = {**CATALOGS, ("postgres", "main"): Catalog("postgres", (*WAREHOUSE.tables, odd))}
    text = doc(
        textwrap.dedent(source)
        + textwrap.dedent(
            """\
            - id: p
              component: duckdb.processor
              mode: transform
              needs: [src]
              config: {query: "SELECT no_such_column FROM input"}
            """
        )
    )
    result = check_text(
        text,
        "p.oml",
        connections=connections(),
        catalogs=lambda ref: catalogs.get((ref.family, ref.alias or "")),
    )
    assert not result.diagnostics, case


def test_a_failing_lookup_never_breaks_the_check() -> None:
    def broken(ref: ConnectionRef) -> Catalog | None:
        raise OSError("corrupt cache")

    assert not check(doc(MYSQL_TABLE.format(table="order")), catalogs=broken).diagnostics


def test_processor_reading_files_is_not_judged_and_reads_nothing() -> None:
    text = doc(
        MYSQL_TABLE.format(table="orders")
        + textwrap.dedent(
            """\
            - id: p
              component: duckdb.processor
              mode: transform
              needs: [src]
              config: {query: "SELECT * FROM input, read_csv('/etc/passwd')"}
            """
        )
    )
    assert not found(text)
    several = text.replace(
        "SELECT * FROM input, read_csv('/etc/passwd')", "SELECT 1; SELECT nme FROM input"
    )
    assert not found(several)  # several statements are not bound (nor run)


def test_compile_with_schema_errors_fails_like_other_check_errors() -> None:
    text = doc(MYSQL_TABLE.format(table="order"))
    result = compile_text(text, "p.oml", connections=connections(), catalogs=lookup)
    assert result.exit_code == ExitCode.INVALID and result.emitted is None
    assert [d.code for d in result.diagnostics] == ["OML150"]
    assert compile_text(text, "p.oml", connections=connections()).exit_code == ExitCode.OK


def test_schema_off_is_no_catalogs() -> None:
    assert schema_catalogs("off", ROOT, None, {}) is None


# -- the command line ---------------------------------------------------------------------------


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "MYSQL_PASSWORD": "x", "PG_PASSWORD": "y"},
    )


def test_cli_schema_flag_default_and_off_behave_as_before_without_a_cache(tmp_path: Path) -> None:
    (tmp_path / "osiris_connections.yaml").write_text(CONNECTIONS, encoding="utf-8")
    (tmp_path / "p.oml").write_text(doc(CHAIN), encoding="utf-8")
    outputs = {}
    for flags in ((), ("--schema", "off")):
        checked = run("check", "p.oml", "--format", "json", *flags, cwd=tmp_path)
        compiled = run("compile", "p.oml", "-o", "build", *flags, cwd=tmp_path)
        assert checked.returncode == 0 and compiled.returncode == 0, (flags, compiled.stderr)
        outputs[flags] = (checked.stdout, (tmp_path / "build" / "manifest.yaml").read_bytes())
    assert len(set(outputs.values())) == 1
    assert not (tmp_path / ".osiris").exists()  # cached mode never writes or connects
    bad = run("check", "p.oml", "--schema", "always", "--format", "json", cwd=tmp_path)
    assert bad.returncode == ExitCode.INVALID and '"code": "usage"' in bad.stdout


# -- the editor ---------------------------------------------------------------------------------

CURSOR = "‸"


def completions(text: str) -> list[str]:
    from lsprotocol import types

    from osiris.compiler.lsp import completion
    from osiris.compiler.lsp.positions import UTF16, units
    from osiris.compiler.lsp.state import DocumentState

    index = text.index(CURSOR)
    clean = text.replace(CURSOR, "", 1)
    line = clean[:index].count("\n")
    start = clean.rfind("\n", 0, index) + 1
    state = DocumentState("file:///work/p.oml", clean, 1)
    state.catalogs = lookup
    state.current()
    position = types.Position(line, units(clean[start:index], UTF16))
    return [item.label for item in completion.complete(state, position).items]


def test_lsp_diagnostics_use_the_states_catalogs() -> None:
    from osiris.compiler.lsp import features

    text = doc(MYSQL_TABLE.format(table="order"))
    assert [d.code for d in features.diagnose(text, "file:///work/p.oml")] == []
    result = features.analyse(text, "file:///work/p.oml", None, lookup)
    assert [d.code for d in result.diagnostics] == ["OML150"]


def test_lsp_completes_table_names_from_the_cached_catalog() -> None:
    assert completions(doc(MYSQL_TABLE.format(table="ord‸"))) == ["orders", "customers"]
    pg = doc(
        """\
        - id: src
          component: postgres.extractor
          mode: read
          config:
            connection: "@postgres.main"
            schema: public
            table: ‸
        """
    )
    assert completions(pg) == ["orders", "regions"]
    no_catalog = doc(MYSQL_TABLE.format(table="‸").replace("@mysql.shop", "@postgres.other"))
    assert completions(no_catalog) == []


def test_lsp_completes_column_names_in_flow_and_block_lists() -> None:
    names = ["id", "customer_id", "amount", "status", "created_at"]
    flow = doc(MYSQL_TABLE.format(table="orders") + "    columns: [id, am‸]\n")
    assert completions(flow) == names
    block = doc(MYSQL_TABLE.format(table="orders") + "    columns:\n      - id\n      - sta‸\n")
    assert completions(block) == names


def test_lsp_completes_input_columns_inside_processor_sql() -> None:
    text = doc(CHAIN.replace("sum(dobled)", "sum(‸dobled)"))
    assert completions(text) == ["id", "doubled", "status"]
