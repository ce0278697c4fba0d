"""Catalogs of a folder of CSV and Parquet files: one table per file, read as the extractors read it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from osiris.runtime.catalog.errors import CatalogError
from osiris.runtime.catalog.model import Catalog, Column, Table
from osiris.runtime.catalog.values import sample_rows
from osiris.runtime.contract.exits import ExitCode

CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")


def _base(fields: Mapping[str, Any]) -> Path:
    raw = fields.get("base_dir") or fields.get("path")
    if not isinstance(raw, str) or not raw:
        raise CatalogError(
            "file discovery needs a folder (base_dir or --path)", ExitCode.CONFIGURATION
        )
    base = Path(raw)
    if not base.is_dir():
        raise CatalogError(f"folder {base} does not exist", ExitCode.CONFIGURATION)
    return base


def data_files(base: Path, tables: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """(name relative to base, path) of every CSV/Parquet file below base, hidden folders and
    files left out, sorted; only the named ones when tables is given."""
    found = []
    for path in base.rglob("*"):
        rel = path.relative_to(base)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        name = rel.as_posix()
        if name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
            found.append((name, path))
    if tables:
        wanted = set(tables)
        found = [(n, p) for n, p in found if n in wanted]
    return sorted(found)


def catalog_digest(
    fields: Mapping[str, Any], *, tables: Sequence[str] | None = None, schema: str | None = None
) -> str:
    """Names, sizes and modification times of the selected files (no file is opened)."""
    digest = hashlib.sha256()
    files = data_files(_base(fields), tables)
    for name, path in files:
        stat = path.stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"files:{len(files)}:{digest.hexdigest()}"


def _source(name: str, path: Path) -> str:
    from osiris.runtime.sql import quote_literal

    reader = "read_parquet" if name.lower().endswith(PARQUET_SUFFIXES) else "read_csv"
    return f"{reader}({quote_literal(str(path))})"


def read_catalog(
    fields: Mapping[str, Any],
    *,
    tables: Sequence[str] | None = None,
    schema: str | None = None,
    samples: int = 0,
) -> Catalog:
    import duckdb

    from osiris.runtime.duckdb_settings import open_duckdb

    files = data_files(_base(fields), tables)
    con = open_duckdb()
    try:
        found = tuple(_read_file(con, name, path, samples) for name, path in files)
    finally:
        con.close()
    return Catalog(family="filesystem", tables=found, server_version=str(duckdb.__version__))


def _read_file(con: Any, name: str, path: Path, samples: int) -> Table:
    """One file as the extractor reads it: columns and Arrow types from DuckDB's reader, for
    Parquet also nullability and the row count from its metadata."""
    import duckdb

    from osiris.runtime.drivers.duckdb_errors import explain
    from osiris.runtime.duckdb_settings import plain_booleans
    from osiris.runtime.sql import quote_literal

    cur = con.cursor()  # one per file: a result left open never blocks the next
    nullable: dict[str, bool] = {}
    estimate = None
    try:
        rel = cur.sql(f"SELECT * FROM {_source(name, path)}")
        reader = plain_booleans(rel.limit(0).to_arrow_reader(1))
        arrow = reader.schema
        reader.read_all()  # finishes the result, so the connection takes the next query
        db_types = [str(t) for t in rel.types]
        if name.lower().endswith(PARQUET_SUFFIXES):
            literal = quote_literal(str(path))
            nullable = {
                str(n): r != "REQUIRED"
                for n, r in cur.execute(
                    f"SELECT name, repetition_type FROM parquet_schema({literal})"
                ).fetchall()
            }
            (row,) = cur.execute(
                f"SELECT sum(num_rows) FROM parquet_file_metadata({literal})"
            ).fetchall()  # fetchall: DuckDB 2 refuses the next query while one is open
            estimate = int(row[0]) if row[0] is not None else None
        rows = rel.limit(samples).fetchall() if samples > 0 else []
    except duckdb.Error as err:
        explained = explain(err)
        text = str(explained) if explained else str(err).splitlines()[0]
        raise CatalogError(f"file {name}: {text}") from None
    finally:
        cur.close()
    columns = tuple(
        Column(
            name=field.name,
            db_type=db_type,
            arrow_type=str(field.type),
            nullable=nullable.get(field.name, True),
        )
        for field, db_type in zip(arrow, db_types, strict=False)
    )
    return Table(
        name=name,
        schema=None,
        columns=columns,
        kind="file",
        row_estimate=estimate,
        samples=sample_rows(arrow.names, rows),
    )
