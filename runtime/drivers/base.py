"""The driver contract: what the engine gives a step and what a step gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

DEFAULT_BATCH_SIZE = 50_000


class DriverError(Exception):
    """A step failed for a reason the user can act on (exit 4). Message must be secret-free."""


class ConnectionFailure(DriverError):
    """The system could not be reached or refused us (refused, auth, unknown database, timeout)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    rows_in: int = 0
    rows_out: int = 0
    bytes: int = 0


class StepContext(Protocol):
    """What the engine hands a driver for one step."""

    step_id: str
    config: Mapping[str, Any]  # cfg/<step>.json as compiled (connection stays "@family.alias")
    connection: Mapping[str, Any] | None  # resolved connection fields, secrets included
    inputs: Mapping[str, str]  # input name -> upstream step id (its table in the run database)
    artifacts_dir: Path  # runs/<run_id>/artifacts/<step>/ — DDL and other per-step files
    batch_size: int
    project_dir: Path  # relative paths in configs and connections resolve against this

    def resolve_path(self, value: str | Path) -> Path:
        """An absolute path for a config/connection path (relative ones are under project_dir)."""
        ...

    def input_reader(self, name: str | None = None) -> pa.RecordBatchReader:
        """Stream an upstream table as bounded Arrow batches (the only input when name is None)."""
        ...

    def run_db(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the run's own DuckDB database (one per thread)."""
        ...

    def progress(self, rows: int) -> None:
        """Report rows processed so far (drives the live view and metrics)."""
        ...

    def log(self, message: str) -> None:
        """A line in the run log (redacted by the engine)."""
        ...


@runtime_checkable
class Extractor(Protocol):
    def extract(self, ctx: StepContext) -> pa.RecordBatchReader:
        """Return a reader of bounded batches; the engine materialises it as table <step_id>, or
        hands it straight to the step's only consumer when that is a writer (see runtime.engine).
        Raise from the reader (not only from extract()) when the source fails mid-stream."""
        ...


@runtime_checkable
class Writer(Protocol):
    def write(self, ctx: StepContext, data: pa.RecordBatchReader) -> StepResult:
        """Load data transactionally: on any failure the target is left as it was. data may be
        an upstream extractor's own live reader: an error raised while reading it must roll the
        load back like any other failure."""
        ...


@runtime_checkable
class Processor(Protocol):
    def transform(self, ctx: StepContext) -> StepResult:
        """Create table <step_id> in the run database from the step's inputs."""
        ...


@runtime_checkable
class ViewProcessor(Protocol):
    """Optional: a processor whose output can be a view, computed when its reader reads it."""

    def define_view(self, ctx: StepContext) -> None:
        """Create view <step_id> in the run database over the step's inputs (nothing runs yet;
        a query that does not bind raises here)."""
        ...


@runtime_checkable
class RunDatabaseSource(Protocol):
    """Optional fast path for extractors whose source DuckDB can read natively (files)."""

    def source_query(self, ctx: StepContext) -> str | None:
        """A DuckDB SELECT yielding exactly the rows extract() would; the engine runs it inside
        the run database as CREATE TABLE <step_id> AS .... None means: use extract()."""
        ...

    def view_query(self, ctx: StepContext, con: duckdb.DuckDBPyConnection) -> str:
        """source_query for CREATE VIEW <step_id>: the same rows, in a form that is cheap to
        bind again and again (each query reading the view binds it)."""
        ...


@runtime_checkable
class RunDatabaseSink(Protocol):
    """Optional fast path for writers that can read the upstream table in the run database."""

    def write_from_run_db(self, ctx: StepContext, table: str) -> StepResult | None:
        """Load run-database table `table` (via ctx.run_db()) with the same semantics as write().
        None means: not possible here, use write()."""
        ...
