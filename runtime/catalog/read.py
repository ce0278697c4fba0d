"""One entry for every family: read a catalog, or its cheap digest, from resolved connection fields."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from osiris.runtime.catalog.errors import CatalogError
from osiris.runtime.catalog.model import Catalog
from osiris.runtime.contract.exits import ExitCode

# connection family -> the module under osiris.runtime.catalog that reads it
FAMILY_MODULES = {
    "mysql": "mysql",
    "postgres": "postgres",
    "supabase": "postgres",
    "duckdb": "duckdb",
    "filesystem": "files",
}
FAMILIES = tuple(FAMILY_MODULES)


def _module(family: str) -> Any:
    name = FAMILY_MODULES.get(family)
    if name is None:
        raise CatalogError(
            f"discovery does not support the {family} family (supported: {', '.join(FAMILIES)})",
            ExitCode.CONFIGURATION,
        )
    return importlib.import_module(f"osiris.runtime.catalog.{name}")


def read_catalog(
    family: str,
    fields: Mapping[str, Any],
    *,
    tables: Sequence[str] | None = None,
    schema: str | None = None,
    samples: int = 0,
) -> Catalog:
    """The catalog of a connection; CatalogError (one secret-free line, with its exit code)."""
    catalog: Catalog = _module(family).read_catalog(
        fields, tables=tables, schema=schema, samples=samples
    )
    return catalog if catalog.family == family else _as_family(catalog, family)


def catalog_digest(
    family: str,
    fields: Mapping[str, Any],
    *,
    tables: Sequence[str] | None = None,
    schema: str | None = None,
) -> str:
    """One cheap query whose result changes whenever the selected tables' shape changes."""
    return str(_module(family).catalog_digest(fields, tables=tables, schema=schema))


def _as_family(catalog: Catalog, family: str) -> Catalog:
    from dataclasses import replace

    return replace(catalog, family=family)
