"""Connection rules shared by check, run and the editor: references, secret fields, the default alias."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

ValidationMode = Literal["warn", "strict", "off"]
VALIDATION_MODES: tuple[ValidationMode, ...] = ("warn", "strict", "off")
VALIDATION_ENV = "OSIRIS_VALIDATION"
DEFAULT_KEY = "default"  # `default: true` marks a family's default alias; never a connection field
# Field names that hold secrets by convention, whatever the family schema says.
_SECRET_NAME = re.compile(r"pass|secret|token|key|dsn|credential|authoriz|cookie", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_DSN_PASSWORD = re.compile(r"(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^\s;]+)")
# A ${VAR} or ${VAR:-default} reference, or '$$' (a literal '$'); a bare '${' (the last branch)
# is one that is not closed or not well formed: an error wherever values are interpolated.
VARIABLE_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
# Where a step connects and as whom: a step that references a connection may never set these
# (the connections file is the trust boundary; docs/diagnostics.md, OML022). TLS settings too.
_LOCATION_FIELDS = frozenset(
    {
        "host", "hostname", "hostaddr", "port", "socket", "unix_socket", "service",
        "database", "dbname", "db", "dsn", "url", "uri",
        "user", "username", "password", "passwd", "passfile",
    }
)  # fmt: skip
_TLS_FIELD = re.compile(r"^(ssl|tls)", re.IGNORECASE)
# Connection fields a step may set for itself: how it talks to the server, not where or as whom.
STEP_SETTABLE_FIELDS = frozenset({"schema", "connect_timeout", "application_name", "charset"})
# The syntax of grammar/oml.lark's connection_ref (a test keeps the two in step).
_REF = re.compile(r"^@([a-z][a-z0-9_]*)(?:\.([A-Za-z0-9_][A-Za-z0-9_-]*))?$")


@dataclass(frozen=True, slots=True)
class ConnectionRef:
    """A parsed '@family.alias', or '@family' for the family's default alias."""

    family: str
    alias: str | None

    @classmethod
    def parse(cls, text: str) -> ConnectionRef | None:
        match = _REF.match(text)
        return cls(match.group(1), match.group(2)) if match else None

    def __str__(self) -> str:
        return f"@{self.family}" + (f".{self.alias}" if self.alias else "")


def secret_fields(schema: Mapping[str, Any] | None) -> frozenset[str]:
    """The fields a family schema marks "x-secret": true; those of an object field by dotted
    name (http's auth.token)."""
    props = (schema or {}).get("properties") or {}
    found = set()
    for name, sub in props.items():
        if not isinstance(sub, dict):
            continue
        if sub.get("x-secret") is True:
            found.add(name)
        for inner, spec in (sub.get("properties") or {}).items():
            if isinstance(spec, dict) and spec.get("x-secret") is True:
                found.add(f"{name}.{inner}")
    return frozenset(found)


def is_secret_field(name: str, marked: frozenset[str] = frozenset()) -> bool:
    """A connection field whose value is secret: marked in the family schema, or named like one
    (password, passwd, secret, token, api_key, dsn, credentials, ...)."""
    return name in marked or _SECRET_NAME.search(name) is not None


