"""The driver contract: what the engine gives a step and what a step gives back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from osiris.runtime.drivers.replay import ReplayableStream

DEFAULT_BATCH_SIZE = 50_000
Role = Literal["extractor", "processor", "writer"]


class DriverError(Exception):
    """A step failed for a reason the user can act on (exit 4). Message must be secret-free:
    one line a user understands on its own; detail keeps the library's or server's own text
    (run.log, the step_failed event, status.json)."""

    def __init__(self, message: str = "", *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class ConnectionFailure(DriverError):
    """The system could not be reached or refused us (refused, auth, unknown database, timeout).
    reason is one of CONNECTION_REASONS: what went wrong, for retries and exit codes."""

    def __init__(self, message: str, reason: str = "other", *, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.reason = reason


CONNECTION_REASONS = (
    "authentication",  # wrong password / rejected credentials
    "unknown_user",  # the role/user does not exist
    "unknown_database",
    "refused",  # nothing listens there
    "unreachable",  # host name not resolved, no route, timed out
    "other",
)
# Reasons that are the configuration's fault, not the run's: the step exits 5, not 4.
CONFIGURATION_REASONS = frozenset(
    {"authentication", "unknown_user", "unknown_database", "refused", "unreachable"}
)


class Publication(Protocol):
    """A writer's load, done but not yet visible: published or discarded by the engine at the
    end of an --atomic run (docs/runtime.md, Writers)."""

    target: str  # what publishing changes, for messages: "file /data/out.csv", "table public.t"

    def publish(self) -> None:
        """Make the load visible (rename into place, swap, commit); raise DriverError if it
        cannot, after discarding it. Called at most once."""
        ...

    def discard(self) -> None:
        """Drop the staged load, leaving the target as it was. Never raises; safe to repeat."""
        ...


@dataclass(frozen=True, slots=True)
class StepResult:
    rows_in: int = 0
    rows_out: int = 0
    bytes: int = 0
    pending: Publication | None = None  # a writer's deferred publication (ctx.defer_publish)


def settle(ctx: StepContext, publication: Publication, result: StepResult) -> StepResult:
    """A writer's last move: publish now, or - when the run defers publishing (--atomic) -
    hand the publication to the engine with the result."""
    # Contexts made outside the engine (tests, tools) may lack the flag: they publish at once.
    if getattr(ctx, "defer_publish", False):
        return replace(result, pending=publication)
    try:
        ctx.raise_if_cancelled()  # the last moment at which a cancel leaves the target as it was
    except BaseException:
        publication.discard()
        raise
    publication.publish()
    return result


def unique_columns(step_id: str, names: list[str], *, ignore_case: bool = True) -> None:
    """Refuse clashing column names (DuckDB would silently rename the second `a` to `a_1`).
    ignore_case: the names clash when they differ only in case (DuckDB, MySQL, files)."""
    seen: dict[str, str] = {}
    clashes: list[str] = []
    for name in names:
        key = name.casefold() if ignore_case else name
        if key in seen:
            clashes.append(name if seen[key] == name else f"{seen[key]}/{name}")
        else:
            seen[key] = name
    if clashes:
        raise DriverError(
            f"step {step_id}: duplicate column name(s) {', '.join(dict.fromkeys(clashes))}; "
            "give every column its own name (e.g. SELECT ... AS another_name)"
        )


class StepContext(Protocol):
    """What the engine hands a driver for one step."""

    step_id: str
    config: Mapping[str, Any]  # cfg/<step>.json as compiled (connection stays "@family.alias")
    inputs: Mapping[str, str]  # input name -> upstream step id (its table in the run database)
    artifacts_dir: Path  # runs/<run_id>/artifacts/<step>/ — DDL and other per-step files
    batch_size: int
    project_dir: Path  # relative paths in configs and connections resolve against this
    scratch_dir: Path  # the run's private temp directory (removed at the end, swept if it dies)
    run_tag: str  # the run id as put in the names of staging tables and temp files

    def track_table(self, schema: str | None, name: str) -> int:
        """List a staging table in the run's ledger BEFORE creating it (runtime/debris.py), so
        it is dropped if the run dies first; returns the entry for untrack()."""
        ...

    def track_path(self, path: Path) -> int:
        """The same for a temp file or directory outside scratch_dir (beside a file target)."""
        ...

    def untrack(self, entry: int) -> None:
        """The tracked thing was removed or published (renamed into place)."""
        ...

    @property
    def connection(self) -> Mapping[str, Any] | None:
        """Resolved connection fields, secrets included, as they are now: read it when
        connecting (a secret may rotate during a run)."""
        ...

    @property
    def connection_name(self) -> str | None:
        """'@family.alias' of the step's connection, for messages."""
        ...

    def refresh_connection(self) -> None:
        """Read the connection's secrets again (after the server rejected them)."""
        ...

    defer_publish: bool  # --atomic: a writer stages its load and returns StepResult.pending

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

    def on_cancel(self, callback: Callable[[], object]) -> AbstractContextManager[None]:
        """While inside the block, callback stops the step's in-flight work if the run is
        cancelled (cancels the server statement, interrupts DuckDB). It runs once, on another
        thread (at once, on this one, if the run already was cancelled); the step then unwinds
        through its ordinary failure path: roll back, remove what it staged."""
        ...

    def raise_if_cancelled(self) -> None:
        """Raise if the run was cancelled: between batches and right before committing."""
        ...


