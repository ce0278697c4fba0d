"""Catalogs for schema-aware checking: from the cache only, through discovery, or none."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from osiris.compiler.discovery import cache
from osiris.runtime.catalog.model import Catalog, Table
from osiris.runtime.contract.connections import ConnectionRef, NoDefaultAlias, default_alias

Lookup = Callable[[ConnectionRef], Catalog | None]


def catalog_lookup(
    mode: Literal["cached", "live", "off"],
    *,
    project_root: Path,
    connections_path: Path | None,
    environ: Mapping[str, str],
) -> Lookup:
    """A function from a connection reference to its catalog, or None when it is not known.

    cached: never connects; the tables of every cache entry of that connection (made with its
    newest entry's connection identity and spec), newest first.
    live: discovery through the cache (connects); None on any failure, never raises.
    off: always None."""
    if mode == "off":
        return lambda ref: None
    if mode == "live":
        return _live(project_root, connections_path, environ)
    return _cached(project_root, connections_path)


def _live(project_root: Path, connections_path: Path | None, environ: Mapping[str, str]) -> Lookup:
    from osiris.compiler.discovery.service import discover

    def lookup(ref: ConnectionRef) -> Catalog | None:
        try:
            return discover(
                ref, project_root=project_root, connections_path=connections_path, environ=environ
            ).catalog
        except Exception:  # a check must go on without the schema
            return None

    return lookup


def held_catalogs(
    held: Sequence[tuple[str, Catalog]], *, project_root: Path, connections_path: Path | None
) -> Lookup:
    """The catalogs a command already holds (`osiris generate --discover`: ref text -> catalog),
    then, for any other connection, the cache's (never connects). `@family` and
    `@family.alias` name the same catalog when alias is the family's default."""
    alias_of = _alias_resolver(connections_path)
    known: dict[tuple[str, str], Catalog] = {}
    for text, catalog in held:
        ref = ConnectionRef.parse(text)
        alias = alias_of(ref) if ref is not None else None
        if ref is not None and alias is not None:
            known[(ref.family, alias)] = catalog
    cached = _cached(project_root, connections_path)

    def lookup(ref: ConnectionRef) -> Catalog | None:
        alias = alias_of(ref)
        found = known.get((ref.family, alias)) if alias is not None else None
        return found if found is not None else cached(ref)

    return lookup


def _alias_resolver(connections_path: Path | None) -> Callable[[ConnectionRef], str | None]:
    """A reference's alias: its own, else the family's default (None when there is none); the
    connections file is read once, on the first `@family`."""
    aliases: dict[str, dict[str, dict[str, object]]] | None = None

    def alias_of(ref: ConnectionRef) -> str | None:
        nonlocal aliases
        if ref.alias is not None:
            return ref.alias
        if aliases is None:
            aliases = _aliases(connections_path)
        try:
            return default_alias(ref.family, aliases.get(ref.family, {}))
        except NoDefaultAlias:
            return None

    return alias_of


def _cached(project_root: Path, connections_path: Path | None) -> Lookup:
    alias_of = _alias_resolver(connections_path)

    def lookup(ref: ConnectionRef) -> Catalog | None:
        try:
            alias = alias_of(ref)
            if alias is None:
                return None
            found = cache.current(
                cache.entries(cache.connection_dir(project_root, ref.family, alias))
            )
        except Exception:
            return None
        if not found:
            return None
        tables: dict[tuple[str | None, str], Table] = {}
        for entry in found:  # newest first: the newest entry's view of a table wins
            for table in entry.catalog.tables:
                tables.setdefault((table.schema, table.name), table)
        newest = found[0].catalog
        partial = all(entry.parts["options"].get("tables") for entry in found)
        return Catalog(newest.family, tuple(tables.values()), newest.server_version, partial)

    return lookup


def _aliases(path: Path | None) -> dict[str, dict[str, dict[str, object]]]:
    """family -> alias -> fields as written (for the default-alias rule); {} when unreadable."""
    if path is None:
        return {}
    try:
        from osiris.compiler.connections import load_connections_index

        index = load_connections_index(path)
    except Exception:
        return {}
    if index is None:
        return {}
    return {
        family: {alias: dict(entry.fields) for alias, entry in entries.items()}
        for family, entries in index.aliases.items()
    }
