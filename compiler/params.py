"""Param resolution: defaults < profile < OSIRIS_PARAM_<NAME> < --param, coerced to declared types."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from osiris.oml.ast import Document, Param
from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import Span
from osiris.oml.suggest import close_matches, did_you_mean
from osiris.oml.types import conforms, is_iso_date, type_of, with_article

ENV_PREFIX = "OSIRIS_PARAM_"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True, slots=True)
class ResolvedParam:
    name: str
    value: Any
    source: str  # "default" | "profile <name>" | "environment" | "--param"


def env_name(param: str) -> str:
    return ENV_PREFIX + param.upper().replace("-", "_")


def param_type(param: Param) -> str | None:
    """The declared type, else the type of the default; None when neither says."""
    if param.type is not None:
        return param.type.value
    value = param.default.to_python() if param.default is not None else None
    return None if value is None else type_of(value)


def coerce(text: str, kind: str | None) -> Any:
    """Turn a command-line or environment string into a value of the param's type."""
    if kind in (None, "string"):
        return text
    if kind == "integer":
        return int(text.strip())
    if kind == "number":
        number = float(text.strip())
        return (
            int(number)
            if number.is_integer() and "." not in text and "e" not in text.lower()
            else number
        )
    if kind == "date":
        day = text.strip()
        if not is_iso_date(day):
            raise ValueError("expected a date written YYYY-MM-DD")
        return day
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("expected true or false")
    value = json.loads(text)
    if kind == "array" and not isinstance(value, list):
        raise ValueError("expected a JSON list")
    if kind == "object" and not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def parse_cli_params(items: Sequence[str], diagnostics: DiagnosticList) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            diagnostics.error(
                "OML064",
                f"--param {item!r} is not NAME=VALUE",
                None,
                why="Each --param sets one param.",
                fix="Write --param NAME=VALUE.",
                example="omlc pipeline.oml -o build --param since=2024-06-01",
            )
            continue
        out[name.strip()] = value
    return out


def resolve_params(
    document: Document,
    profile: str | None,
    cli: Mapping[str, str],
    environ: Mapping[str, str],
    uses: Mapping[str, list[Span]],
    diagnostics: DiagnosticList,
) -> dict[str, ResolvedParam]:
    """Resolved value of every declared param (those without any value are left out)."""
    declared = {p.name.value: p for p in document.params}
    values: dict[str, ResolvedParam] = {}
    for name, param in declared.items():
        if param.default is not None:
            values[name] = ResolvedParam(name, param.default.to_python(), "default")
    if profile is not None:
        chosen = next((p for p in document.profiles if p.name.value == profile), None)
        if chosen is None:
            known = [p.name.value for p in document.profiles]
            diagnostics.error(
                "OML063",
                f"unknown profile '{profile}'",
                None,
                why=(
                    f"Profiles in this pipeline: {', '.join(known)}."
                    if known
                    else "This pipeline defines no profiles."
                )
                + did_you_mean(close_matches(profile, known)),
                fix="Use one of the pipeline's profiles, or drop --profile.",
            )
        else:
            for entry in chosen.params:
                values[str(entry.key.value)] = ResolvedParam(
                    str(entry.key.value), entry.value.to_python(), f"profile {profile}"
                )
    for name, param in declared.items():
        raw = environ.get(env_name(name))
        if raw is not None:
            _set_text(values, param, raw, "environment", f"${env_name(name)}", diagnostics)
    for name, raw in cli.items():
        given = declared.get(name)
        if given is None:
            matches = close_matches(name, declared)
            diagnostics.error(
                "OML062",
                f"--param {name}: the pipeline has no param '{name}'",
                None,
                why=(
                    f"Declared params: {', '.join(declared)}."
                    if declared
                    else "The pipeline declares no params."
                )
                + did_you_mean(matches),
                fix="Use a declared param name.",
            )
            continue
        _set_text(values, given, raw, "--param", f"--param {name}", diagnostics)
    for name, param in declared.items():
        resolved = values.get(name)
        kind = param_type(param)
        if resolved is None:
            spans = uses.get(name, [])
            if spans:
                diagnostics.error(
                    "OML060",
                    f"param '{name}' has no value",
                    spans[0],
                    why=f"'{name}' is used here but has no default, and no profile, {env_name(name)} or "
                    "--param sets it.",
                    fix=f"Pass --param {name}=VALUE, set {env_name(name)}, or give it a default.",
                )
            continue
        if not conforms(resolved.value, kind) or (
            param.enum is not None and resolved.value not in param.enum
        ):
            wanted = (
                f"one of {list(param.enum)}"
                if param.enum and conforms(resolved.value, kind)
                else with_article(kind)
            )
            spans = uses.get(name, [])
            diagnostics.error(
                "OML061",
                f"param '{name}' from {resolved.source} is {json.dumps(resolved.value, default=str)}, not {wanted}",
                spans[0] if spans else param.name.span,
                why=f"'{name}' is declared {kind}"
                + (f" with enum {list(param.enum)}" if param.enum else "")
                + ".",
                fix=f"Give '{name}' a valid value.",
            )
    return values


def _set_text(
    values: dict[str, ResolvedParam],
    param: Param,
    raw: str,
    source: str,
    label: str,
    diagnostics: DiagnosticList,
) -> None:
    name = param.name.value
    kind = param_type(param)
    try:
        values[name] = ResolvedParam(name, coerce(raw, kind), source)
    except ValueError as err:
        diagnostics.error(
            "OML061",
            f"{label}: {raw!r} is not {with_article(kind)} for param '{name}'",
            None,
            why=f"'{name}' is declared {kind} ({err}).",
            fix=f"Give {with_article(kind)}.",
        )
