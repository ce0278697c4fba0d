"""SQL text helpers for DuckDB: identifier and literal quoting."""

from __future__ import annotations

from collections.abc import Iterable


def quote_ident(name: str) -> str:
    """Quote an identifier so any name (with '-', spaces, quotes) is taken literally."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal."""
    return "'" + value.replace("'", "''") + "'"


def qualified(*parts: str | None) -> str:
    """Join the non-empty parts into a quoted, dot-separated name."""
    return ".".join(quote_ident(p) for p in parts if p)


def ident_list(names: Iterable[str]) -> str:
    """Comma-separated quoted identifiers."""
    return ", ".join(quote_ident(n) for n in names)
