"""Index of osiris_connections.yaml for the checker and editor: families, aliases and their spans."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import SourceText, Span
from osiris.oml.yamltree import YMap, parse_yaml
from osiris.runtime.contract.config_file import read_config_text
from osiris.runtime.contract.connections import (
    DEFAULT_KEY,
    NoDefaultAlias,
    default_alias,
)


@dataclass(frozen=True, slots=True)
class ConnectionAlias:
    family: str
    alias: str
    span: Span  # the alias key in the connections file
    fields: dict[str, Any]  # raw values, ${VAR} placeholders unresolved
    default: bool


@dataclass(frozen=True, slots=True)
class ConnectionsIndex:
    file: str
    aliases: dict[str, dict[str, ConnectionAlias]]  # family -> alias -> entry

    def families(self) -> list[str]:
        return sorted(self.aliases)

    def lookup(self, family: str, alias: str | None) -> ConnectionAlias | None:
        """The entry `@family.alias` (or `@family`) names; None when there is no such entry."""
        if alias is None:
            found = self._default(family)
            if isinstance(found, NoDefaultAlias):
                return None
            alias = found
        return self.aliases.get(family, {}).get(alias)

    def default_problem(self, family: str) -> NoDefaultAlias | None:
        """Why `@family` names no alias (None when it names one)."""
        found = self._default(family)
        return found if isinstance(found, NoDefaultAlias) else None

    def _default(self, family: str) -> str | NoDefaultAlias:
        entries = self.aliases.get(family, {})
        try:
            return default_alias(family, {a: e.fields for a, e in entries.items()})
        except NoDefaultAlias as err:
            return err


def load_connections_index(
    path: Path, diagnostics: DiagnosticList | None = None
) -> ConnectionsIndex | None:
    """Read aliases (never resolving ${VAR}); problems in the file go to diagnostics as OML040.
    A file that cannot be read at all raises ConfigFileError (a configuration error, exit 5)."""
    diagnostics = diagnostics if diagnostics is not None else DiagnosticList()
    text = read_config_text(path, "connections file")
    return index_connections(SourceText(str(path), text), diagnostics)


def index_connections(source: SourceText, diagnostics: DiagnosticList) -> ConnectionsIndex | None:
    local = DiagnosticList()
    root = parse_yaml(source, local)
    connections = root.get("connections") if isinstance(root, YMap) else None
    if local.has_errors or connections is None or not isinstance(connections.value, YMap):
        diagnostics.error(
            "OML040",
            f"{Path(source.file).name} is not a valid connections file",
            local.items[0].span if local.items else (root.span if root else None),
            why="A connections file is a mapping with a 'connections' key: family -> alias -> fields.",
            fix="Fix the file so that it has the documented shape.",
            example="connections:\n  mysql:\n    shop:\n      host: db.internal\n"
            "      password: ${MYSQL_PASSWORD}",
        )
        return None
    aliases: dict[str, dict[str, ConnectionAlias]] = {}
    for family_entry in connections.value.entries:
        family = str(family_entry.key.value)
        entries = aliases.setdefault(family, {})
        if not isinstance(family_entry.value, YMap):
            continue
        for alias_entry in family_entry.value.entries:
            alias = str(alias_entry.key.value)
            fields = alias_entry.value.to_python() if isinstance(alias_entry.value, YMap) else {}
            entries[alias] = ConnectionAlias(
                family, alias, alias_entry.key.span, fields, fields.get(DEFAULT_KEY) is True
            )
    return ConnectionsIndex(source.file, aliases)
