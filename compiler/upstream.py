"""Upstream Osiris (0.5.7) config fields: warned about at check, normalised away when lowering.

A spec marks such a field `deprecated: true` with `x-upstream: {use: <our field>}` (another name
for one of ours), `x-upstream: {effect: none}` (a client-tuning field that does nothing here) or
`x-upstream: {effect: unsupported}` (it would change the rows read, and is not applied: an error,
never a silent full read).
The field's own schema still validates its value, so a bad `mode:` is a bad value, not an
unknown field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from osiris.compiler.locate import key_span
from osiris.oml.diagnostics import DiagnosticList, Suggestion
from osiris.oml.yamltree import YMap


def upstream_fields(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Upstream field name -> its x-upstream annotation."""
    return {
        name: prop["x-upstream"]
        for name, prop in schema.get("properties", {}).items()
        if isinstance(prop, dict) and isinstance(prop.get("x-upstream"), dict)
    }


def _one_or_list(prop: Any) -> bool:
    kind = prop.get("type") if isinstance(prop, dict) else None
    return isinstance(kind, list) and "string" in kind and "array" in kind


def normalise(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Config in our own terms: upstream names renamed, no-effect fields dropped, `id` -> [id]."""
    props = schema.get("properties", {})
    upstream = upstream_fields(schema)
    out: dict[str, Any] = {}
    for name, value in config.items():
        note = upstream.get(name)
        if note is not None:
            target = note.get("use")
            if target is None or target in config:
                continue  # no effect here, or ours given too (the checker reports that)
            name = str(target)
        if isinstance(value, str) and _one_or_list(props.get(name)):
            value = [value]
        out[name] = value
    return out


def check_upstream(
    component: str, schema: Mapping[str, Any], config_node: YMap, diagnostics: DiagnosticList
) -> None:
    """OML130 for an upstream name of one of our fields, OML131 for a field with no effect,
    OML132 when a step gives both names of one field, OML133 for one we do not apply."""
    for name, note in upstream_fields(schema).items():
        entry = config_node.get(name)
        if entry is None:
            continue
        span = key_span(config_node, (name,)) or entry.span
        target = note.get("use")
        if note.get("effect") == "unsupported":
            diagnostics.error(
                "OML133",
                f"'{name}' (an upstream Osiris field of {component}) is not supported here",
                span,
                why=str(schema["properties"][name].get("description", ""))
                or f"It would change what {component} reads, and it is not applied here.",
                fix=f"Remove '{name}' and say the same with our fields (see 'why').",
            )
        elif target is None:
            description = str(schema["properties"][name].get("description", ""))
            diagnostics.warning(
                "OML131",
                f"'{name}' (an upstream Osiris field of {component}) has no effect here",
                span,
                why=description
                or f"{component} accepts '{name}' for compatibility and ignores it.",
                fix=f"Remove '{name}'.",
                suggestions=(Suggestion(f"Remove '{name}'", "", entry.span),),
            )
        elif config_node.get(target) is not None:
            diagnostics.error(
                "OML132",
                f"'{name}' and '{target}' are the same field of {component}",
                span,
                why=f"'{name}' is upstream Osiris's name for '{target}'; a step gives it once.",
                fix=f"Remove '{name}' and keep '{target}'.",
                suggestions=(Suggestion(f"Remove '{name}'", "", entry.span),),
            )
        else:
            diagnostics.warning(
                "OML130",
                f"'{name}' is upstream Osiris's name for '{target}'",
                span,
                why=f"{component} reads it as '{target}', the name the manifest and the docs use.",
                fix=f"Rename '{name}' to '{target}'.",
                suggestions=(Suggestion(f"Rename to '{target}'", str(target), span, safe=True),),
            )
