"""Small OML snippets, one family of mistakes each, shared by the checker and CLI tests."""

from __future__ import annotations

import textwrap

HEADER = 'oml_version: "0.1.0"\nname: t\n'

CSV_TO_CSV = HEADER + textwrap.dedent(
    """\
    steps:
      - id: src
        component: filesystem.csv_extractor
        mode: read
        config: {path: data/in.csv}
      - id: out
        component: filesystem.csv_writer
        mode: write
        needs: [src]
        config: {path: out.csv}
    """
)


def pipeline(steps: str, head: str = HEADER) -> str:
    """A document with the given steps block (indented as under `steps:`)."""
    return head + "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")


def extract(extra: str = "", config: str = "{path: data/in.csv}", step_id: str = "src") -> str:
    return textwrap.dedent(
        f"""\
        - id: {step_id}
          component: filesystem.csv_extractor
          mode: read
          config: {config}
        """
    ) + textwrap.indent(textwrap.dedent(extra), "  ")


def mysql_writer(config: str, needs: str = "[src]") -> str:
    return textwrap.dedent(
        f"""\
        - id: load
          component: mysql.writer
          mode: write
          needs: {needs}
          config: {config}
        """
    )


CONNECTIONS = textwrap.dedent(
    """\
    connections:
      mysql:
        shop: {host: db, database: shop, user: app, password: "${MYSQL_PASSWORD}", default: true}
      postgres:
        main: {host: pg, database: wh, user: app, password: "${PG_PASSWORD}"}
    """
)


