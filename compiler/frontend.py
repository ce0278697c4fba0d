"""The front half orchestrator: read → parse → check, returning the AST, context and diagnostics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from osiris.compiler.connections import ConnectionsIndex, load_connections_index
from osiris.oml.ast import Document
from osiris.oml.diagnostics import Diagnostic, DiagnosticList, Severity
from osiris.oml.parser import mention_merges, parse
from osiris.oml.span import SourceText
from osiris.runtime.contract.connections import ValidationMode

if TYPE_CHECKING:
    from osiris.compiler.check import CheckContext
    from osiris.compiler.check_schema import Catalogs
    from osiris.compiler.registry import Registry


@dataclass(frozen=True, slots=True)
class CheckResult:
    file: str
    source: SourceText
    document: Document | None
    context: CheckContext | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def check_text(
    text: str,
    file: str = "<string>",
    *,
    registry: Registry | None = None,
    connections: ConnectionsIndex | None = None,
    catalogs: Catalogs | None = None,
) -> CheckResult:
    """Parse and check OML source text; catalogs (connection -> discovered catalog) turn on the
    schema-aware checks (see schema_catalogs)."""
    from osiris.compiler.check import check
    from osiris.compiler.registry import load_registry

    diagnostics = DiagnosticList()
    document, _ = parse(text, file, diagnostics)
    context = None
    if document is not None:
        context = check(
            document, registry or load_registry(), diagnostics, connections, catalogs=catalogs
        )
    source = document.source if document is not None else SourceText(file, text)
    found = diagnostics.sorted()
    if document is not None and document.merges:
        found = mention_merges(found, document.merges)
    return CheckResult(file, source, document, context, tuple(found))


def read_source(path: Path, display: str) -> tuple[str | None, Diagnostic | None]:
    """File text, or an OML000 diagnostic when it cannot be read as UTF-8."""
    from osiris.oml.span import Position, Span

    try:
        data = path.read_bytes()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return None, Diagnostic(
            "OML000",
            Severity.ERROR,
            f"cannot read {display}: {reason}",
            None,
            why="The file could not be opened.",
            fix="Check the path and its permissions.",
        )
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        prefix = data[: err.start]
        line = prefix.count(b"\n") + 1
        column = len(prefix[prefix.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        at = Position(line, column, err.start)
        return None, Diagnostic(
            "OML000",
            Severity.ERROR,
            f"{display} is not UTF-8 text (invalid byte 0x{data[err.start]:02x})",
            Span(display, at, Position(line, column + 1, err.start + 1)),
            why="OML files are UTF-8 encoded YAML.",
            fix="Save the file as UTF-8.",
        )


def check_file(
    path: Path,
    display: str | None = None,
    *,
    registry: Registry | None = None,
    connections: ConnectionsIndex | None = None,
    catalogs: Catalogs | None = None,
) -> CheckResult:
    display = display or str(path)
    text, problem = read_source(path, display)
    if text is None:
        assert problem is not None
        return CheckResult(display, SourceText(display, ""), None, None, (problem,))
    return check_text(text, display, registry=registry, connections=connections, catalogs=catalogs)


def load_connections(
    path: Path | None, validation: ValidationMode = "warn"
) -> tuple[ConnectionsIndex | None, list[Diagnostic]]:
    if path is None:
        return None, []
    diagnostics = DiagnosticList()
    index = load_connections_index(path, diagnostics, validation)
    return index, diagnostics.sorted()


SCHEMA_MODES = ("cached", "live", "off")


def schema_catalogs(
    mode: str, start: Path, connections_path: Path | None, environ: Mapping[str, str]
) -> Catalogs | None:
    """The catalogs the schema-aware checks use for a pipeline at start: "cached" reads
    discovery cache entries (never connects), "live" discovers through the cache, "off" is None,
    which turns the checks off."""
    if mode == "off":
        return None
    from osiris.compiler.discovery.lookup import catalog_lookup
    from osiris.runtime.contract.project import project_dir

    return catalog_lookup(
        "live" if mode == "live" else "cached",
        project_root=project_dir(start),
        connections_path=connections_path,
        environ=environ,
    )