class TableDropper(Protocol):
    """A writer whose staging tables outlive a dead run (MySQL DDL is not transactional), or
    whose partitions stage in tables (PartitionedSink with PartTable parts)."""

    def drop_table(self, connection: Mapping[str, Any], schema: str | None, name: str) -> None:
        """Drop a leftover staging table listed in a dead run's ledger (if it still exists)."""
        ...


class Extractor(Protocol):
    def extract(self, ctx: StepContext) -> pa.RecordBatchReader | ReplayableStream:
        """Return a reader of bounded batches; the engine materialises it as table <step_id>, or
        hands it straight to the step's only consumer when that is a writer (docs/runtime.md).
        Raise from the reader (not only from extract()) when the source fails mid-stream. A
        source whose schema is only known as it reads returns a ReplayableStream
        (runtime/drivers/replay.py): every consumer reads it through consume_with_replay."""
        ...


class Writer(Protocol):
    def write(self, ctx: StepContext, data: pa.RecordBatchReader) -> StepResult:
        """Load data transactionally: on any failure the target is left as it was. data may be
        an upstream extractor's own live reader: an error raised while reading it must roll the
        load back like any other failure. Check ctx.raise_if_cancelled() right before committing
        (or publishing), and register ctx.on_cancel() around long statements."""
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


class PartitionedSource(Protocol):
    """An extractor that reads one partition at a time (a step's `partition:`)."""

    def partitions(self, ctx: StepContext, spec: Mapping[str, Any]) -> list[str | None]:
        """One predicate per partition in the source's dialect (None: every row), covering
        every row exactly once; the engine passes one as config[PARTITION_WHERE] to extract()."""
        ...


# A partition's staging table: (schema or None, name).
PartTable = tuple[str | None, str]


@dataclass(frozen=True, slots=True)
class PartFile:
    """A partition's staging file: `name` inside `directory`, a hidden directory beside a file
    target that holds every part of the load (absolute, so a worker elsewhere writes the same
    place). The directory, not each file, is what the run's ledger lists."""

    directory: str
    name: str

    @property
    def path(self) -> Path:
        return Path(self.directory) / self.name


# Where one partition stages: a table in the target's database, or a file beside the target.
Part = PartTable | PartFile


def track_parts(ctx: StepContext, parts: list[Part]) -> list[int]:
    """List the parts in the run's ledger before any exists: each staging table, and each
    directory holding staging files (once); the entries, for untrack()."""
    entries: list[int] = []
    directories: set[str] = set()
    for part in parts:
        if isinstance(part, PartFile):
            if part.directory not in directories:
                directories.add(part.directory)
                entries.append(ctx.track_path(Path(part.directory)))
        else:
            entries.append(ctx.track_table(*part))
    return entries


class PartitionedSink(Protocol):
    """A writer that loads partitions into staging places of their own (tables, or files in a
    hidden directory), then publishes them all with one step on the target."""

    def part_tables(self, ctx: StepContext, count: int) -> list[Part]:
        """Fresh staging places (the run tag in each name), one per partition; called in the
        client, which lists them in the run's ledger (track_parts) before any job starts."""
        ...

    def stage_part(self, ctx: StepContext, data: pa.RecordBatchReader, part: Part) -> int:
        """Create part (a table shaped like the target when it exists, or a file) and load data
        into it, committed; on failure remove it (what cannot be removed stays in the ledger).
        Runs wherever the partition runs: a thread of the run, or a Dask worker."""
        ...

    def finish_parts(self, ctx: StepContext, schema: pa.Schema, parts: list[Part]) -> StepResult:
        """One step on the target, as write() would with the parts' rows: replace (swap),
        append (INSERT ... SELECT) or upsert (merge) from every table, or the files renamed or
        concatenated into place; the parts are removed once published. On failure the target
        is as it was (the parts stay for the ledger's sweep)."""
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
    deferred_publish: bool = False  # Writer.write honours ctx.defer_publish (settle())
    partitioned_source: bool = False  # PartitionedSource
    partitioned_sink: bool = False  # PartitionedSink


class Driver(Protocol):
    """Every driver class: its abilities, and the methods they promise."""

    abilities: ClassVar[Abilities]
