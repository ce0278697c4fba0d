"""Driver registry: maps the manifest's driver id to our own driver class, imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from osiris.runtime.drivers.base import Abilities, Driver

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
    "rest.extractor": "rest:RestExtractor",
    "graphql.extractor": "graphql:GraphQLExtractor",
}


class UnknownDriver(LookupError):
    pass


def driver_class(driver_id: str) -> type[Driver]:
    """The driver class for an id, imported; UnknownDriver when the id is not ours."""
    try:
        target = DRIVERS[driver_id]
    except KeyError:
        raise UnknownDriver(driver_id) from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(f"osiris.runtime.drivers.{module_name}")
    found: type[Driver] = getattr(module, class_name)
    return found


def load_driver(driver_id: str) -> Any:
    """Instantiate the driver for an id; UnknownDriver when the id is not ours."""
    return driver_class(driver_id)()


class StepDrivers:
    """One driver instance per step of a run, made once. A driver that cannot be loaded (say, an
    optional extra is not installed) has no abilities, and its step fails with the load error."""

    def __init__(self, drivers: Mapping[str, str]) -> None:
        """drivers: step id -> driver id."""
        self._loaded: dict[str, Any] = {}
        self._failed: dict[str, Exception] = {}
        for step_id, driver_id in drivers.items():
            try:
                self._loaded[step_id] = load_driver(driver_id)
            except Exception as err:  # reported by the step itself, when it runs
                self._failed[step_id] = err

    def __getitem__(self, step_id: str) -> Any:
        if step_id in self._failed:
            raise self._failed[step_id]
        return self._loaded[step_id]

    def abilities(self, step_id: str) -> Abilities:
        driver = self._loaded.get(step_id)
        return driver.abilities if driver is not None else Abilities(roles=())
