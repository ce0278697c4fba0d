"""JSON types as OML names them: param and config types, which one a value has, how to say it."""

from __future__ import annotations

import datetime
import re
from typing import Any

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")
# A param may also be a date: a string holding a calendar date, YYYY-MM-DD.
PARAM_TYPES = (*JSON_TYPES, "date")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PHRASES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "date": "a date (YYYY-MM-DD)",
    "null": "null",
}
# A value of each type that passes its type check, for validating before params are known.
PLACEHOLDERS: dict[str, Any] = {
    "string": "",
    "integer": 0,
    "number": 0,
    "boolean": False,
    "array": [],
    "object": {},
    "date": "1970-01-01",
}


def type_of(value: Any) -> str:
    """The JSON type of a YAML/JSON value: null, boolean, integer, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


def conforms(value: Any, kind: str | None) -> bool:
    """Whether value has JSON type kind (an integer is a number; a boolean is neither)."""
    if kind is None:
        return True
    if kind == "date":
        return is_iso_date(value)
    found = type_of(value)
    return found == kind or (kind == "number" and found == "integer")


def phrase(kind: str | None) -> str:
    """How a YAML user says a type: 'an integer', 'a list', 'a mapping' ('a value' when unknown)."""
    return _PHRASES.get(kind or "") or with_article(kind)


def with_article(kind: str | None) -> str:
    """The type's own name with its article: 'an array', 'an integer' ('a value' when unknown)."""
    word = kind or "value"
    return ("an " if word[:1] in "aeiou" else "a ") + word


def describe(value: Any) -> str:
    """The phrase for the type of a value: 'a string', 'an integer', 'null', ..."""
    return phrase(type_of(value))


def is_iso_date(value: Any) -> bool:
    """Whether value is a string holding a real calendar date written YYYY-MM-DD."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True
