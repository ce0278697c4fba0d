"""A minimal real StepContext for driving the SQL drivers directly in tests (no engine)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from osiris.runtime.cancel import CancelToken


@dataclass
class DriverCtx:
    """StepContext protocol over a real on-disk DuckDB database (one per test)."""

    step_id: str
    config: Mapping[str, Any]
    connection: Mapping[str, Any] | None
    artifacts_dir: Path
    db_path: Path
    batch_size: int = 50_000
    defer_publish: bool = False
    inputs: Mapping[str, str] = field(default_factory=dict)
    progressed: list[int] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    connection_name: str | None = None
    scratch_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    run_tag: str = "20260101T000000Z_test00"
    ever_tracked: list[str] = field(default_factory=list)
    tracked: dict[int, str] = field(default_factory=dict)  # entry -> what, until untracked
    cancel: CancelToken = field(default_factory=CancelToken)

    def track_table(self, schema: str | None, name: str) -> int:
        return self.track_path(Path(f"{schema}.{name}"))

    def track_path(self, path: Path) -> int:
        self.ever_tracked.append(str(path))
        self.tracked[len(self.ever_tracked)] = str(path)
        return len(self.ever_tracked)

    def untrack(self, entry: int) -> None:
        self.tracked.pop(entry, None)

    def refresh_connection(self) -> None:
        """Fixed fields: nothing to read again."""

    def resolve_path(self, value: str | Path) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.db_path.parent / path

    def run_db(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(self.db_path))
        con.execute("SET arrow_lossless_conversion = true")
        return con

    def input_reader(self, name: str | None = None) -> pa.RecordBatchReader:
        step = self.inputs[name] if name else next(iter(self.inputs.values()))
        rel = self.run_db().sql(f'SELECT * FROM "{step}"')
        return rel.to_arrow_reader(self.batch_size)

    def progress(self, rows: int) -> None:
        self.progressed.append(rows)

    def log(self, message: str) -> None:
        self.logs.append(message)

    def on_cancel(self, callback: Callable[[], object]) -> AbstractContextManager[None]:
        return self.cancel.on_cancel(callback)

    def raise_if_cancelled(self) -> None:
        self.cancel.raise_if_cancelled()


def make_ctx(
    tmp: Path, step: str, config: Mapping[str, Any], connection: Mapping[str, Any] | None, **kw: Any
) -> DriverCtx:
    return DriverCtx(
        step_id=step,
        config=config,
        connection=connection,
        artifacts_dir=tmp / "artifacts" / step,
        db_path=tmp / "run.duckdb",
        **kw,
    )


def materialise(ctx: DriverCtx, reader: pa.RecordBatchReader) -> int:
    """What the engine does with an extractor's reader: a table named by the step id."""
    con = ctx.run_db()
    con.register("incoming", reader)
    con.execute(f'CREATE TABLE "{ctx.step_id}" AS SELECT * FROM incoming')
    con.unregister("incoming")
    row = con.execute(f'SELECT count(*) FROM "{ctx.step_id}"').fetchone()
    con.close()
    return int(row[0]) if row else 0