MYSQL_SRC = """\
- id: src
  component: mysql.extractor
  mode: read
  config: {connection: "@mysql.shop", table: orders}
"""


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: each level an anchored list of `width` aliases to the last."""
    lines = ['x-l0: &l0 ["lol"]']
    for level in range(1, levels + 1):
        lines.append(f"x-l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return HEADER + "\n".join(lines) + "\n" + CSV_TO_CSV.removeprefix(HEADER)


# A processor with two inputs that reads `input_df`.
TWO_INPUTS_INPUT_DF = pipeline(
    extract()
    + extract(step_id="more")
    + textwrap.dedent(
        """\
        - id: p
          component: duckdb.processor
          mode: transform
          needs: [src, more]
          config:
            query: |
              SELECT *
              FROM input_df JOIN more USING (id)
        - {id: w, component: filesystem.csv_writer, mode: write, needs: [p], config: {path: o.csv}}
        """
    )
)

# Anchors, aliases and merge keys the way compose and CI files use them.
WITH_MERGE_KEYS = HEADER + textwrap.dedent(
    """\
    x-csv: &csv {delimiter: ";", header: true}
    x-reader: &reader
      component: filesystem.csv_extractor
      mode: read
    steps:
      - id: src
        <<: *reader
        config:
          <<: *csv
          path: data/in.csv
      - id: other
        <<: *reader
        config: {<<: [{delimiter: "|"}, *csv], path: data/other.csv}
      - id: out
        component: filesystem.csv_writer
        mode: write
        needs: [src]
        config: {path: out.csv}
    """
)

# (case id, OML text, codes that must be reported). Together they exercise every check code.
CHECK_CASES: list[tuple[str, str, set[str]]] = [
    (
        "upstream-posthog",
        pipeline(extract().replace("filesystem.csv_extractor", "posthog.extractor")),
        {"OML180"},
    ),
    ("yaml-syntax", "name: [1,\n", {"OML001"}),
    ("recursive-alias", HEADER + "steps: &s [*s]\n", {"OML001"}),
    ("alias-bomb", alias_bomb(), {"OML120"}),
    ("file-too-large", CSV_TO_CSV + "x-pad: " + "a" * 4 * 1024 * 1024 + "\n", {"OML121"}),
    ("nul-in-name", CSV_TO_CSV.replace("name: t", 'name: "t\\0"'), {"OML122"}),
    ("escape-in-param-name", 'params: {"since\\e[2J": {default: x}}\n' + CSV_TO_CSV, {"OML122"}),
    ("newline-in-step-id", pipeline(extract(step_id='"src\\n"')), {"OML012"}),
    ("merge-not-a-mapping", pipeline(extract(config="{<<: [x], path: a}")), {"OML008"}),
    ("duplicate-key", HEADER + "name: again\nsteps: []\n", {"OML002", "OML009"}),
    ("not-a-mapping", "- a\n- b\n", {"OML003"}),
    ("empty", "", {"OML003"}),
    ("unknown-top-key", CSV_TO_CSV + "stepz: []\n", {"OML004"}),
    ("legacy-top", "version: 1\nname: t\ntasks: []\n", {"OML005"}),
    ("missing-name", 'oml_version: "0.1.0"\nsteps: []\n', {"OML006", "OML009"}),
    ("bad-version", CSV_TO_CSV.replace('"0.1.0"', '"0.2.0"'), {"OML007"}),
    ("version-number", CSV_TO_CSV.replace('"0.1.0"', "0.1"), {"OML007"}),
    ("steps-mapping", HEADER + "steps: {a: 1}\n", {"OML008"}),
    ("empty-steps", HEADER + "steps: []\n", {"OML009"}),
    ("unknown-step-key", pipeline(extract("confg: {}\n")), {"OML010"}),
    (
        "legacy-step-key",
        pipeline(extract() + mysql_writer("{table: t}").replace("needs", "depends_on")),
        {"OML005"},
    ),
    (
        "missing-mode",
        pipeline("- id: src\n  component: filesystem.csv_extractor\n  config: {path: x}\n"),
        {"OML011"},
    ),
    ("bad-step-id", pipeline(extract(step_id='"1-bad"')), {"OML012"}),
    ("step-id-too-long", pipeline(extract(step_id="s" + "x" * 128)), {"OML012"}),
    ("duplicate-step-id", pipeline(extract() + extract()), {"OML013"}),
    ("unknown-component", pipeline(extract().replace("csv_extractor", "csv_extractr")), {"OML014"}),
    ("wrong-mode", pipeline(extract().replace("mode: read", "mode: write")), {"OML015"}),
    ("config-type", pipeline(extract(config='{path: x, batch_size: "lots"}')), {"OML016"}),
    ("config-unknown-field", pipeline(extract(config="{path: x, delimter: ';'}")), {"OML017"}),
    ("config-required", pipeline(extract(config="{}")), {"OML018"}),
    (
        "config-enum",
        pipeline(
            extract() + mysql_writer('{connection: "@mysql.shop", table: t, write_mode: upsrt}')
        ),
        {"OML019"},
    ),
    ("config-range", pipeline(extract(config="{path: x, batch_size: 0}")), {"OML020"}),
    (
        "constraint",
        pipeline(
            extract() + mysql_writer('{connection: "@mysql.shop", table: t, write_mode: upsert}')
        ),
        {"OML021"},
    ),
    (
        "forbidden-override",
        pipeline(
            extract() + mysql_writer('{connection: "@mysql.shop", table: t, password: hunter2}')
        ),
        {"OML022", "OML024"},
    ),
    (
        "override-host",  # a step may not send the connection's credentials elsewhere
        pipeline(extract() + mysql_writer('{connection: "@mysql.shop", table: t, host: other}')),
        {"OML022"},
    ),
    (
        "override-database",
        pipeline(extract() + mysql_writer('{connection: "@mysql.shop", table: t, database: d}')),
        {"OML022"},
    ),
    (
        "inline-secret",
        pipeline(
            extract()
            + mysql_writer("{host: db, database: d, user: u, password: hunter2, table: t}")
        ),
        {"OML024"},
    ),
    (
        "connection-no-at",
        pipeline(extract() + mysql_writer("{connection: mysql.shop, table: t}")),
        {"OML025"},
    ),
    (
        "connection-syntax",
        pipeline(extract() + mysql_writer('{connection: "@MySQL.shop", table: t}')),
        {"OML025"},
    ),
    (
        "connection-family",
        pipeline(extract() + mysql_writer('{connection: "@postgres.main", table: t}')),
        {"OML026"},
    ),
    ("expression-syntax", pipeline(extract(config='{path: "data/${params."}')), {"OML028"}),
    ("unknown-param", pipeline(extract(config='{path: "data/${params.day}.csv"}')), {"OML029"}),
    (
        "param-type",
        "params:\n  n: {type: integer, default: abc}\n"
        + pipeline(extract(config='{path: x, batch_size: "${params.n}"}')),
        {"OML030"},
    ),
    ("unused-param", "params:\n  n: {type: integer, default: 5}\n" + CSV_TO_CSV, {"OML031"}),
    ("unknown-need", CSV_TO_CSV.replace("needs: [src]", "needs: [scr]"), {"OML032"}),
    (
        "cycle",
        pipeline(
            extract()
            + "- {id: a, component: duckdb.processor, mode: transform, needs: [src, b], config: {query: 'SELECT * FROM src'}}\n- {id: b, component: duckdb.processor, mode: transform, needs: [a], config: {query: 'SELECT * FROM a'}}\n"
        ),
        {"OML033"},
    ),
    (
        "self-need",
        pipeline(
            extract()
            + "- {id: a, component: duckdb.processor, mode: transform, needs: [a], config: {query: 'SELECT 1'}}\n"
        ),
        {"OML033"},
    ),
    (
        "extractor-input",
        pipeline(extract() + extract("needs: [src]\n", step_id="src2")),
        {"OML034"},
    ),
    (
        "writer-two-inputs",
        pipeline(
            extract()
            + extract(step_id="src2")
            + mysql_writer('{connection: "@mysql.shop", table: t}', needs="[src, src2]")
        ),
        {"OML035"},
    ),
    (
        "processor-no-input",
        pipeline(
            "- {id: p, component: duckdb.processor, mode: transform, config: {query: 'SELECT 1'}}\n"
        ),
        {"OML036"},
    ),
    (
        "processor-unknown-table",
        pipeline(
            extract()
            + "- {id: p, component: duckdb.processor, mode: transform, needs: [src], config: {query: 'SELECT * FROM scr'}}\n"
        ),
        {"OML037"},
    ),
    (
        "sql-string-param-outside-quotes",
        "params:\n  since: {type: string}\n"
        + pipeline(
            "- {id: src, component: mysql.extractor, mode: read, config: "
            '{connection: "@mysql.shop", query: "SELECT * FROM t WHERE ts >= ${params.since}"}}\n'
        ),
        {"OML110"},
    ),
    (
        "sql-param-in-dollar-quotes",
        "params:\n  v: {type: string}\n"
        + pipeline(
            "- {id: src, component: postgres.extractor, mode: read, config: "
            '{connection: "@postgres.main", query: "SELECT $q$ ${params.v}$q$"}}\n'
        ),
        {"OML111"},
    ),
    (
        "processor-bad-sql",
        pipeline(
            extract()
            + "- {id: p, component: duckdb.processor, mode: transform, needs: [src], config: {query: 'SELEC 1'}}\n"
        ),
        {"OML038"},
    ),
    (
        "bad-input-ref",
        pipeline(
            extract()
            + mysql_writer('{connection: "@mysql.shop", table: t}').replace(
                "needs: [src]", "inputs: {df: src}"
            )
        ),
        {"OML043"},
    ),
    ("duplicate-need", CSV_TO_CSV.replace("needs: [src]", "needs: [src, src]"), {"OML044"}),
    (
        "upstream-postgrest-filter",
        pipeline(
            "- id: src\n  component: supabase.extractor\n  mode: read\n"
            '  config: {connection: "@supabase", table: t, filter: {status: eq.active}}\n'
        ),
        {"OML133"},
    ),
    ("input-df-with-two-inputs", TWO_INPUTS_INPUT_DF, {"OML037"}),
    (
        "csv-dtype-unknown",
        pipeline(extract(config="{path: x.csv, dtype: {id: int46}}")),
        {"OML140"},
    ),
    (
        "partition-on-a-writer",
        pipeline(extract() + mysql_writer("{table: t}") + "  partition: {column: id, count: 2}\n"),
        {"OML170"},
    ),
    (
        "partition-count-zero",
        pipeline(MYSQL_SRC + "  partition: {column: id, count: 0}\n"),
        {"OML171"},
    ),
    (
        "partition-one-bound",
        pipeline(MYSQL_SRC + "  partition: {column: id, count: 4, lower: 1}\n"),
        {"OML171"},
    ),
    (
        "partition-bounds-reversed",
        pipeline(
            MYSQL_SRC + "  partition: {column: d, count: 4, lower: 2024-02-01, upper: 2024-01-01}\n"
        ),
        {"OML171"},
    ),
    (
        "partition-mixed-forms",
        pipeline(MYSQL_SRC + "  partition: {column: id, count: 2, predicates: [a = 1]}\n"),
        {"OML171"},
    ),
    (
        "partition-predicate-does-not-parse",
        pipeline(MYSQL_SRC + """  partition: {predicates: ["region = 'EU'", "region = ("]}\n"""),
        {"OML172"},
    ),
    (
        "partition-read-by-a-file-writer",
        pipeline(
            MYSQL_SRC
            + "  partition: {column: id, count: 2}\n"
            + "- {id: out, component: filesystem.csv_writer, mode: write, needs: [src], config: {path: o.csv}}\n"
        ),
        {"OML175"},
    ),
    (
        "partition-with-limit",
        pipeline(
            MYSQL_SRC.replace("table: orders}", "table: orders, limit: 10}")
            + "  partition: {column: id, count: 2}\n"
        ),
        {"OML173"},
    ),
]

VALID_CASES: list[tuple[str, str]] = [
    ("csv-to-csv", CSV_TO_CSV),
    (
        "upstream-graphql-inline-endpoint",
        pipeline(
            textwrap.dedent(
                """\
                - id: products
                  component: graphql.extractor
                  mode: read
                  config:
                    endpoint: https://shop.example.com/admin/api/2023-10/graphql.json
                    query: "query P($first: Int!, $after: String) { products(first: $first, after: $after) { edges { node { id title } } pageInfo { hasNextPage endCursor } } }"
                    variables: {first: 50}
                    headers: {User-Agent: Osiris/1.0}
                    pagination_enabled: true
                    pagination_path: data.products.pageInfo
                    data_path: "data.products.edges[*].node"
                    max_pages: 10
                    timeout: 60
                    validate_ssl: true
                - {id: w, component: filesystem.csv_writer, mode: write, needs: [products], config: {path: p.csv}}
                """
            )
        ),
    ),
    ("merge-keys", WITH_MERGE_KEYS),
    ("anchors-below-the-alias-limit", alias_bomb(levels=2, width=9)),
    (
        "processor-aliases",
        pipeline(
            extract()
            + "- {id: p, component: duckdb.processor, mode: transform, needs: [src], config: {query: 'SELECT * FROM input JOIN df_src USING (id) JOIN input_df USING (id)'}}\n"
            + "- {id: w, component: filesystem.parquet_writer, mode: write, inputs: {df: '${p.df}'}, config: {path: o.parquet}}\n"
        ),
    ),
    (
        "param-typed-whole-scalar",
        "params:\n  n: {type: integer, default: 500}\n"
        + pipeline(extract(config='{path: x, batch_size: "${params.n}"}')),
    ),
    (
        "escaped-dollar",
        pipeline(extract(config='{path: "data/$${literal}.csv"}')),
    ),
    (
        "csv-upstream-types",
        pipeline(
            extract(
                config="{path: x.csv, parse_dates: [day], skip_blank_lines: true, "
                'dtype: {id: Int64, ts: "datetime64[ns]", name: object}, compression: xz}'
            )
        ),
    ),
]

WITH_UNUSED_PARAM = "params:\n  n: {type: integer, default: 5}\n" + CSV_TO_CSV


# An API pipeline (rest.extractor with nested paginator/incremental) and its http aliases, for
# the editor's tests (completion inside object fields, @http aliases).
API_SOURCES = """oml_version: "0.1.0"
name: api-sources
steps:
  - id: orders
    component: rest.extractor
    mode: read
    config:
      connection: "@http.shop"
      path: /api/orders
      paginator: {type: cursor}
      incremental:
        cursor_path: updated_at
        start_param: updated_since
"""
HTTP_ALIASES = """connections:
  http:
    shop: {base_url: "https://shop.example.com/api"}
    backup: {base_url: "https://backup.example.com", auth: {type: bearer, token: "${API_TOKEN}"}}
"""
