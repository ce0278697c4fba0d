"""Which connection a discovery reads: an @family.alias resolved by the runtime's resolver, or a folder."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osiris.runtime.catalog.errors import CatalogError
from osiris.runtime.connections import VALIDATION_MODES
from osiris.runtime.contract.exits import ExitCode

__all__ = ["VALIDATION_MODES", "Source", "folder_source", "resolve_source"]
# Fields that hold a path; a relative one resolves against the project root (as in a run).
_PATH_FIELDS = {"duckdb": ("path",), "filesystem": ("base_dir",)}


@dataclass(frozen=True, slots=True)
class Source:
    """A resolved connection: fields hold its secrets (never log or store them)."""

    ref: str  # '@family.alias' with the default alias filled in, or '--path DIR'
    family: str
    alias: str
    fields: Mapping[str, Any] = field(repr=False)
    secret_schema: Mapping[str, Any] | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()
    # where a PostgreSQL dsn points (host, port, database, user): the cache key's identity
    # needs it, and the dsn itself is secret
    location: Mapping[str, Any] = field(default_factory=dict)


def resolve_source(
    ref: str,
    *,
    connections_path: Path | None,
    project_root: Path,
    environ: Mapping[str, str],
    validation: str | None = None,
) -> Source:
    """Resolve '@family.alias' (or '@family': its default alias) with the runtime's
    ConnectionResolver: the same file, variables, .env and validation as a run."""
    from osiris.runtime.connections import ConnectionResolver, family_schema, validation_mode
    from osiris.runtime.errors import ConfigurationError
    from osiris.runtime.secrets import Redactor

    try:
        resolver = ConnectionResolver(
            connections_path,
            redactor=Redactor(),
            dotenv=project_root / ".env",
            environ=environ,
            validation=validation_mode(validation, environ),
        )
        resolved = resolver.resolve(ref)
    except ConfigurationError as err:
        raise CatalogError(str(err), ExitCode.CONFIGURATION) from None
    fields = dict(resolved.fields)
    for name in _PATH_FIELDS.get(resolved.family, ()):
        value = fields.get(name)
        if isinstance(value, str) and value:
            fields[name] = str(project_root / value)  # an absolute value stays as it is
    return Source(
        f"@{resolved.family}.{resolved.alias}",
        resolved.family,
        resolved.alias,
        fields,
        family_schema(resolved.family),
        tuple(resolved.warnings),
        _dsn_location(fields.get("dsn")),
    )


def _dsn_location(dsn: Any) -> dict[str, Any]:
    """host, port, database and user of a libpq connection string (never its password)."""
    if not isinstance(dsn, str) or not dsn:
        return {}
    try:
        import psycopg

        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception:  # an unusable dsn fails when connecting, with the driver's message
        return {}
    names = {"host": "host", "port": "port", "dbname": "database", "user": "user"}
    return {ours: str(info[theirs]) for theirs, ours in names.items() if info.get(theirs)}


def folder_source(path: Path, project_root: Path) -> Source:
    """A folder of CSV/Parquet files named by --path (no connection): alias '_path-<hash>'."""
    folder = (project_root / path).resolve()
    alias = "_path-" + hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return Source(f"--path {folder}", "filesystem", alias, {"base_dir": str(folder)})
