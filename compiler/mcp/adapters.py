"""Lazy bridges to modules that may not be in this build yet: connections doctor, discovery, LLM context.

Each returns JSON-able data or raises ToolFailure; nothing here is imported until a tool needs it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from osiris.compiler.mcp.project import Project, ToolFailure
from osiris.runtime.contract.connections import VARIABLE_REFERENCE, ConnectionRef

PING_TIMEOUT = 5.0


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


def connections_doctor(
    project: Project, aliases: Mapping[str, Mapping[str, Mapping[str, Any]]], wanted: str | None
) -> list[dict[str, Any]]:
    """Connect to each alias (or the one wanted names) and say whether it answers."""
    targets = _targets(aliases, wanted)
    ping_module = _optional("osiris.runtime.catalog.ping")
    ping = getattr(ping_module, "ping", None) if ping_module is not None else None
    if ping is None:
        raise ToolFailure(
            "connections_doctor is not available in this build (osiris.runtime.catalog.ping "
            "is missing); run 'osiris connections doctor' instead"
        )
    report = []
    for family, alias in targets:
        fields = aliases[family][alias]
        missing = sorted(
            {
                m.group(1)
                for value in fields.values()
                if isinstance(value, str)
                for m in VARIABLE_REFERENCE.finditer(value)
                if m.group(1) and m.group(2) is None and not project.environ.get(m.group(1))
            }
        )
        entry: dict[str, Any] = {"connection": f"@{family}.{alias}"}
        if missing:
            entry |= {"ok": False, "error": f"unset environment variables: {', '.join(missing)}"}
        else:
            try:
                ping(family, _expanded(fields, project.environ), PING_TIMEOUT)
                entry["ok"] = True
            except Exception as err:  # the drivers' ConnectionFailure, already redacted
                entry |= {"ok": False, "error": str(err).splitlines()[0] if str(err) else ""}
        report.append(entry)
    return report


def _targets(aliases: Mapping[str, Mapping[str, Any]], wanted: str | None) -> list[tuple[str, str]]:
    if not wanted:
        return [(f, a) for f in sorted(aliases) for a in sorted(aliases[f])]
    ref = ConnectionRef.parse(wanted if wanted.startswith("@") else f"@{wanted}")
    if ref is None:
        raise ToolFailure(f"{wanted!r} is not a connection reference such as @mysql.shop")
    entries = aliases.get(ref.family, {})
    if ref.alias is None and len(entries) == 1:
        return [(ref.family, next(iter(entries)))]
    if ref.alias is None or ref.alias not in entries:
        known = ", ".join(f"@{ref.family}.{a}" for a in sorted(entries)) or "none"
        raise ToolFailure(f"no connection {ref} in the connections file (known: {known})")
    return [(ref.family, ref.alias)]


def _expanded(fields: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    def expand(match: re.Match[str]) -> str:
        if match.group(1):
            return environ.get(match.group(1)) or match.group(2) or ""
        return "$" if match.group(0) == "$$" else match.group(0)

    return {
        name: VARIABLE_REFERENCE.sub(expand, value) if isinstance(value, str) else value
        for name, value in fields.items()
        if name != "default"
    }


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
