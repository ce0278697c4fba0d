"""Connection rules shared by check, run and the editor: references, secret fields, the default alias."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_KEY = "default"  # `default: true` marks a family's default alias; never a connection field
# Field names that hold secrets by convention, whatever the family schema says.
_SECRET_NAME = re.compile(r"pass|secret|token|key|dsn|credential", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
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
    """The fields a family schema marks "x-secret": true."""
    props = (schema or {}).get("properties") or {}
    return frozenset(
        name for name, sub in props.items() if isinstance(sub, dict) and sub.get("x-secret") is True
    )


def is_secret_field(name: str, marked: frozenset[str] = frozenset()) -> bool:
    """A connection field whose value is secret: marked in the family schema, or named like one
    (password, passwd, secret, token, api_key, dsn, credentials, ...)."""
    return name in marked or _SECRET_NAME.search(name) is not None


def public_fields(
    fields: Mapping[str, Any], marked: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The fields of a connection that are safe to show: no secret fields, no `default` marker,
    no credentials inside URLs (scheme://user:password@host)."""
    return {
        name: _USERINFO.sub("***@", value) if isinstance(value, str) else value
        for name, value in fields.items()
        if name != DEFAULT_KEY and not is_secret_field(name, marked)
    }


class NoDefaultAlias(LookupError):
    """`@family` names no single alias; the message says why and what to do."""

    def __init__(self, message: str, marked: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.marked = marked  # the aliases marked default, when several are


def default_alias(family: str, aliases: Mapping[str, Mapping[str, Any]]) -> str:
    """The alias `@family` means: the one marked `default: true`, else one named `default`,
    else the only alias. NoDefaultAlias when that is none or ambiguous."""
    marked = sorted(a for a, fields in aliases.items() if fields.get(DEFAULT_KEY) is True)
    if len(marked) > 1:
        raise NoDefaultAlias(
            f"several {family} aliases are marked default: {', '.join(marked)}; mark only one",
            tuple(marked),
        )
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
