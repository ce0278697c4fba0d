"""Index of osiris_connections.yaml for the checker and editor: families, aliases and their spans."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osiris.oml.diagnostics import DiagnosticList, Suggestion
from osiris.oml.span import SourceText, Span
from osiris.oml.suggest import close_matches, did_you_mean, replacements
from osiris.oml.yamltree import YEntry, YMap, YScalar, inner_span, parse_yaml
from osiris.runtime.contract.config_file import read_config_text
from osiris.runtime.contract.connections import (
    DEFAULT_KEY,
    VARIABLE_REFERENCE,
    NoDefaultAlias,
    SchemaProblem,
    ValidationMode,
    coerce_scalars,
    default_alias,
    is_literal_secret,
    malformed_reference,
    marked_defaults,
    schema_problems,
    secret_fields,
    several_defaults_message,
)

SchemaFor = Callable[[str], dict[str, Any] | None]
Report = Callable[..., None]  # DiagnosticList.error or .warning, as the validation mode says


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
    path: Path, diagnostics: DiagnosticList | None = None, validation: ValidationMode = "warn"
) -> ConnectionsIndex | None:
    """Read aliases (never resolving ${VAR}); problems in the file go to diagnostics as OML040.
    A file that cannot be read at all raises ConfigFileError (a configuration error, exit 5)."""
    diagnostics = diagnostics if diagnostics is not None else DiagnosticList()
    text = read_config_text(path, "connections file")
    return index_connections(SourceText(str(path), text), diagnostics, validation=validation)


def index_connections(
    source: SourceText,
    diagnostics: DiagnosticList,
    schema_for: SchemaFor | None = None,
    validation: ValidationMode = "warn",
) -> ConnectionsIndex | None:
    """The file's aliases; its problems go to diagnostics with spans in the file: the shape
    (OML040), literal secrets (OML101), unclosed ${ (OML102), several defaults (OML103), fields
    the family's schema does not know (OML104) and other schema violations (OML105).
    schema_for: family -> connection schema (default: the installed specs). validation (the
    runtime's --validation switch): OML101/104/105 are warnings under warn, errors under strict,
    and not checked under off."""
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
    schema_for = schema_for or _installed_schema
    aliases: dict[str, dict[str, ConnectionAlias]] = {}
    for family_entry in connections.value.entries:
        family = str(family_entry.key.value)
        entries = aliases.setdefault(family, {})
        if not isinstance(family_entry.value, YMap):
            continue
        schema = schema_for(family)
        for alias_entry in family_entry.value.entries:
            alias = str(alias_entry.key.value)
            fields = alias_entry.value.to_python() if isinstance(alias_entry.value, YMap) else {}
            entries[alias] = ConnectionAlias(
                family, alias, alias_entry.key.span, fields, fields.get(DEFAULT_KEY) is True
            )
            if isinstance(alias_entry.value, YMap):
                _check_alias(source, family, alias, alias_entry, schema, diagnostics, validation)
        _check_defaults(family, family_entry.value, diagnostics)
    return ConnectionsIndex(source.file, aliases)


def _installed_schema(family: str) -> dict[str, Any] | None:
    from osiris.compiler.registry import load_registry

    return load_registry().connection_schema(family)


def _check_alias(
    source: SourceText,
    family: str,
    alias: str,
    alias_entry: YEntry,
    schema: dict[str, Any] | None,
    diagnostics: DiagnosticList,
    validation: ValidationMode,
) -> None:
    node = alias_entry.value
    assert isinstance(node, YMap)
    marked = secret_fields(schema)
    known = list((schema or {}).get("properties") or {})
    where = f"connections.{family}.{alias}"
    report = diagnostics.error if validation == "strict" else diagnostics.warning
    unclosed = False
    for entry in node.entries:
        name = str(entry.key.value)
        value = entry.value
        if isinstance(value, YScalar) and isinstance(value.value, str):
            offset = malformed_reference(value.value)
            if offset is not None:
                _unclosed_reference(source, where, name, value, offset, diagnostics)
                unclosed = True
                continue
        if validation == "off":
            continue
        if isinstance(value, YMap):  # http's auth, headers: secret members by dotted name
            for inner in value.entries:
                dotted = f"{name}.{inner.key.value}"
                if is_literal_secret(dotted, inner.value.to_python(), marked):
                    _literal_secret(family, where, dotted, inner, report)
        elif is_literal_secret(name, value.to_python(), marked, known):
            _literal_secret(family, where, name, entry, report)
        if schema is not None and known and name not in known:
            _unknown_field(family, where, name, entry, known, report)
    if schema is not None and validation != "off" and not unclosed:
        for problem in _schema_problems(node, schema):
            _schema_problem(family, where, problem, alias_entry, node, report)


def _schema_problems(node: YMap, schema: dict[str, Any]) -> list[SchemaProblem]:
    """The alias's schema violations as a run would see them, less the unknown fields (OML104)
    and what only the values of its ${VAR} references can decide (known at run time)."""
    fields = node.to_python()
    referenced = {
        name
        for name, value in fields.items()
        if isinstance(value, str) and any(m.group(1) for m in VARIABLE_REFERENCE.finditer(value))
    }
    return [
        p
        for p in schema_problems(coerce_scalars(fields, schema), schema)
        if p.rule != "additionalProperties"
        and (p.rule == "required" or not p.fields or not set(p.fields) <= referenced)
    ]


def _schema_problem(
    family: str,
    where: str,
    problem: SchemaProblem,
    alias_entry: YEntry,
    node: YMap,
    report: Report,
) -> None:
    field = node.get(problem.fields[0]) if len(problem.fields) == 1 else None
    span = (
        field.value.span
        if field is not None and problem.rule != "required"
        else alias_entry.key.span
    )
    report(
        "OML105",
        f"{where} does not match the {family} connection schema: {problem.message}",
        span,
        why=f"specs/connections/{family}.json says what a {family} connection needs; a run "
        "checks the connection against it before it connects (`--validation strict` refuses "
        "it, warn only warns).",
        fix="Add the missing fields or correct the value; values written as ${VAR} are "
        "checked at run time.",
    )


def _literal_secret(family: str, where: str, name: str, entry: YEntry, report: Report) -> None:
    variable = re.sub(r"[^A-Za-z0-9_]", "_", f"{family}_{name}").upper()
    report(
        "OML101",
        f"secret field '{name}' of {where} is written literally",
        entry.value.span,
        why="The connections file is shared and often committed; a secret belongs in the "
        "environment, a --secrets-file or the project's .env, referenced as ${VAR}. "
        "`--validation strict` (run, check, compile, connections) refuses it.",
        fix=f"Write `{name}: ${{{variable}}}` and set {variable} in the environment or .env.",
        example=f"# osiris_connections.yaml\n{name}: ${{{variable}}}\n# .env (not committed)\n"
        f"{variable}=...",
        masked=(entry.value.span,),
    )


def _unclosed_reference(
    source: SourceText,
    where: str,
    name: str,
    value: YScalar,
    offset: int,
    diagnostics: DiagnosticList,
) -> None:
    diagnostics.error(
        "OML102",
        f"'${{' in '{name}' of {where} is not a closed ${{VAR}} reference",
        inner_span(source, value, offset, offset + 2),
        why="A reference is ${VAR} or ${VAR:-default}; a '${' without its closing '}' (or "
        "with a name that is not letters, digits and '_') would otherwise be taken literally, "
        "and a half-written secret sent to the server.",
        fix="Close the reference with '}', or write '$${' for a literal '${'.",
        example=f"{name}: ${{{name.upper()}}}",
    )


def _check_defaults(family: str, node: YMap, diagnostics: DiagnosticList) -> None:
    flags = {
        str(e.key.value): flag
        for e in node.entries
        if isinstance(e.value, YMap) and (flag := e.value.get(DEFAULT_KEY)) is not None
    }
    marked = marked_defaults(
        {alias: {DEFAULT_KEY: f.value.to_python()} for alias, f in flags.items()}
    )
    for alias in marked[1:]:  # the first one may stay
        flag = flags[alias]
        diagnostics.error(
            "OML103",
            f"several {family} aliases are marked default",
            flag.span,
            why=f"{several_defaults_message(family, marked)}: '@{family}' would not say which "
            "one to use.",
            fix="Keep `default: true` on one alias only.",
            suggestions=(Suggestion("Remove `default: true`", "", flag.span),),
        )


def _unknown_field(
    family: str, where: str, name: str, entry: YEntry, known: list[str], report: Report
) -> None:
    matches = close_matches(name, known)
    report(
        "OML104",
        f"unknown field '{name}' in {where}",
        entry.key.span,
        why=f"A {family} connection has: {', '.join(sorted(known))}."
        + did_you_mean(matches)
        + " A run only warns about it (`--validation strict` refuses it).",
        fix="Correct the spelling, or remove the field.",
        suggestions=replacements(matches, entry.key.span),
    )
