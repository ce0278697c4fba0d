"""Markdown for specs, config fields, connection aliases and steps, shared by hover and completion."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from osiris.runtime.contract import connections as rules

if TYPE_CHECKING:
    from osiris.compiler.connections import ConnectionAlias
    from osiris.compiler.lsp.context import StepOutline
    from osiris.compiler.registry import ComponentSpec, Registry
    from osiris.oml.ast import Param


def component_doc(spec: ComponentSpec) -> str:
    modes = ", ".join(sorted(spec.oml_modes))
    parts = [f"**{spec.title}** — `{spec.name}` ({spec.role})", spec.description, f"Modes: {modes}"]
    if spec.required_fields:
        parts.append("Required config: " + ", ".join(f"`{f}`" for f in spec.required_fields))
    if spec.connection_family:
        parts.append(f'Connection: `"@{spec.connection_family}.<alias>"`')
    return "\n\n".join(parts)


def type_of(schema: dict[str, Any]) -> str:
    """A short type name of a JSON Schema: string, integer, array of string, a | b…"""
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(map(str, kind))
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {type_of(schema['items'])}"
    if isinstance(kind, str):
        return kind
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list):
            return " | ".join(type_of(o) for o in options if isinstance(o, dict))
    if "enum" in schema:
        return "enum"
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return "any"


def scalar(value: Any) -> str:
    """A value as YAML would show it inline."""
    reserved = ("true", "false", "null", "yes", "no", "on", "off", "y", "n")
    if (
        isinstance(value, str)
        and re.fullmatch(r"[A-Za-z_][\w./-]*", value)
        and value.lower() not in reserved
    ):
        return value
    return json.dumps(value, ensure_ascii=False)


def field_doc(spec: ComponentSpec, name: str, parent: tuple[str, ...] = ()) -> str | None:
    """A config field's doc; parent: the object fields it is nested in (("paginator",))."""
    schema = spec.schema_at((*parent, name))
    if schema is None:
        return None
    required = " (required)" if name in (spec.schema_at(parent) or {}).get("required", ()) else ""
    shown = ".".join((*parent, name))
    parts = [f"**{shown}**: `{type_of(schema)}`{required} — config of `{spec.name}`"]
    if schema.get("description"):
        parts.append(str(schema["description"]))
    if "default" in schema:
        parts.append(f"Default: `{scalar(schema['default'])}`")
    if isinstance(schema.get("enum"), list):
        parts.append("Allowed: " + ", ".join(f"`{scalar(v)}`" for v in schema["enum"]))
    if not parent and name in spec.secret_fields:
        parts.append("Secret: keep it in osiris_connections.yaml, never in the pipeline.")
    override = None if parent else spec.connection_fields.get(name)
    if override and override != "allowed":
        parts.append(f"Comes from the connection (override: {override}).")
    return "\n\n".join(parts)


def public_fields(alias: ConnectionAlias, registry: Registry | None) -> dict[str, Any]:
    """Fields safe to show: no secret-looking names, no family secrets, no passwords in URLs."""
    schema = registry.connection_schema(alias.family) if registry is not None else None
    return rules.public_fields(alias.fields, rules.secret_fields(schema))


def connection_doc(alias: ConnectionAlias, file: str, registry: Registry | None) -> str:
    head = f"**@{alias.family}.{alias.alias}**" + (" (default)" if alias.default else "")
    lines = [f"- `{k}`: `{scalar(v)}`" for k, v in public_fields(alias, registry).items()]
    body = "\n".join(lines) if lines else "_no public fields_"
    return f"{head} — from `{file.rsplit('/', 1)[-1]}`\n\n{body}\n\n_Secrets are not shown._"


def step_doc(step: StepOutline, mode: str | None, spec: ComponentSpec | None) -> str:
    head = f"**step `{step.id}`** (line {step.start + 1})"
    if step.component is None:
        return head + "\n\n_no component yet_"
    what = f"`{step.component}`" + (f", mode `{mode}`" if mode else "")
    title = f" — {spec.title}" if spec is not None else ""
    return f"{head}: {what}{title}\n\nDownstream steps read its output as `${{{step.id}.df}}`."


def param_doc(param: Param) -> str:
    kind = param.type.value if param.type else "inferred"
    parts = [f"**param `{param.name.value}`**: `{kind}`"]
    if param.default is not None:
        parts.append(f"Default: `{scalar(param.default.to_python())}`")
    if param.enum is not None:
        parts.append("Allowed: " + ", ".join(f"`{scalar(v)}`" for v in param.enum))
    if param.description:
        parts.append(param.description)
    return "\n\n".join(parts)
