"""Config against a component's configSchema and constraints, as friendly diagnostics at the right span."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from osiris.compiler.locate import key_span, node_at
from osiris.oml.diagnostics import DiagnosticList, Suggestion
from osiris.oml.span import Span
from osiris.oml.suggest import close_matches, did_you_mean, replacements
from osiris.oml.types import describe, phrase
from osiris.oml.yamltree import YMap

# Config field names people and models write for one of ours (no spelling would find it).
CONFUSED_FIELDS = {"sql": "query"}


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _field_name(path: Iterable[Any]) -> str:
    parts = list(path)
    if not parts:
        return "config"
    out = str(parts[0])
    for part in parts[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _field_doc(schema: dict[str, Any], name: str) -> str:
    prop = schema.get("properties", {}).get(name, {})
    return str(prop.get("description", ""))


def _example_value(schema: dict[str, Any], name: str) -> str:
    prop = schema.get("properties", {}).get(name, {})
    if "default" in prop:
        return f"{name}: {_show(prop['default'])}"
    if "enum" in prop:
        return f"{name}: {prop['enum'][0]}"
    examples = prop.get("examples")
    if examples:
        return f"{name}: {_show(examples[0])}"
    kind = prop.get("type")
    sample = {"string": "...", "integer": "1", "boolean": "true", "array": "[...]"}.get(
        kind if isinstance(kind, str) else "", "..."
    )
    return f"{name}: {sample}"


def check_config(
    component: str,
    schema: dict[str, Any],
    validator: Any,
    config_node: YMap,
    config: dict[str, Any],
    skip: set[tuple[Any, ...]],
    diagnostics: DiagnosticList,
) -> set[str]:
    """Validate one step's config; returns the top-level fields that had errors.

    Errors at paths in `skip` (values that come from params, or that a dedicated check
    reports better) are left out.
    """
    failed: set[str] = set()
    for error in validator.iter_errors(config):
        path = tuple(error.absolute_path)
        if any(path[: len(d)] == d for d in skip):
            continue
        if path:
            failed.add(str(path[0]))
        _report(component, schema, error, path, config_node, diagnostics)
    return failed


def _report(
    component: str,
    schema: dict[str, Any],
    error: Any,
    path: tuple[Any, ...],
    config_node: YMap,
    diagnostics: DiagnosticList,
) -> None:
    kind = error.validator
    node, _ = node_at(config_node, path)
    field = _field_name(path)
    if kind == "additionalProperties":
        props = (error.schema or {}).get("properties", {})
        allowed = [k for k, v in props.items() if not (isinstance(v, dict) and v.get("deprecated"))]
        extras = [k for k in (error.instance or {}) if k not in props]
        for extra in extras:
            span = key_span(config_node, (*path, extra)) or node.span
            matches = close_matches(str(extra), allowed)
            confused = CONFUSED_FIELDS.get(str(extra), "")
            if confused in allowed and confused not in (error.instance or {}):
                matches = [confused]
            diagnostics.error(
                "OML017",
                f"unknown config field '{extra}' for {component}",
                span,
                why=f"{component} accepts: {', '.join(sorted(allowed))}." + did_you_mean(matches),
                fix="Remove the field or correct its spelling "
                f"(`osiris components spec {component}` lists every field).",
                suggestions=(Suggestion(f"Rename to '{confused}'", confused, span, safe=True),)
                if matches == [confused]
                else replacements(matches, span, word=str(extra)),
            )
        return
    if kind == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        for name in missing:
            doc = _field_doc(error.schema or {}, name)
            example = _example_value(error.schema or {}, name)
            shown = _field_name((*path, name))  # incremental.cursor_path when nested
            diagnostics.error(
                "OML018",
                f"{component} needs config field '{shown}'",
                (key_span(config_node, path) if path else None) or config_node.span,
                why=(f"'{shown}': {doc}" if doc else f"'{shown}' is required by {component}."),
                fix=f"Add '{name}' to '{_field_name(path)}'."
                if path
                else f"Add '{name}' to the step's config.",
                example=f"{_field_name(path)}: {{{example}}}" if path else example,
            )
        return
    span = (key_span(config_node, path) if isinstance(node, YMap) and path else None) or node.span
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        # "true or false": what YAML users type, where "a boolean" invites `yes`/`on`
        wanted = " or ".join("true or false" if n == "boolean" else phrase(n) for n in names)
        diagnostics.error(
            "OML016",
            f"config field '{field}' must be {wanted}, not {describe(error.instance)}",
            node.span,
            why=f"{component} reads '{field}' as {wanted}.",
            fix=f"Write '{field}' as {wanted}"
            + (" (quote it to make it a string)" if "string" in names else "")
            + ".",
        )
        return
    if kind == "enum":
        allowed = [str(v) for v in error.validator_value]
        matches = close_matches(str(error.instance), allowed)
        diagnostics.error(
            "OML019",
            f"{_show(error.instance)} is not a valid value for '{field}'",
            node.span,
            why=f"'{field}' is one of: {', '.join(allowed)}." + did_you_mean(matches),
            fix="Use one of the allowed values.",
            suggestions=replacements(matches, node.span, word=str(error.instance)),
        )
        return
    diagnostics.error(
        "OML020",
        f"config field '{field}' {_constraint_text(kind, error)}",
        span,
        why=_field_doc(schema, str(path[0])) if path else f"{component}'s config has a rule here.",
        fix=f"Change '{field}' to satisfy the rule.",
    )


def _constraint_text(kind: str, error: Any) -> str:
    value = error.validator_value
    texts = {
        "minimum": f"must be at least {value}",
        "maximum": f"must be at most {value}",
        "exclusiveMinimum": f"must be greater than {value}",
        "exclusiveMaximum": f"must be less than {value}",
        "minLength": f"must have at least {value} character(s)",
        "maxLength": f"must have at most {value} characters",
        "minItems": f"must list at least {value} item(s)",
        "maxItems": f"must list at most {value} items",
        "uniqueItems": "must not list the same item twice",
        "pattern": f"must match the pattern {value}",
        "const": f"must be {_show(value)}",
        "minProperties": f"must have at least {value} entr(ies)",
        "format": f"must be a valid {value}",
    }
    return texts.get(kind, "does not match any allowed form")


def check_constraints(
    component: str,
    constraints: Iterable[dict[str, Any]],
    config_node: YMap,
    config: dict[str, Any],
    step_span: Span,
    diagnostics: DiagnosticList,
    failed_fields: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Spec constraints: when the `when` fields match, the config must satisfy `must`.

    A constraint about a field that already failed its schema is not reported again.
    """
    for constraint in constraints:
        when = constraint.get("when") or {}
        if any(config.get(k) != v for k, v in when.items()):
            continue
        target = constraint.get("path")
        if target in failed_fields:
            continue
        if _constraint_validator(json.dumps(constraint.get("must") or {}, sort_keys=True)).is_valid(
            config
        ):
            continue
        span = None
        if target:
            span = key_span(config_node, (target,))
        if span is None:
            span = step_span if config_node.span == step_span else config_node.span
            for key in when:
                span = key_span(config_node, (key,)) or span
        diagnostics.error(
            "OML021",
            str(constraint.get("error") or f"{component} config breaks one of its rules"),
            span,
            why=f"{component} requires this"
            + (" when " + ", ".join(f"{k} is {_show(v)}" for k, v in when.items()) if when else "")
            + ".",
            fix="Change the config so that it satisfies the rule.",
        )


@functools.lru_cache(maxsize=256)
def _constraint_validator(must: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(must))
