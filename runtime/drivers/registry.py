"""Driver registry: maps the manifest's driver id to our own driver class, imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

# driver id (spec x-runtime.driver) -> "module:Class" inside runtime.drivers. Only ids listed
# here can run; a manifest cannot make us import anything else.
DRIVERS: dict[str, str] = {
    "filesystem.csv_extractor": "files:CsvExtractor",
    "filesystem.csv_writer": "files:CsvWriter",
    "filesystem.parquet_extractor": "files:ParquetExtractor",
    "filesystem.parquet_writer": "files:ParquetWriter",
    "duckdb.extractor": "duckdb_driver:DuckDBExtractor",
    "duckdb.writer": "duckdb_driver:DuckDBWriter",
    "duckdb.processor": "duckdb_driver:DuckDBProcessor",
    "mysql.extractor": "mysql:MySQLExtractor",
    "mysql.writer": "mysql:MySQLWriter",
    "postgres.extractor": "postgres:PostgresExtractor",
    "postgres.writer": "postgres:PostgresWriter",
    "supabase.extractor": "postgres:PostgresExtractor",
    "supabase.writer": "postgres:PostgresWriter",
}


class UnknownDriver(LookupError):
    pass


def load_driver(driver_id: str) -> Any:
    """Instantiate the driver for an id; UnknownDriver when the id is not ours."""
    try:
        target = DRIVERS[driver_id]
    except KeyError:
        raise UnknownDriver(driver_id) from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(f"osiris.runtime.drivers.{module_name}")
    return getattr(module, class_name)()
