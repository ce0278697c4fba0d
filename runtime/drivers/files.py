"""File drivers: CSV and Parquet extractors and atomic writers, all done by DuckDB."""

from __future__ import annotations

import bz2
import contextlib
import glob
import hashlib
import lzma
import os
import secrets
import shutil
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar

import duckdb

from osiris.runtime.contract.csv_types import duckdb_type
from osiris.runtime.contract.scratch import remove_path
from osiris.runtime.drivers.base import (
    Abilities,
    DriverError,
    Part,
    PartFile,
    StepContext,
    StepResult,
    settle,
    unique_columns,
)
from osiris.runtime.drivers.incremental import SqlIncremental
from osiris.runtime.duckdb_settings import execute_main_query, open_duckdb, plain_booleans
from osiris.runtime.sql import ident_list, quote_ident, quote_literal

if TYPE_CHECKING:
    import pyarrow as pa

_INPUT_VIEW = "osiris_input"
_CSV_READ_COMPRESSION = {
    "auto": "auto",
    "infer": "auto",
    "none": "none",
    "gzip": "gzip",
    "zstd": "zstd",
    # DuckDB cannot read these: decompressed into the run's scratch directory first
    "bz2": "none",
    "zip": "none",
    "xz": "none",
}
_DECOMPRESSED_SUFFIXES = {".bz2": "bz2", ".zip": "zip", ".xz": "xz"}
# parse_dates: false: what read_csv may detect, without DATE, TIME and TIMESTAMP
_NO_DATES = ["BOOLEAN", "BIGINT", "DOUBLE", "VARCHAR"]
_CSV_WRITE_COMPRESSION = {"none": "none", "gzip": "gzip", "zstd": "zstd"}
_PARQUET_COMPRESSION = {
    "snappy": "snappy",
    "zstd": "zstd",
    "gzip": "gzip",
    "lz4": "lz4",
    "none": "uncompressed",
}


# ---------------------------------------------------------------- SQL building


def sql_value(value: Any) -> str:
    """A Python value as a DuckDB literal (strings, numbers, booleans, lists, string maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return quote_literal(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{quote_literal(str(k))}: {sql_value(v)}" for k, v in value.items())
            + "}"
        )
    raise DriverError(f"unsupported option value of type {type(value).__name__}")


def _base_dir(ctx: StepContext) -> Path | None:
    """The base_dir of the step's filesystem connection (resolved against the project root)."""
    connection = ctx.connection
    if connection is None:
        return None
    base = connection.get("base_dir")
    if not isinstance(base, str) or not base:
        named = f" {ctx.connection_name}" if ctx.connection_name else ""  # unnamed on a worker
        raise DriverError(f"the step's filesystem connection{named} has no base_dir")
    return ctx.resolve_path(base)


def _paths(ctx: StepContext) -> list[str]:
    raw = ctx.config.get("path")
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(p, str) and p for p in items):
        raise DriverError("'path' must be a file path, glob or list of them")
    base = _base_dir(ctx)
    resolved = [str(ctx.resolve_path(base / str(p) if base is not None else str(p))) for p in items]
    for path in resolved:
        if glob.has_magic(path):
            if not glob.glob(path):
                raise DriverError(f"no file matches {path}")
        elif os.path.isdir(path):
            pattern = os.path.join(path, "*" + Path(path).suffix)
            raise DriverError(
                f"path {path} is a directory, not a file; to read the files in it, "
                f"use a glob such as {pattern}"
            )
        elif not os.path.exists(path):
            raise DriverError(f"file {path} does not exist")
    return resolved


def _projection(ctx: StepContext) -> str:
    columns = ctx.config.get("columns")
    if columns in (None, []):
        return "*"
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise DriverError("'columns' must be a list of column names")
    return ident_list(columns)


def csv_source_query(ctx: StepContext) -> str:
    """SELECT ... FROM read_csv(...) for a csv_extractor config."""
    query = f"SELECT {_projection(ctx)} FROM read_csv({_csv_arguments(ctx, _csv_paths(ctx))})"
    return query + _limit(ctx)


