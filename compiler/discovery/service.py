"""Discovery, orchestrated: resolve the connection, check the cache against the live digest, read on a miss."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from osiris.compiler.discovery import cache
from osiris.runtime.catalog.errors import CatalogError
from osiris.runtime.catalog.model import Catalog, Table
from osiris.runtime.catalog.read import catalog_digest, read_catalog
from osiris.runtime.catalog.source import Source, folder_source, resolve_source
from osiris.runtime.contract.connections import ConnectionRef, secret_fields
from osiris.runtime.contract.exits import ExitCode

# The components whose specs describe what discovery of a family reads (their fingerprint is
# part of the key: a new spec version is a new answer).
COMPONENTS = {
    "mysql": ("mysql.extractor",),
    "postgres": ("postgres.extractor",),
    "supabase": ("supabase.extractor",),
    "duckdb": ("duckdb.extractor",),
    "filesystem": ("filesystem.csv_extractor", "filesystem.parquet_extractor"),
}


@dataclass(frozen=True, slots=True)
class CacheStatus:
    """hit (verified: the live digest matched; else the server was unreachable and the entry
    was younger than max_age) or miss, with the reason: new, options, spec, connection,
    catalog, ttl, refresh or corrupt."""

    status: str
    reason: str | None
    key: str  # "sha256:<hex>"
    age_s: float | None
    verified: bool

    def to_json(self) -> dict[str, Any]:
        age = None if self.age_s is None else round(self.age_s, 3)
        return {
            "status": self.status,
            "reason": self.reason,
            "key": self.key,
            "age_s": age,
            "verified": self.verified,
        }


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    connection: str  # '@family.alias' (default alias filled in), or '--path DIR'
    cache_status: CacheStatus
    catalog: Catalog
    warnings: tuple[str, ...] = ()


class DiscoveryError(Exception):
    """Discovery failed: one secret-free line, the exit code (5 connection/configuration,
    4 failed query), and the cache's verdict when it got that far."""

    def __init__(self, message: str, exit_code: int, cache_status: CacheStatus | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.cache_status = cache_status


def spec_fingerprint(family: str) -> tuple[str, str]:
    """(component names, fingerprint of their specs) for a family."""
    from osiris.compiler.registry import load_registry

    names = COMPONENTS.get(family, ())
    try:
        return ",".join(names), load_registry().fingerprint(names)
    except KeyError:
        return ",".join(names), "unknown"


def key_parts(
    source: Source, tables: Sequence[str] | None, schema: str | None, samples: int
) -> cache.KeyParts:
    component, spec = spec_fingerprint(source.family)
    marked = secret_fields(source.secret_schema)
    fields = {**source.location, **source.fields}
    identity = cache.connection_identity(source.family, source.alias, fields, marked)
    return cache.KeyParts(component, spec, identity, cache.options(tables, schema, samples))


def resolve(
    ref: str | ConnectionRef | None,
    *,
    project_root: Path,
    connections_path: Path | None,
    environ: Mapping[str, str],
    validation: str | None = None,
    folder: Path | None = None,
) -> Source:
    if folder is not None:
        return folder_source(folder, project_root)
    if ref is None:
        raise DiscoveryError("name a connection (@family.alias) or a folder", ExitCode.INVALID)
    try:
        return resolve_source(
            str(ref),
            connections_path=connections_path,
            project_root=project_root,
            environ=environ,
            validation=validation,
        )
    except CatalogError as err:
        raise DiscoveryError(str(err), err.exit_code) from None


def _missing(catalog: Catalog, tables: Sequence[str] | None, ref: str) -> tuple[str, ...]:
    found = {t.name for t in catalog.tables}
    missing = [t for t in tables or () if t not in found]
    return (f"{ref}: no such table(s): {', '.join(missing)}",) if missing else ()


def _live_digest(
    source: Source, tables: Sequence[str] | None, schema: str | None
) -> tuple[str, CatalogError | None]:
    """(the live catalog digest, None), or ('', why) when no server answered."""
    try:
        return catalog_digest(source.family, source.fields, tables=tables, schema=schema), None
    except CatalogError as err:
        if not err.unreachable:
            raise DiscoveryError(str(err), err.exit_code) from None
        return "", err


def _miss_reason(
    entry: cache.Entry | None,
    unreachable: CatalogError | None,
    *,
    refresh: bool,
    path: Path,
    parts: cache.KeyParts,
) -> str:
    """Why the lookup missed: catalog or ttl (the entry is there), refresh, corrupt, or the
    part of the key that differs from the connection's other entries (or new)."""
    if entry is not None:
        return "catalog" if unreachable is None else "ttl"
    if refresh:
        return "refresh"
    if path.exists():
        return "corrupt"
    return cache.changed_part(path.parent, parts)


def discover(
    ref: str | ConnectionRef | None,
    *,
    project_root: Path,
    connections_path: Path | None,
    environ: Mapping[str, str],
    tables: Sequence[str] | None = None,
    schema: str | None = None,
    samples: int = 0,
    refresh: bool = False,
    max_age: float = cache.DEFAULT_MAX_AGE,
    validation: str | None = None,
    folder: Path | None = None,
) -> DiscoveryResult:
    """The catalog of a connection (or folder), from the cache when its entry still holds.

    A hit needs the same key and, when the server answers, the same live catalog digest; when
    it does not answer, an entry younger than max_age is used and marked unverified."""
    source = resolve(
        ref,
        project_root=project_root,
        connections_path=connections_path,
        environ=environ,
        validation=validation,
        folder=folder,
    )
    if source.family not in COMPONENTS:
        supported = ", ".join(sorted(COMPONENTS))
        raise DiscoveryError(
            f"{source.ref}: discovery does not support the {source.family} family "
            f"(supported: {supported})",
            ExitCode.CONFIGURATION,
        )
    table_list = list(tables) if tables else None
    parts = key_parts(source, table_list, schema, samples)
    key = parts.key
    folder_path = cache.connection_dir(project_root, source.family, source.alias)
    path = cache.entry_path(folder_path, key)
    entry = None if refresh else cache.read_entry(path)

    def status(state: str, reason: str | None, age: float | None, verified: bool) -> CacheStatus:
        return CacheStatus(state, reason, f"sha256:{key}", age, verified)

    live, unreachable = _live_digest(source, table_list, schema)
    now = time.time()
    if entry is not None:
        age = entry.age(now)
        if unreachable is None and entry.digest == live:
            return DiscoveryResult(
                source.ref,
                status("hit", None, age, True),
                entry.catalog,
                source.warnings + _missing(entry.catalog, table_list, source.ref),
            )
        if unreachable is not None and age <= max_age:
            return DiscoveryResult(
                source.ref,
                status("hit", "unreachable", age, False),
                entry.catalog,
                (*source.warnings, f"{source.ref}: not verified ({unreachable})"),
            )
    reason = _miss_reason(entry, unreachable, refresh=refresh, path=path, parts=parts)
    if unreachable is not None:
        why = (
            f"the cached entry is {entry.age(now):.0f} s old, older than --max-age {max_age:g} s"
            if entry is not None
            else "nothing is cached for it"
        )
        raise DiscoveryError(
            f"{unreachable} ({why})", unreachable.exit_code, status("miss", reason, None, False)
        )
    try:
        # the digest was taken before the read: a change in between makes the next lookup miss
        catalog = read_catalog(
            source.family, source.fields, tables=table_list, schema=schema, samples=samples
        )
    except CatalogError as err:
        raise DiscoveryError(str(err), err.exit_code, status("miss", reason, None, False)) from None
    try:
        cache.write_entry(path, parts, live, catalog)
        cache.prune(folder_path, parts)
        warnings = source.warnings
    except OSError as err:  # a cache that cannot be written costs speed, not the answer
        warnings = (*source.warnings, f"discovery cache not written: {err.strerror or err}")
    warnings += _missing(catalog, table_list, source.ref)
    return DiscoveryResult(source.ref, status("miss", reason, 0.0, True), catalog, warnings)


def shown_tables(result: DiscoveryResult, *, show_samples: bool = False) -> tuple[Table, ...]:
    """The tables as a front end may show them: samples masked unless asked otherwise."""
    if show_samples:
        return result.catalog.tables
    from osiris.compiler.discovery.mask import mask_samples

    return tuple(mask_samples(t) for t in result.catalog.tables)


def result_fields(result: DiscoveryResult, *, show_samples: bool = False) -> dict[str, Any]:
    """The JSON of a discovery (`osiris discover --format json`, the MCP tool)."""
    return {
        "connection": result.connection,
        "cache": result.cache_status.to_json(),
        "server_version": result.catalog.server_version,
        "tables": [asdict(t) for t in shown_tables(result, show_samples=show_samples)],
        "warnings": list(result.warnings),
    }
