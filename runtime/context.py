"""The local StepContext: a step's view of its config, connection, inputs and the run database."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from osiris.runtime.cancel import CancelToken
from osiris.runtime.connections import LiveConnection
from osiris.runtime.drivers.base import DEFAULT_BATCH_SIZE, DriverError, unique_columns
from osiris.runtime.duckdb_settings import open_duckdb, plain_booleans
from osiris.runtime.sql import quote_ident

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from osiris.runtime.debris import Ledger
    from osiris.runtime.manifest import ManifestStep
    from osiris.runtime.records.state import CursorState


class CursorStates(Protocol):
    """Where steps' incremental states come from and go to: the run's PendingStates, or what a
    step task carries to a worker and back (runtime/step_tasks.py)."""

    def load(self, step: str) -> CursorState | None: ...

    def hold(self, step: str, state: CursorState) -> None: ...


class RunDatabase:
    """runs/<id>/run.duckdb: one shared database, one cursor per thread. Opened by the first
    step that uses it: a run that only streams between databases never loads DuckDB."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self._con = open_duckdb(self.path)
            cursor = self._con.cursor()
            self._cursors.append(cursor)
            return cursor

    def thread_cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self.new_cursor()
            self._local.cursor = cursor
        return cursor

    def table_exists(self, name: str) -> bool:
        cursor = self.new_cursor()
        try:
            found = cursor.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
                [name],
            ).fetchone()
        finally:
            cursor.close()
        return bool(found and found[0])

    def row_count(self, name: str, *, every_column: bool = False) -> int:
        """Rows of a table or view. every_column=True reads every column as well: a view over a
        file then fails on any value it cannot read, as copying the file would have."""
        counts = "count(*), count(COLUMNS(*))" if every_column else "count(*)"
        cursor = self.new_cursor()
        try:
            found = cursor.execute(f"SELECT {counts} FROM {quote_ident(name)}").fetchone()
        finally:
            cursor.close()
        return int(found[0]) if found else 0

    def create_table(self, name: str, query: str) -> None:
        """CREATE TABLE <name> AS <query>, on this thread's cursor."""
        self.thread_cursor().execute(f"CREATE TABLE {quote_ident(name)} AS {query}")

    def store(self, name: str, reader: pa.RecordBatchReader) -> None:
        """CREATE TABLE <name> with the rows of an Arrow reader, on this thread's cursor."""
        unique_columns(name, reader.schema.names)
        import pyarrow as pa

        cursor = self.thread_cursor()
        view = f"osiris_extract_{name.replace('-', '_')}"
        failures: list[Exception] = []

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except Exception as err:  # DuckDB reports it as "... failed: Unknown error"
                failures.append(err)
                raise

        cursor.register(view, pa.RecordBatchReader.from_batches(reader.schema, batches()))
        try:
            cursor.execute(f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM {quote_ident(view)}")
        except Exception:
            if failures:  # the reader's own error, not DuckDB's account of it
                raise failures[0] from None
            raise
        finally:
            cursor.unregister(view)

    def interrupt(self) -> None:
        """Interrupt whatever runs on the run database's cursors (the run was cancelled)."""
        with self._lock:
            cursors = list(self._cursors)
        for cursor in cursors:
            with contextlib.suppress(Exception):  # a closed cursor: nothing runs there
                cursor.interrupt()

    def close(self, *, discard: bool = False) -> None:
        """Close every cursor; discard=True drops the tables first so closing skips the
        checkpoint (the file is about to be deleted)."""
        with self._lock:
            if self._con is None:  # never opened
                return
            import duckdb

            for cursor in self._cursors:
                with contextlib.suppress(duckdb.Error):
                    cursor.close()
            self._cursors.clear()
            if discard:
                with contextlib.suppress(duckdb.Error):
                    names = self._con.execute(
                        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
                    ).fetchall()
                    for (name,) in names:
                        self._con.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
            self._con.close()
            self._con = None


def counting_reader(
    reader: pa.RecordBatchReader, on_batch: Callable[[pa.RecordBatch], None]
) -> pa.RecordBatchReader:
    """Pass batches through unchanged, calling on_batch for each (row counts, progress)."""
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            on_batch(batch)
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


class LocalStepContext:
    """Implements runtime.drivers.base.StepContext in process."""

    def __init__(
        self,
        *,
        step_id: str,
        config: Mapping[str, Any],
        connection: Mapping[str, Any] | LiveConnection | None,
        inputs: Mapping[str, str],
        upstream: tuple[str, ...],
        artifacts_dir: Path,
        project_dir: Path,
        database: RunDatabase,
        on_progress: Callable[[str, int], None] | None = None,
        on_log: Callable[[str, str], None] | None = None,
        debris: Ledger | None = None,
        connection_ref: str | None = None,
        driver: str | None = None,
        defer_publish: bool = False,
        cancel: CancelToken | None = None,
        states: CursorStates | None = None,
        scratch_dir: Path | None = None,
        run_tag: str | None = None,
    ) -> None:
        self.step_id = step_id
        self._states = states
        self.defer_publish = defer_publish
        self.config = config
        self._connection = connection
        named = dict(inputs)
        for upstream_id in upstream:
            if upstream_id not in named.values():
                named.setdefault(upstream_id, upstream_id)
        self.inputs: Mapping[str, str] = MappingProxyType(named)
        self.upstream = upstream
        self.artifacts_dir = artifacts_dir
        self.project_dir = project_dir
        self.batch_size = _batch_size(config)
        self._database = database
        self._debris = debris
        self._connection_ref = connection_ref
        self._driver = driver
        # without a run (tests driving a context directly): the temp dir, nothing tracked;
        # a step task on a worker: the task's private dir and the client's run tag
        self.scratch_dir = scratch_dir or (
            debris.scratch_dir if debris else Path(tempfile.gettempdir())
        )
        self.run_tag = run_tag or (debris.tag if debris else secrets.token_hex(4))
        self._on_progress = on_progress
        self._on_log = on_log
        self._cancel = cancel or CancelToken()
        self._rows = 0
        self._rows_lock = threading.Lock()
        self.rows_read = 0
        self.bytes_read = 0
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        # Set when the rows of a file read in place are counted from the step's main query
        # (runtime.view_chains); the driver leaves DuckDB's JSON profile here.
        self.profile_main_query = False
        self.main_query_profile: str | None = None

    @property
    def connection(self) -> Mapping[str, Any] | None:
        """The connection's fields, resolved now: a secret rotated since the run started (its
        secrets file or .env rewritten) is read again."""
        if isinstance(self._connection, LiveConnection):
            return self._connection.fields()
        return self._connection

    @property
    def connection_name(self) -> str | None:
        """'@family.alias' of the step's connection, for messages."""
        if isinstance(self._connection, LiveConnection):
            return self._connection.name
        return None

    def refresh_connection(self) -> None:
        """Read the connection's secrets again, even if their files look unchanged."""
        if isinstance(self._connection, LiveConnection):
            self._connection.refresh()

    def resolve_path(self, value: str | Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.project_dir / path

    def input_table(self, name: str | None = None) -> str:
        """The run-database table behind an input (the only one when name is None)."""
        if name is None:
            if len(self.upstream) == 1:
                return self.upstream[0]
            if not self.upstream:
                raise DriverError("the step has no input")
            raise DriverError(
                f"the step has {len(self.upstream)} inputs "
                f"({', '.join(self.upstream)}); name the one to read"
            )
        if name in self.inputs:
            return self.inputs[name]
        if name in self.upstream:
            return name
        raise DriverError(f"the step has no input named {name!r}")

    def input_reader(self, name: str | None = None) -> pa.RecordBatchReader:
        table = self.input_table(name)
        cursor = self._database.new_cursor()
        self._cursors.append(cursor)
        reader = cursor.sql(f"SELECT * FROM {quote_ident(table)}").to_arrow_reader(self.batch_size)
        return counting_reader(plain_booleans(reader), self._count_read)

    def _count_read(self, batch: pa.RecordBatch) -> None:
        self.raise_if_cancelled()
        self.rows_read += batch.num_rows
        self.bytes_read += batch.nbytes
        self.progress(self.rows_read)

    def run_db(self) -> duckdb.DuckDBPyConnection:
        return self._database.thread_cursor()

    def progress(self, rows: int) -> None:
        """rows is a running total (StepContext.progress); only a higher one is passed on, under
        the lock so that totals reported from two threads arrive in order."""
        with self._rows_lock:
            if rows <= self._rows:
                return
            self._rows = rows
            if self._on_progress is not None:
                self._on_progress(self.step_id, rows)

    def log(self, message: str) -> None:
        if self._on_log is not None:
            self._on_log(self.step_id, message)

    def track_table(self, schema: str | None, name: str) -> int:
        if self._debris is None:
            return 0
        return self._debris.track(
            "table",
            connection=self._connection_ref,
            driver=self._driver,
            schema=schema,
            name=name,
        )

    def track_path(self, path: Path) -> int:
        return self._debris.track("path", path=str(path)) if self._debris else 0

    def untrack(self, entry: int) -> None:
        if self._debris is not None:
            self._debris.untrack(entry)

    def on_cancel(self, callback: Callable[[], object]) -> AbstractContextManager[None]:
        return self._cancel.on_cancel(callback)

    def raise_if_cancelled(self) -> None:
        self._cancel.raise_if_cancelled()

    def load_state(self) -> CursorState | None:
        """The step's incremental state as the last successful run left it (None: no run yet,
        or a context outside a run)."""
        return self._states.load(self.step_id) if self._states is not None else None

    def hold_state(self, state: CursorState) -> None:
        """The step's new incremental state, written only if the whole run succeeds."""
        if self._states is not None:
            self._states.hold(self.step_id, state)

    def close(self) -> None:
        for cursor in self._cursors:
            with contextlib.suppress(Exception):  # duckdb.Error, without importing DuckDB
                cursor.close()
        self._cursors.clear()


@dataclass(frozen=True, slots=True)
class StepContexts:
    """Makes the LocalStepContext of each step of one run."""

    database: RunDatabase
    # connection reference -> its fields, or a LiveConnection resolving them when a step reads them
    connections: Mapping[str, Mapping[str, Any] | LiveConnection]
    project_dir: Path
    artifacts: Callable[[str], Path]  # step id -> its artifacts directory (not created here)
    on_progress: Callable[[str, int], None] | None = None
    on_log: Callable[[str, str], None] | None = None  # (step id, message)
    debris: Ledger | None = None
    defer_publish: bool = False  # --atomic: writers stage, the run publishes at the end
    cancel: CancelToken = field(default_factory=CancelToken)
    states: CursorStates | None = None  # incremental cursors, committed after a successful run
    scratch_dir: Path | None = None  # None: the run's (debris), else the temp dir
    run_tag: str | None = None  # None: the run's (debris), else a random one

    def for_step(self, step: ManifestStep) -> LocalStepContext:
        return LocalStepContext(
            step_id=step.id,
            config=step.config,
            connection=self.connections.get(step.connection) if step.connection else None,
            inputs=step.inputs,
            upstream=step.upstream,
            artifacts_dir=self.artifacts(step.id),
            project_dir=self.project_dir,
            database=self.database,
            on_progress=self.on_progress,
            on_log=self.on_log,
            debris=self.debris,
            connection_ref=step.connection,
            driver=step.driver,
            defer_publish=self.defer_publish,
            cancel=self.cancel,
            states=self.states,
            scratch_dir=self.scratch_dir,
            run_tag=self.run_tag,
        )


def _batch_size(config: Mapping[str, Any]) -> int:
    value = config.get("batch_size")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_BATCH_SIZE
