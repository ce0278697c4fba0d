"""The driver contract: what the engine gives a step and what a step gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

DEFAULT_BATCH_SIZE = 50_000
Role = Literal["extractor", "processor", "writer"]


class DriverError(Exception):
    """A step failed for a reason the user can act on (exit 4). Message must be secret-free."""


class ConnectionFailure(DriverError):
    """The system could not be reached or refused us (refused, auth, unknown database, timeout).
    reason is one of CONNECTION_REASONS: what went wrong, for retries and exit codes."""

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason


CONNECTION_REASONS = (
    "authentication",  # wrong password / rejected credentials
    "unknown_user",  # the role/user does not exist
    "unknown_database",
    "refused",  # nothing listens there
    "unreachable",  # host name not resolved, no route, timed out
    "other",
)


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
        """Report the step's running total: rows processed so far, never an increment (drives
        the live view). Reporting a total again, or a lower one, changes nothing, so the engine
        (which counts the batches it hands over) and the driver may both report."""
        ...

    def log(self, message: str) -> None:
        """A line in the run log (redacted by the engine)."""
        ...


class Extractor(Protocol):
    def extract(self, ctx: StepContext) -> pa.RecordBatchReader:
        """Return a reader of bounded batches; the engine materialises it as table <step_id>, or
        hands it straight to the step's only consumer when that is a writer (docs/runtime.md).
        Raise from the reader (not only from extract()) when the source fails mid-stream."""
        ...


class Writer(Protocol):
    def write(self, ctx: StepContext, data: pa.RecordBatchReader) -> StepResult:
        """Load data transactionally: on any failure the target is left as it was. data may be
        an upstream extractor's own live reader: an error raised while reading it must roll the
        load back like any other failure."""
        ...


class Processor(Protocol):
    def transform(self, ctx: StepContext) -> StepResult:
        """Create table <step_id> in the run database from the step's inputs."""
        ...


class ViewProcessor(Protocol):
    """A processor whose output can be a view, computed when its reader reads it."""

    def define_view(self, ctx: StepContext) -> None:
        """Create view <step_id> in the run database over the step's inputs (nothing runs yet;
        a query that does not bind raises here)."""
        ...


class RunDatabaseSource(Protocol):
    """An extractor whose source DuckDB reads natively (files): copied into the run database
    with one statement, or read in place as a view."""

    def source_query(self, ctx: StepContext) -> str | None:
        """A DuckDB SELECT yielding exactly the rows extract() would; the engine runs it inside
        the run database as CREATE TABLE <step_id> AS .... None means: use extract()."""
        ...

    def define_view(self, ctx: StepContext) -> None:
        """Create view <step_id> in the run database over the source: the same rows as
        source_query, in a form that is cheap to bind again and again (each query reading the
        view binds it)."""
        ...


class SizedSource(Protocol):
    """An extractor whose files, and so its size, are known before it reads anything."""

    def source_files(self, ctx: StepContext) -> list[str]:
        """The paths (or globs) it reads, resolved, as configured."""
        ...

    def source_bytes(self, ctx: StepContext) -> int:
        """Total size of the files it reads (globs expanded)."""
        ...


class RunDatabaseSink(Protocol):
    """A writer that can read the upstream table in the run database itself."""

    def write_from_run_db(self, ctx: StepContext, table: str) -> StepResult | None:
        """Load run-database table `table` (via ctx.run_db()) with the same semantics as write().
        None means: not possible here, use write()."""
        ...


class DatabaseFile(Protocol):
    """A step that opens a database file, which one process may hold open only once."""

    def database_file(self, ctx: StepContext) -> Path:
        """The database file the step opens: absolute, symlinks resolved."""
        ...


@dataclass(frozen=True, slots=True)
class Abilities:
    """What a driver class can do, declared as its class attribute `abilities`; the planner
    reads it to choose how steps run (docs/runtime.md). Each flag promises a protocol above."""

    roles: tuple[Role, ...]  # Extractor, Processor, Writer
    native_source: bool = False  # RunDatabaseSource
    sized_source: bool = False  # SizedSource
    view_processor: bool = False  # ViewProcessor
    run_database_sink: bool = False  # RunDatabaseSink
    database_file: bool = False  # DatabaseFile


class Driver(Protocol):
    """Every driver class: its abilities, and the methods they promise."""

    abilities: ClassVar[Abilities]