def public_fields(
    fields: Mapping[str, Any], marked: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The fields of a connection that are safe to show: no secret fields, no `default` marker,
    no credentials inside URLs (scheme://user:password@host)."""
    shown: dict[str, Any] = {}
    for name, value in fields.items():
        if name == DEFAULT_KEY or is_secret_field(name, marked):
            continue
        if isinstance(value, Mapping):  # http's auth and headers: their secret members hidden
            value = {k: v for k, v in value.items() if not is_secret_field(f"{name}.{k}", marked)}
        shown[name] = _without_passwords(value) if isinstance(value, str) else value
    return shown


def _without_passwords(text: str) -> str:
    """text with the credentials of a URL and the password of a DSN ('password=...') hidden."""
    found = embedded_passwords(text)
    text = _USERINFO.sub("***@", text)
    for password in sorted(found, key=len, reverse=True):
        text = text.replace(password, "***")
    return text


def is_pinned_field(name: str, connection_fields: Collection[str] = ()) -> bool:
    """A field that a step referencing a connection may not set: where it connects (host, port,
    database, dsn, url, socket...), as whom (user, password), TLS (ssl*, tls*), and every other
    field of the connection itself except STEP_SETTABLE_FIELDS (schema, connect_timeout...)."""
    if name in STEP_SETTABLE_FIELDS:
        return False
    return (
        name in _LOCATION_FIELDS or _TLS_FIELD.match(name) is not None or name in connection_fields
    )


def pinned_overrides(
    config: Mapping[str, Any], connection_fields: Collection[str] = ()
) -> list[str]:
    """The fields of a step's config (that references a connection) which the connection pins;
    connection_fields: the fields its family's schema defines and the connection has."""
    return sorted(
        str(name)
        for name in config
        if name != "connection" and is_pinned_field(str(name), connection_fields)
    )


def malformed_reference(text: str) -> int | None:
    """The offset of the first '${' in text that is not a closed ${VAR} or ${VAR:-default}
    reference (write '$${' for a literal '${'); None when there is none."""
    for match in VARIABLE_REFERENCE.finditer(text):
        if match.group(0) == "${":
            return match.start()
    return None


def embedded_passwords(text: str) -> list[str]:
    """Passwords inside a URL/DSN ('scheme://user:pw@host', 'password=pw ...')."""
    found: list[str] = []
    if "://" in text:
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
    for match in _DSN_PASSWORD.finditer(text):
        raw = match.group(1)
        found.append(raw)
        if len(raw) >= 2 and raw[0] in "'\"" and raw[-1] == raw[0]:
            found.append(raw[1:-1])
    return [f for f in found if f]


def is_literal_secret(
    name: str, value: Any, marked: frozenset[str] = frozenset(), defined: Collection[str] = ()
) -> bool:
    """A secret field written literally in the connections file instead of as ${VAR}: a value
    without any reference. A URL or DSN without a reference counts only when it holds a password.
    A field the family's schema defines (`defined`) is secret only when the schema marks it (so
    `ssl_key`, a file path, is not)."""
    secret = name in marked or (name not in defined and is_secret_field(name))
    if not secret or value is None or value == "" or isinstance(value, bool):
        return False
    if not isinstance(value, str):
        return not isinstance(value, (dict, list))
    if any(m.group(1) for m in VARIABLE_REFERENCE.finditer(value)):
        return False
    if "://" in value or "=" in value:
        return bool(embedded_passwords(value))
    return True


def literal_secrets(
    fields: Mapping[str, Any], marked: frozenset[str] = frozenset(), defined: Collection[str] = ()
) -> list[str]:
    """The secret fields written literally (is_literal_secret), members of an object field
    (auth.token, headers.Authorization) by dotted name."""
    found = []
    for name, value in fields.items():
        if isinstance(value, Mapping):
            found += [
                f"{name}.{k}"
                for k, v in value.items()
                if is_literal_secret(f"{name}.{k}", v, marked)
            ]
        elif is_literal_secret(str(name), value, marked, defined):
            found.append(str(name))
    return found


class NoDefaultAlias(LookupError):
    """`@family` names no single alias; the message says why and what to do."""

    def __init__(self, message: str, marked: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.marked = marked  # the aliases marked default, when several are


def marked_defaults(aliases: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The aliases marked `default: true` (more than one is an error in the connections file)."""
    return sorted(a for a, fields in aliases.items() if fields.get(DEFAULT_KEY) is True)


def several_defaults_message(family: str, marked: Collection[str]) -> str:
    return f"several {family} aliases are marked default: {', '.join(marked)}; mark only one"


def default_alias(family: str, aliases: Mapping[str, Mapping[str, Any]]) -> str:
    """The alias `@family` means: the one marked `default: true`, else one named `default`,
    else the only alias. NoDefaultAlias when that is none or ambiguous."""
    marked = marked_defaults(aliases)
    if len(marked) > 1:
        raise NoDefaultAlias(several_defaults_message(family, marked), tuple(marked))
    if marked:
        return marked[0]
    if DEFAULT_KEY in aliases:
        return DEFAULT_KEY
    if len(aliases) == 1:
        return next(iter(aliases))
    known = ", ".join(sorted(aliases)) or "none"
    raise NoDefaultAlias(
        f"no default {family} alias; mark one with 'default: true' or name it (known: {known})"
    )


def parse_validation_mode(value: str | None, environ: Mapping[str, str]) -> ValidationMode:
    """The --validation value, else $OSIRIS_VALIDATION, else 'warn'; ValueError for another
    value. The same switch for run, check, compile, discover and connections: strict refuses a
    connection that fails its family's schema or holds a literal secret, warn reports it, off
    skips those checks."""
    chosen = (value or environ.get(VALIDATION_ENV) or "warn").strip().lower()
    for mode in VALIDATION_MODES:
        if chosen == mode:
            return mode
    raise ValueError(f"validation mode {chosen!r} is not one of warn, strict, off")


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One way a connection's fields fail its family's schema; message never quotes a value."""

    rule: str  # the JSON Schema keyword: required, additionalProperties, type, enum...
    fields: tuple[str, ...]  # the fields concerned (empty: the connection as a whole)
    message: str


def coerce_scalars(fields: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """'3306' -> 3306 where the schema wants an integer (values from ${VAR} are strings)."""
    props = schema.get("properties") or {}
    out = dict(fields)
    for name, value in fields.items():
        spec = props.get(name)
        if not isinstance(value, str) or not isinstance(spec, dict):
            continue
        wanted = _types(spec)
        if "string" in wanted:
            continue
        if "integer" in wanted and re.fullmatch(r"[+-]?\d+", value.strip()):
            out[name] = int(value)
        elif "number" in wanted:
            with contextlib.suppress(ValueError):
                out[name] = float(value)
        elif "boolean" in wanted and value.strip().lower() in ("true", "false"):
            out[name] = value.strip().lower() == "true"
    return out


def schema_problems(fields: Mapping[str, Any], schema: Mapping[str, Any]) -> list[SchemaProblem]:
    """The connection's violations of its family's schema, described by field and rule only."""
    import jsonschema  # ~55 ms of start-up: only where connections are validated

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(fields)), key=lambda e: list(e.path)):
        path = tuple(str(p) for p in error.absolute_path)
        field = ".".join(path) or "(connection)"
        if error.validator == "required":
            missing = tuple(r for r in error.validator_value if r not in fields)
            message = f"missing required field(s): {', '.join(missing)}"
            problems.append(SchemaProblem("required", missing, message))
        elif error.validator == "additionalProperties":
            allowed = set((schema.get("properties") or {}).keys())
            extra = tuple(sorted(k for k in fields if k not in allowed))
            message = f"unknown field(s): {', '.join(extra)}"
            problems.append(SchemaProblem("additionalProperties", extra, message))
        elif error.validator == "anyOf" and not path and _all_required(error.validator_value):
            choices = " or ".join(", ".join(sub["required"]) for sub in error.validator_value)
            problems.append(SchemaProblem("anyOf", (), f"needs {choices}"))
        elif error.validator in ("type", "enum", "const", "pattern", "format"):
            message = f"field {field}: must match {error.validator} {error.validator_value}"
            problems.append(SchemaProblem(str(error.validator), path[:1], message))
        else:
            message = f"field {field}: fails '{error.validator}'"
            problems.append(SchemaProblem(str(error.validator), path[:1], message))
    return problems


def _all_required(alternatives: Any) -> bool:
    return isinstance(alternatives, list) and all(
        isinstance(a, dict) and set(a) == {"required"} for a in alternatives
    )


def _types(spec: Mapping[str, Any]) -> set[Any]:
    """The JSON types a property allows, its anyOf/oneOf branches included (a ${VAR} branch,
    "$ref": "#/$defs/env", stands for the unresolved text and is not a type of the value)."""
    types = spec.get("type")
    found = set(types) if isinstance(types, list) else {types}
    for branch in [*(spec.get("anyOf") or ()), *(spec.get("oneOf") or ())]:
        if isinstance(branch, dict) and "$ref" not in branch:
            found |= _types(branch)
    return found - {None}
