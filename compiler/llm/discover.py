"""The one seam to discovery: cached, digest-verified catalogs with masked samples, for --discover."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from osiris.compiler.llm.client import LlmError
from osiris.runtime.catalog.model import Catalog

SAMPLES = 2  # rows per table; masked before they can reach a prompt


def discovered_catalogs(
    refs: Sequence[str],
    *,
    project_root: Path,
    connections_path: Path | None,
    environ: Mapping[str, str],
) -> list[tuple[str, Catalog]]:
    """(ref, catalog) per --discover alias, every sample masked (PII, secrets)."""
    from osiris.compiler.discovery.service import discover, shown_tables

    out = []
    for ref in refs:
        try:
            result = discover(
                ref,
                project_root=project_root,
                connections_path=connections_path,
                environ=environ,
                samples=SAMPLES,
            )
        except Exception as err:  # the service's own errors carry a one-line, secret-free text
            raise LlmError(f"discovery of {ref} failed: {' '.join(str(err).split())}") from None
        catalog = result.catalog
        tables = shown_tables(result)
        out.append((ref, Catalog(catalog.family, tables, catalog.server_version, catalog.partial)))
    return out
