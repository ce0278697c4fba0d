"""The discovered shape of a source: tables, columns, keys, estimates and samples (JSON round trip)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its database type, the Arrow type the extractor would produce, and its key role."""

    name: str
    db_type: str  # as the server spells it: "varchar(255)", "numeric(12,2)", "BIGINT"
    arrow_type: str  # str() of the pyarrow type the extractor reads it as: "int64", "timestamp[us]"
    nullable: bool
    default: str | None = None
    primary_key_position: int | None = None  # 1-based position in the primary key


@dataclass(frozen=True, slots=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_schema: str | None
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One table, view or file; `schema` is the database schema (None for files)."""

    name: str
    schema: str | None
    columns: tuple[Column, ...]
    kind: str = "table"  # table | view | file
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    row_estimate: int | None = None  # catalog statistics, never count(*)
    samples: tuple[dict[str, Any], ...] = ()  # JSON-able values, unmasked here

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True, slots=True)
class Catalog:
    """What one discovery read from one connection (or folder)."""

    family: str
    tables: tuple[Table, ...] = field(default_factory=tuple)
    server_version: str | None = None
    # Only some tables were asked for (`--tables`): a table missing from it proves nothing.
    partial: bool = False

    def table(self, name: str, schema: str | None = None) -> Table | None:
        for t in self.tables:
            if t.name == name and (schema is None or t.schema == schema):
                return t
        return None


def catalog_to_json(catalog: Catalog) -> dict[str, Any]:
    return asdict(catalog)


def catalog_from_json(data: dict[str, Any]) -> Catalog:
    """The inverse of catalog_to_json; raises KeyError/TypeError/ValueError on a malformed document."""
    tables = tuple(
        Table(
            name=t["name"],
            schema=t.get("schema"),
            columns=tuple(Column(**c) for c in t["columns"]),
            kind=t.get("kind", "table"),
            primary_key=tuple(t.get("primary_key", ())),
            unique_keys=tuple(tuple(k) for k in t.get("unique_keys", ())),
            foreign_keys=tuple(
                ForeignKey(
                    tuple(fk["columns"]),
                    fk.get("ref_schema"),
                    fk["ref_table"],
                    tuple(fk["ref_columns"]),
                )
                for fk in t.get("foreign_keys", ())
            ),
            row_estimate=t.get("row_estimate"),
            samples=tuple(dict(s) for s in t.get("samples", ())),
        )
        for t in data["tables"]
    )
    return Catalog(
        family=data["family"],
        tables=tables,
        server_version=data.get("server_version"),
        partial=bool(data.get("partial", False)),
    )
