"""The driver ids a manifest may name: a spec's x-runtime.driver must be one, the runtime runs only these."""

from __future__ import annotations

DRIVER_IDS: frozenset[str] = frozenset(
    {
        "filesystem.csv_extractor",
        "filesystem.csv_writer",
        "filesystem.parquet_extractor",
        "filesystem.parquet_writer",
        "duckdb.extractor",
        "duckdb.writer",
        "duckdb.processor",
        "mysql.extractor",
        "mysql.writer",
        "postgres.extractor",
        "postgres.writer",
        "supabase.extractor",
        "supabase.writer",
        "rest.extractor",
        "graphql.extractor",
    }
)