def _csv_paths(ctx: StepContext) -> list[str]:
    """_paths, with bz2, zip and xz files replaced by their decompressed copies in scratch_dir
    (globs then expanded here); DuckDB reads the rest itself."""
    compression = ctx.config.get("compression", "auto")
    if compression not in _CSV_READ_COMPRESSION:
        raise DriverError(f"compression {compression!r} is not supported")
    out: list[str] = []
    for path in _paths(ctx):
        files = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        codecs = [_codec(file, compression) for file in files]
        if not any(codecs):
            out.append(path)
            continue
        out += [
            _decompressed(ctx, file, codec) if codec else file
            for file, codec in zip(files, codecs, strict=True)
        ]
    return out


def _codec(path: str, compression: str) -> str | None:
    """The codec Python must undo for path (bz2, zip, xz), None when DuckDB reads it as it is."""
    if compression in ("auto", "infer"):
        return _DECOMPRESSED_SUFFIXES.get(Path(path).suffix.lower())
    return compression if compression in _DECOMPRESSED_SUFFIXES.values() else None


def _decompressed(ctx: StepContext, path: str, codec: str) -> str:
    """A decompressed copy of path in the run's scratch directory, made once per run (named by
    the file's path, size and mtime) and removed with the scratch directory."""
    source = Path(path)
    stat = source.stat()
    key = hashlib.sha256(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()
    stem = source.stem if source.suffix.lower() in _DECOMPRESSED_SUFFIXES else source.name
    target = Path(ctx.scratch_dir) / f"csv-{key[:16]}-{stem[:100]}"
    if target.exists():
        return str(target)
    partial = target.with_name(f"{target.name}.{secrets.token_hex(3)}.part")
    try:
        with _open_compressed(source, codec) as data, partial.open("wb") as out:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                ctx.raise_if_cancelled()
                out.write(chunk)
        os.replace(partial, target)
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as err:
        raise DriverError(f"cannot decompress {path} as {codec}: {err}") from None
    finally:
        partial.unlink(missing_ok=True)
    return str(target)


@contextlib.contextmanager
def _open_compressed(source: Path, codec: str) -> Iterator[IO[bytes]]:
    if codec == "bz2":
        with bz2.open(source, "rb") as data:
            yield data
    elif codec == "xz":
        with lzma.open(source, "rb") as data:
            yield data
    else:
        with zipfile.ZipFile(source) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise DriverError(
                    f"zip archive {source} holds {len(members)} files; compression zip reads "
                    "an archive of exactly one CSV file"
                )
            with archive.open(members[0]) as data:
                yield data


def _limit(ctx: StepContext) -> str:
    limit = ctx.config.get("limit")
    if limit is None:
        return ""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise DriverError(f"limit must be a non-negative integer, got {limit!r}")
    return f" LIMIT {limit}"


def pinned_csv_query(ctx: StepContext, con: duckdb.DuckDBPyConnection) -> str:
    """csv_source_query with what DuckDB detects (dialect, header, column types) spelled out,
    taken from DuckDB's own sniff_csv. read_csv sniffs the file on every bind (~30 ms), and a
    view over it is bound again by each query that reads it; the pinned form binds in ~1 ms
    and reads exactly the same rows. Globs and lists stay unpinned: read_csv sniffs their
    first file only, which sniff_csv cannot be told."""
    paths = _csv_paths(ctx)
    if len(paths) != 1 or glob.has_magic(paths[0]):
        return csv_source_query(ctx)
    found = con.execute(f"SELECT Prompt FROM sniff_csv({_csv_arguments(ctx, paths[0])})").fetchall()
    prompt = str(found[0][0]).strip().rstrip(";") if found and found[0][0] else ""
    if not prompt.startswith("FROM read_csv("):  # another DuckDB's shape: do not guess
        return csv_source_query(ctx)
    return f"SELECT {_projection(ctx)} {prompt}{_limit(ctx)}"


def _csv_arguments(ctx: StepContext, paths: str | list[str]) -> str:
    cfg = ctx.config
    options: dict[str, Any] = {}
    mapping = {
        "delimiter": "delim",
        "header": "header",
        "encoding": "encoding",
        "quote": "quote",
        "escape": "escape",
        "null_value": "nullstr",
        "skip_rows": "skip",
        "comment": "comment",
    }
    for key, option in mapping.items():
        if cfg.get(key) is not None:
            options[option] = cfg[key]
    types = _column_types(cfg)
    if types:
        options["types"] = types
    if cfg.get("parse_dates") is False:
        options["auto_type_candidates"] = _NO_DATES
    if cfg.get("skip_blank_lines") is False:
        raise DriverError("skip_blank_lines: false is not supported: empty lines are skipped")
    if cfg.get("na_values"):
        options["nullstr"] = list(dict.fromkeys([cfg.get("null_value") or "", *cfg["na_values"]]))
    compression = cfg.get("compression", "auto")
    if compression not in _CSV_READ_COMPRESSION:
        raise DriverError(f"compression {compression!r} is not supported")
    options["compression"] = _CSV_READ_COMPRESSION[compression]
    return ", ".join([sql_value(paths), *(f"{k} = {sql_value(v)}" for k, v in options.items())])


def _column_types(cfg: Mapping[str, Any]) -> dict[str, str]:
    """read_csv `types`: dtype's pandas names as SQL types, parse_dates' columns as TIMESTAMP,
    then column_types (which wins for a column it names)."""
    types: dict[str, str] = {}
    dtype = cfg.get("dtype") or {}
    if not isinstance(dtype, Mapping):
        raise DriverError("dtype must map column names to pandas type names")
    for column, name in dtype.items():
        kind = duckdb_type(str(name))
        if kind is None:
            raise DriverError(f"dtype of column {column!r}: {name!r} is not a known pandas type")
        types[str(column)] = kind
    dates = cfg.get("parse_dates")
    if isinstance(dates, list):
        types.update({str(column): "TIMESTAMP" for column in dates})
    types.update({str(k): str(v) for k, v in (cfg.get("column_types") or {}).items()})
    return types


def parquet_source_query(ctx: StepContext) -> str:
    """SELECT ... FROM read_parquet(...) for a parquet_extractor config."""
    return f"SELECT {_projection(ctx)} FROM read_parquet({sql_value(_paths(ctx))})"


def _stream(query: str, batch_size: int, params: list[Any] | None = None) -> pa.RecordBatchReader:
    """Run query on a private in-memory DuckDB and stream its rows; the connection lives
    exactly as long as the reader is being read."""
    import pyarrow as pa

    con = open_duckdb(streaming=True)
    try:
        reader = plain_booleans(con.sql(query, params=params or None).to_arrow_reader(batch_size))
    except BaseException:
        con.close()
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def source_bytes(ctx: StepContext) -> int:
    """Total size of the files a file extractor reads (globs expanded)."""
    total = 0
    for path in _paths(ctx):
        for match in glob.glob(path) if glob.has_magic(path) else [path]:
            total += _size(Path(match))
    return total


class _FileExtractor:
    """A file source DuckDB reads natively: streamed, copied or viewed in the run database."""

    abilities: ClassVar[Abilities] = Abilities(
        roles=("extractor",), native_source=True, sized_source=True
    )

    @staticmethod
    def query(ctx: StepContext) -> str:
        raise NotImplementedError

    def source_bytes(self, ctx: StepContext) -> int:
        return source_bytes(ctx)

    def source_files(self, ctx: StepContext) -> list[str]:
        return _paths(ctx)

    def source_query(self, ctx: StepContext) -> str | None:
        if ctx.config.get("incremental"):
            return None  # read through extract(): the last value is a bound parameter
        return self.query(ctx)

    def define_view(self, ctx: StepContext) -> None:
        con = ctx.run_db()
        con.execute(f"CREATE VIEW {quote_ident(ctx.step_id)} AS {self.view_query(ctx, con)}")

    def view_query(self, ctx: StepContext, con: duckdb.DuckDBPyConnection) -> str:
        """source_query for the view: the same rows, in a form that is cheap to bind again."""
        return self.query(ctx)

    def extract(self, ctx: StepContext) -> pa.RecordBatchReader:
        import pyarrow as pa

        query = self.query(ctx)
        incremental = SqlIncremental.open(ctx, ctx.config.get("incremental"))
        if incremental is None:
            return _stream(query, ctx.batch_size)
        probe = open_duckdb(streaming=True)
        try:
            incremental.check_columns(probe.sql(query).limit(0).columns)
        finally:
            probe.close()
        params: list[Any] = []
        if incremental.window.since is not None:
            query = incremental.wrap(query, quote_ident(incremental.column), "?")
            params = [incremental.window.since]
            ctx.log(f"incremental: {query} [1 parameter]")
        reader = _stream(query, ctx.batch_size, params)
        return pa.RecordBatchReader.from_batches(reader.schema, incremental.track(ctx, reader))


class CsvExtractor(_FileExtractor):
    """filesystem.csv_extractor: CSV files (globs, compression) via DuckDB read_csv."""

    query = staticmethod(csv_source_query)

    def view_query(self, ctx: StepContext, con: duckdb.DuckDBPyConnection) -> str:
        return pinned_csv_query(ctx, con)


class ParquetExtractor(_FileExtractor):
    """filesystem.parquet_extractor: Parquet files (globs) via DuckDB read_parquet."""

    query = staticmethod(parquet_source_query)


# ---------------------------------------------------------------- atomic file output


def _temp_sibling(ctx: StepContext, target: Path, suffix: str) -> Path:
    """A hidden name in the target's directory, so os.replace is a same-filesystem rename; it
    carries the run id, and stays within the usual 255-byte limit of a file name."""
    return target.with_name(
        f".{target.name[:160]}.osiris-{ctx.run_tag}-{secrets.token_hex(3)}.{suffix}"
    )


def _tracked_siblings(ctx: StepContext, target: Path, *suffixes: str) -> list[tuple[Path, int]]:
    """Temp siblings of target with their ledger entries, listed in the run's ledger before they
    exist (so a run that dies leaves nothing the next run does not remove)."""
    paths = [_temp_sibling(ctx, target, suffix) for suffix in suffixes]
    return [(path, ctx.track_path(path)) for path in paths]


def _swap_into_place(ctx: StepContext, new: Path, target: Path) -> None:
    """Put new at target. Files: one atomic rename. Directories: rename the old aside first
    and back if the second rename fails."""
    if not new.is_dir() and not target.is_dir():
        os.replace(new, target)
        return
    old = _temp_sibling(ctx, target, "old") if target.exists() else None
    if old is not None:
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:  # only now is it garbage (before, it was the one copy of the target)
        entry = ctx.track_path(old)
        remove_path(old)
        ctx.untrack(entry)


class _FilePublication:
    """A file (or partition directory, directories=True) written beside its target, renamed
    into place on publish; entry is the staged file's ledger entry."""

    def __init__(
        self, ctx: StepContext, staged: Path, target: Path, entry: int, *, directories: bool = False
    ) -> None:
        self.ctx = ctx
        self.staged = staged
        self.final = target
        self.entry = entry
        self.target = f"file {target}"
        self.directories = directories

    def publish(self) -> None:
        try:
            if self.directories:
                _swap_into_place(self.ctx, self.staged, self.final)
            else:
                os.replace(self.staged, self.final)
        except OSError as err:
            self.discard()
            raise DriverError(f"cannot move the new {self.target} into place: {err}") from None
        self.ctx.untrack(self.entry)

    def discard(self) -> None:
        remove_path(self.staged)
        self.ctx.untrack(self.entry)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _select_for_write(ctx: StepContext, table: str) -> str:
    return f"SELECT {_projection(ctx)} FROM {quote_ident(table)}"


def _copy(
    ctx: StepContext,
    con: duckdb.DuckDBPyConnection,
    query: str,
    dest: Path,
    options: Mapping[str, Any],
) -> int:
    rendered = ", ".join(f"{k} {v}" for k, v in options.items())
    sql = f"COPY ({query}) TO {quote_literal(str(dest))} ({rendered})"
    found = execute_main_query(con, ctx, sql)
    return int(found[0]) if found else 0


_T = TypeVar("_T")


def _with_registered(
    ctx: StepContext,
    data: pa.RecordBatchReader,
    write: Callable[[duckdb.DuckDBPyConnection, str], _T],
) -> _T:
    """Expose an Arrow reader as a view on a private DuckDB and call write(con, view)."""
    con = open_duckdb()
    try:
        con.register(_INPUT_VIEW, data)
        with ctx.on_cancel(con.interrupt):
            return write(con, _INPUT_VIEW)
    finally:
        con.close()


class _FileWriter:
    """A file target written with DuckDB's COPY, from an Arrow stream or straight from the run db."""

    abilities: ClassVar[Abilities] = Abilities(
        roles=("writer",), run_database_sink=True, deferred_publish=True
    )

    def write(self, ctx: StepContext, data: pa.RecordBatchReader) -> StepResult:
        unique_columns(ctx.step_id, data.schema.names)
        return _with_registered(ctx, data, lambda con, view: self._write(ctx, con, view))

    def write_from_run_db(self, ctx: StepContext, table: str) -> StepResult:
        return self._write(ctx, ctx.run_db(), table)

    def _write(self, ctx: StepContext, con: duckdb.DuckDBPyConnection, table: str) -> StepResult:
        raise NotImplementedError


class CsvWriter(_FileWriter):
    """filesystem.csv_writer: COPY ... TO a temp file beside the target, then os.replace."""

    def _write(self, ctx: StepContext, con: duckdb.DuckDBPyConnection, table: str) -> StepResult:
        cfg = ctx.config
        target = _single_target(ctx)
        mode = cfg.get("write_mode", "replace")
        if mode not in ("replace", "append"):
            raise DriverError(f"write_mode {mode!r} is not replace or append")
        compression = cfg.get("compression") or _compression_from_suffix(target)
        if compression not in _CSV_WRITE_COMPRESSION:
            raise DriverError(f"compression {compression!r} is not supported")
        appending = mode == "append" and target.exists() and target.stat().st_size > 0
        options: dict[str, str] = {
            "FORMAT": "csv",
            "HEADER": sql_value(bool(cfg.get("header", True)) and not appending),
            "DELIMITER": sql_value(cfg.get("delimiter", ",")),
            "COMPRESSION": _CSV_WRITE_COMPRESSION[compression],
        }
        if cfg.get("quote") is not None:
            options["QUOTE"] = sql_value(cfg["quote"])
        if cfg.get("null_value") is not None:
            options["NULLSTR"] = sql_value(cfg["null_value"])
        newline = cfg.get("newline", "lf")
        if newline not in _NEWLINES:
            raise DriverError(f"newline {newline!r} is not lf or crlf")
        options["NEW_LINE"] = sql_value(_NEWLINES[newline])
        query = _select_for_write(ctx, table)
        forced = _forced_quotes(con, query, cfg.get("quoting", "minimal"))
        if forced:
            options["FORCE_QUOTE"] = forced
        encoding = cfg.get("encoding", "utf-8")
        if encoding not in _CSV_ENCODINGS:
            raise DriverError(f"encoding {encoding!r} is not one of {', '.join(_CSV_ENCODINGS)}")
        if encoding != "utf-8" and compression != "none":
            raise DriverError(f"encoding {encoding} cannot be combined with compression here")
        if not target.parent.is_dir():
            if cfg.get("create_dirs", True) is False:
                raise DriverError(
                    f"directory {target.parent} does not exist (create_dirs is false)"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
        (part, part_entry), (combined, combined_entry) = _tracked_siblings(
            ctx, target, "part", "tmp"
        )
        staged: Path | None = None
        try:
            rows = _copy(ctx, con, query, part, options)
            if encoding != "utf-8":
                _reencode(part, encoding, bom=not appending)
            written = part.stat().st_size
            ctx.raise_if_cancelled()
            if appending:
                # gzip and zstd both allow concatenated streams, so appending bytes is valid.
                shutil.copyfile(target, combined)
                with combined.open("ab") as out, part.open("rb") as new_rows:
                    shutil.copyfileobj(new_rows, out)
                staged = combined
            else:
                staged = part
        finally:
            for leftover, entry in ((part, part_entry), (combined, combined_entry)):
                if leftover != staged:
                    remove_path(leftover)
                    ctx.untrack(entry)
        entry = part_entry if staged == part else combined_entry
        result = StepResult(rows_in=rows, rows_out=rows, bytes=written)
        return settle(ctx, _FilePublication(ctx, staged, target, entry), result)


_LAYOUTS = ("file", "dataset")


@dataclass(frozen=True, slots=True)
class _ParquetTarget:
    """A parquet_writer config, checked: where, in which layout, with which COPY options."""

    path: Path  # absolute
    layout: str  # file: one Parquet file (or hive directory); dataset: part-NNNNN.parquet files
    options: Mapping[str, str]  # COPY options of every file written
    partition_by: tuple[str, ...]

    @staticmethod
    def parse(ctx: StepContext) -> _ParquetTarget:
        cfg = ctx.config
        mode = cfg.get("write_mode", "replace")
        if mode != "replace":
            raise DriverError(f"parquet write_mode must be replace, not {mode!r}")
        compression = cfg.get("compression", "snappy")
        if compression not in _PARQUET_COMPRESSION:
            raise DriverError(f"compression {compression!r} is not supported")
        options: dict[str, str] = {
            "FORMAT": "parquet",
            "COMPRESSION": _PARQUET_COMPRESSION[compression],
        }
        if cfg.get("row_group_size") is not None:
            options["ROW_GROUP_SIZE"] = str(int(cfg["row_group_size"]))
        partition_by = cfg.get("partition_by") or []
        if isinstance(partition_by, str):
            partition_by = [partition_by]
        layout = cfg.get("layout", "file")
        if layout not in _LAYOUTS:
            raise DriverError(f"layout {layout!r} is not file or dataset")
        if layout == "dataset" and partition_by:
            raise DriverError(
                "layout dataset cannot be combined with partition_by (which writes a "
                "directory of col=value subdirectories itself); remove one of them"
            )
        target = _single_target(ctx).absolute()
        return _ParquetTarget(target, layout, options, tuple(partition_by))

    def copy_options(self) -> dict[str, str]:
        """The options of the one COPY that writes the whole target (layout file)."""
        if not self.partition_by:
            return dict(self.options)
        return {**self.options, "PARTITION_BY": f"({ident_list(list(self.partition_by))})"}


def _part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _parquet_rows(files: list[Path]) -> int:
    """Rows in Parquet files, from their footers."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(file).num_rows for file in files)


class ParquetWriter(_FileWriter):
    """filesystem.parquet_writer: COPY ... TO (FORMAT parquet) beside the target, then swap in.
    Partitioned: one file per partition in a hidden directory beside the target, published as
    that directory (layout dataset) or concatenated into one file (layout file)."""

    abilities: ClassVar[Abilities] = Abilities(
        roles=("writer",), run_database_sink=True, deferred_publish=True, partitioned_sink=True
    )

    def _write(self, ctx: StepContext, con: duckdb.DuckDBPyConnection, table: str) -> StepResult:
        out = _ParquetTarget.parse(ctx)
        out.path.parent.mkdir(parents=True, exist_ok=True)
        ((staged, entry),) = _tracked_siblings(ctx, out.path, "tmp")
        try:
            query = _nullable_select(ctx, con, _select_for_write(ctx, table))
            if out.layout == "dataset":
                staged.mkdir()
                rows = _copy(ctx, con, query, staged / _part_name(0), out.options)
            else:
                rows = _copy(ctx, con, query, staged, out.copy_options())
            written = _size(staged)
        except BaseException:
            remove_path(staged)
            ctx.untrack(entry)
            raise
        result = StepResult(rows_in=rows, rows_out=rows, bytes=written)
        return settle(ctx, _FilePublication(ctx, staged, out.path, entry, directories=True), result)

    def part_tables(self, ctx: StepContext, count: int) -> list[Part]:
        out = _ParquetTarget.parse(ctx)
        staging = _temp_sibling(ctx, out.path, "parts")
        return [PartFile(str(staging), _part_name(i)) for i in range(count)]

    def stage_part(self, ctx: StepContext, data: pa.RecordBatchReader, part: Part) -> int:
        if not isinstance(part, PartFile):
            raise DriverError(f"step {ctx.step_id}: a Parquet part is a file, not {part!r}")
        out = _ParquetTarget.parse(ctx)
        unique_columns(ctx.step_id, data.schema.names)
        part.path.parent.mkdir(parents=True, exist_ok=True)  # the directory was tracked first

        def write(con: duckdb.DuckDBPyConnection, view: str) -> int:
            query = _nullable_select(ctx, con, _select_for_write(ctx, view))
            return _copy(ctx, con, query, part.path, out.options)

        try:
            return _with_registered(ctx, data, write)
        except BaseException:
            part.path.unlink(missing_ok=True)
            raise

    def finish_parts(self, ctx: StepContext, schema: pa.Schema, parts: list[Part]) -> StepResult:
        out = _ParquetTarget.parse(ctx)
        files = [p.path for p in parts if isinstance(p, PartFile)]
        (staging,) = {Path(p.directory) for p in parts if isinstance(p, PartFile)}
        if out.layout == "dataset":  # the staging directory is the result: renamed into place
            entry = ctx.track_path(staging)
            rows = _parquet_rows(files)
            result = StepResult(rows_in=rows, rows_out=rows, bytes=_size(staging))
            publication = _FilePublication(ctx, staging, out.path, entry, directories=True)
            return settle(ctx, publication, result)
        ((staged, entry),) = _tracked_siblings(ctx, out.path, "tmp")
        try:
            if len(files) == 1 and not out.partition_by:  # already the target's bytes
                os.replace(files[0], staged)
                rows = _parquet_rows([staged])
            else:
                rows = _concatenate(ctx, files, staged, out.copy_options())
            written = _size(staged)
        except BaseException:
            remove_path(staged)
            ctx.untrack(entry)
            raise
        finally:
            remove_path(staging)  # copied into staged, or not wanted any more
        result = StepResult(rows_in=rows, rows_out=rows, bytes=written)
        return settle(ctx, _FilePublication(ctx, staged, out.path, entry, directories=True), result)


def _concatenate(
    ctx: StepContext, files: list[Path], dest: Path, options: Mapping[str, Any]
) -> int:
    """One COPY of every row of the part files, in their order, to dest."""
    con = open_duckdb()
    try:
        with ctx.on_cancel(con.interrupt):
            select = f"SELECT * FROM read_parquet({sql_value([str(f) for f in files])})"
            return _copy(ctx, con, _nullable_select(ctx, con, select), dest, options)
    finally:
        con.close()


def _nullable_select(ctx: StepContext, con: duckdb.DuckDBPyConnection, select: str) -> str:
    """select with every column nullable in the Parquet schema. DuckDB marks a
    column `required` when its statistics show no NULL (every column of an empty table, and
    constants), so the file's schema would depend on the rows. A CASE on a condition the
    optimiser cannot fold hides those statistics (5M rows: ~10% slower COPY)."""
    names = con.sql(select).columns
    unique_columns(ctx.step_id, names)
    columns = ", ".join(
        f"CASE WHEN random() < 2 THEN {quote_ident(n)} END AS {quote_ident(n)}" for n in names
    )
    return f"SELECT {columns} FROM ({select}) AS osiris_rows"


_NEWLINES = {"lf": "\n", "crlf": "\r\n"}
_CSV_ENCODINGS = ("utf-8", "utf-16", "ascii", "latin-1")
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE")


def _forced_quotes(con: duckdb.DuckDBPyConnection, query: str, quoting: str) -> str:
    """COPY's FORCE_QUOTE for upstream's quoting: '' (minimal), * (all), or the non-numeric columns."""
    if quoting == "minimal":
        return ""
    if quoting == "all":
        return "*"
    if quoting != "nonnumeric":
        raise DriverError(f"quoting {quoting!r} is not minimal, all or nonnumeric")
    described = con.execute(f"DESCRIBE {query}").fetchall()
    text = [
        str(name)
        for name, kind, *_ in described
        if not str(kind).upper().lstrip("U").startswith((*_NUMERIC_TYPES, "DECIMAL"))
    ]
    return f"({ident_list(text)})" if text else ""


def _reencode(path: Path, encoding: str, *, bom: bool) -> None:
    """Rewrite a UTF-8 file in another encoding, streamed (utf-16: little endian, BOM first)."""
    codec = "utf-16-le" if encoding == "utf-16" else encoding
    out_path = path.with_name(path.name + ".enc")
    try:
        with path.open(encoding="utf-8", newline="") as src, out_path.open("wb") as out:
            if encoding == "utf-16" and bom:
                out.write(b"\xff\xfe")
            for chunk in iter(lambda: src.read(1 << 20), ""):
                try:
                    out.write(chunk.encode(codec))
                except UnicodeEncodeError as err:
                    bad = err.object[err.start : err.end]
                    raise DriverError(
                        f"the data has {bad!r}, which {encoding} cannot represent; "
                        "use encoding utf-8 or utf-16"
                    ) from None
        os.replace(out_path, path)
    finally:
        out_path.unlink(missing_ok=True)


def _single_target(ctx: StepContext) -> Path:
    raw = ctx.config.get("path")
    if not isinstance(raw, str) or not raw:
        raise DriverError("'path' must be the output file path")
    if glob.has_magic(raw):
        raise DriverError(f"output path {raw} must not be a glob")
    return ctx.resolve_path(raw)


def _compression_from_suffix(target: Path) -> str:
    suffix = target.suffix.lower()
    return {".gz": "gzip", ".zst": "zstd"}.get(suffix, "none")
