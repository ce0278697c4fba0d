"""Lazy bridges to modules that may not be in this build yet: connections doctor, discovery, LLM context.

Each returns JSON-able data or raises ToolFailure; nothing here is imported until a tool needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from osiris.compiler.mcp.project import Project, ToolFailure


def _optional(module: str) -> Any | None:
    """The module, or None when this build does not have it (a missing dependency of it still raises)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            return None
        raise


def llm_context() -> dict[str, Any] | None:
    """The compact LLM context (registry summary, rules), when osiris.compiler.llm is installed."""
    llm = _optional("osiris.compiler.llm")
    build = getattr(llm, "build_context", None) if llm is not None else None
    if build is None:
        return None
    context = build()
    return context if isinstance(context, dict) else {"text": str(context)}


def discover(
    project: Project,
    connection: str,
    *,
    tables: Sequence[str] | None,
    samples: int,
    refresh: bool,
) -> dict[str, Any]:
    """`osiris discover` from the same cache, samples masked."""
    service = _optional("osiris.compiler.discovery.service")
    mask = _optional("osiris.compiler.discovery.mask")
    if service is None or mask is None:
        raise ToolFailure(
            "discovery_request is not available in this build (osiris.compiler.discovery is "
            "missing); upgrade Osiris"
        )
    from dataclasses import replace

    from osiris.runtime.catalog.model import catalog_to_json

    result = service.discover(
        connection,
        project_root=project.root,
        connections_path=project.connections_path,
        environ=project.environ,
        tables=list(tables) if tables else None,
        samples=samples,
        refresh=refresh,
    )
    catalog = result.catalog
    masked = tuple(mask.mask_samples(t) for t in catalog.tables)
    return {
        "connection": connection,
        "cache": str(getattr(result, "cache_status", "")) or None,
        "catalog": catalog_to_json(replace(catalog, tables=masked)),
    }
