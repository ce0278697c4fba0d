"""Params in SQL fields: where each ${params.x} sits (found with the dialect's own lexer) and
how its value is written there so that it can never change the statement's structure.

Inside a string literal a value becomes an escaped literal body of that dialect; anywhere else
(identifier, keyword, bare expression, comment) only a param whose type makes it safe may stand.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from osiris.compiler.params import param_type
from osiris.oml.expr import Reference, Template
from osiris.oml.types import is_iso_date
from osiris.oml.yamltree import YScalar

if TYPE_CHECKING:
    from osiris.compiler.check import CheckContext
    from osiris.compiler.registry import ComponentSpec
    from osiris.oml.ast import Document, Param

SQL_FIELDS = ("query", "where", "sql")
_DIALECTS = {"mysql": "mysql", "postgres": "postgres", "supabase": "postgres", "duckdb": "duckdb"}
SAFE_BARE_TYPES = ("integer", "number", "boolean", "date")
_DIALECT_NAMES = {"mysql": "MySQL", "postgres": "PostgreSQL", "duckdb": "DuckDB"}


class SqlParamError(ValueError):
    """A param value that cannot be written into SQL safely (the message says why)."""


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one ${params.x} sits in a SQL text."""

    param: str
    literal: bool  # inside a string literal
    quote: str = ""  # the literal's delimiter, ' or "
    backslash: bool = False  # backslash escapes are active in that literal
    unsupported: str | None = None  # a literal whose body cannot be escaped (dollar-quoted, ...)


@dataclass(frozen=True, slots=True)
class SqlTemplate:
    """A SQL field's text split at its param references (None where a param goes)."""

    dialect: str
    parts: tuple[str | None, ...]
    slots: tuple[Slot, ...]
    lex_error: str | None = None  # the dialect's lexer could not read the text


def sql_fields(spec: ComponentSpec) -> dict[str, str]:
    """The config fields of a component that hold SQL, each with its dialect."""
    dialect = _DIALECTS.get(spec.connection_family or spec.name.partition(".")[0])
    if dialect is None:
        return {}
    props = spec.config_schema.get("properties", {})
    return {
        name: dialect
        for name in SQL_FIELDS
        if name in props and props[name].get("type") == "string"
    }


def sql_template(template: Template, dialect: str) -> SqlTemplate | None:
    """Classify the param references of a SQL field; None when it references no param."""
    parts: list[str | None] = []
    names: list[str] = []
    for part in template.parts:
        if isinstance(part, Reference) and part.param is not None:
            parts.append(None)
            names.append(part.param)
        else:
            parts.append(part.source if isinstance(part, Reference) else part.text)
    if not names:
        return None
    text, offsets = _with_placeholders(parts)
    try:
        tokens = _lex(text, dialect)
    except SqlParamError as err:
        return SqlTemplate(dialect, tuple(parts), tuple(Slot(n, False) for n in names), str(err))
    slots = tuple(
        _slot(name, text, start, tokens, dialect)
        for name, start in zip(names, offsets, strict=True)
    )
    return SqlTemplate(dialect, tuple(parts), slots)


def render(sql: SqlTemplate, values: Sequence[Any], kinds: Sequence[str | None]) -> str:
    """The SQL with each param written in place; SqlParamError when one cannot be."""
    written = write_values(sql, values, kinds)
    rendered = _join(sql.parts, written)
    # Belt and braces: the lexer must see the same statement with and without the values.
    expected = _join(
        sql.parts,
        [
            _PLACEHOLDER + str(i) + "x" if slot.literal else text
            for i, (slot, text) in enumerate(zip(sql.slots, written, strict=True))
        ],
    )
    if _shape(expected, sql.dialect) != _shape(rendered, sql.dialect):
        raise SqlParamError("its value would change the statement's structure")
    return rendered


def write_values(sql: SqlTemplate, values: Sequence[Any], kinds: Sequence[str | None]) -> list[str]:
    """The text each param is written as, in slot order; SqlParamError when one cannot be."""
    written = []
    for slot, value, kind in zip(sql.slots, values, kinds, strict=True):
        try:
            written.append(_write(slot, value, kind))
        except SqlParamError as err:
            raise SqlParamError(f"param '{slot.param}': {err}") from None
    return written


def bare_problem(param: Param) -> str | None:
    """Why a param may not stand outside a string literal in SQL; None when its type is safe."""
    kind = param_type(param)
    if param.enum is not None or kind in SAFE_BARE_TYPES:
        return None
    return f"its type is {kind or 'not declared'}" if kind != "string" else "it is a string"


# -- placing and writing values -------------------------------------------------------------

_PLACEHOLDER = "osirisparam"


def _with_placeholders(parts: Sequence[str | None]) -> tuple[str, list[int]]:
    out: list[str] = []
    offsets: list[int] = []
    size = 0
    index = 0
    for part in parts:
        if part is None:
            part = f"{_PLACEHOLDER}{index}x"
            offsets.append(size)
            index += 1
        out.append(part)
        size += len(part)
    return "".join(out), offsets


def _join(parts: Sequence[str | None], values: Sequence[str]) -> str:
    filled = iter(values)
    return "".join(next(filled) if part is None else part for part in parts)


def _slot(name: str, text: str, start: int, tokens: list[_Token], dialect: str) -> Slot:
    token = next((t for t in tokens if t.start <= start < t.end), None)
    if token is None or not token.string:
        return Slot(name, False)
    opening = text[token.start : token.start + 2]
    prefix = opening[0] if opening[:1] in ("E", "e", "N", "n") and opening[1:] == "'" else ""
    quote = text[token.start + len(prefix)]
    if quote not in ("'", '"') or (quote == '"' and dialect != "mysql"):
        return Slot(
            name, True, unsupported=f"a literal written {text[token.start : token.start + 3]!r}…"
        )
    backslash = dialect == "mysql" or prefix in ("E", "e")
    return Slot(name, True, quote, backslash)


def _write(slot: Slot, value: Any, kind: str | None) -> str:
    """The text that stands for a value: an escaped literal body, or a value safe by its type."""
    text = value if isinstance(value, str) else _json(value)
    if "\x00" in text:
        raise SqlParamError("its value holds a NUL character, which SQL text cannot carry")
    if slot.unsupported is not None:
        raise SqlParamError(f"it is inside {slot.unsupported}")
    if slot.literal:
        if slot.backslash:
            text = text.replace("\\", "\\\\")
        return text.replace(slot.quote, slot.quote * 2)
    if kind == "enum":
        return text  # one of the values the pipeline itself declared
    if kind == "date" and is_iso_date(value):
        return f"DATE '{value}'"
    if isinstance(value, bool) and kind == "boolean":
        return "TRUE" if value else "FALSE"
    if (
        kind in ("integer", "number")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        if isinstance(value, float) and not math.isfinite(value):
            raise SqlParamError(f"{text} is not a finite number")
        return text
    raise SqlParamError(f"{text} is not {kind or 'a typed value'}, and stands outside quotes")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- lexing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    start: int  # character offsets into the text, end exclusive
    end: int
    kind: str
    string: bool


def _shape(text: str, dialect: str) -> list[tuple[str, str]]:
    """A lexed statement as (kind, text) pairs, string literals' contents left out."""
    return [
        (t.kind, "" if t.string else text[t.start : t.end].strip()) for t in _lex(text, dialect)
    ]


def _lex(text: str, dialect: str) -> list[_Token]:
    return _lex_duckdb(text) if dialect == "duckdb" else _lex_sqlglot(text, dialect)


def _lex_sqlglot(text: str, dialect: str) -> list[_Token]:
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import SqlglotError
    from sqlglot.tokens import TokenType

    strings = {
        TokenType.STRING,
        TokenType.NATIONAL_STRING,
        TokenType.BYTE_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.RAW_STRING,
        TokenType.BIT_STRING,
        TokenType.HEX_STRING,
        TokenType.UNICODE_STRING,
    }
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(text)
    except SqlglotError as err:
        raise SqlParamError(str(err).splitlines()[0]) from None
    return [_Token(t.start, t.end + 1, t.token_type.name, t.token_type in strings) for t in tokens]


_duckdb_lock = threading.Lock()


@functools.cache
def _duckdb() -> Any:
    import duckdb

    return duckdb


def _lex_duckdb(text: str) -> list[_Token]:
    """DuckDB's own tokenizer; its offsets are UTF-8 byte offsets, turned into characters."""
    duckdb = _duckdb()
    try:
        with _duckdb_lock:
            raw = duckdb.tokenize(text)
    except duckdb.Error as err:
        raise SqlParamError(str(err).splitlines()[0]) from None
    data = text.encode("utf-8")
    starts: list[int] = []
    chars = previous = 0
    for offset, _ in raw:
        chars += len(data[previous:offset].decode("utf-8", "replace"))
        starts.append(chars)
        previous = offset
    tokens = []
    for i, (_, kind) in enumerate(raw):
        end = starts[i + 1] if i + 1 < len(raw) else len(text)
        name = str(kind).rpartition(".")[2]
        tokens.append(_Token(starts[i], end, name, name == "string_const"))
    return tokens


# -- the check pass -------------------------------------------------------------------------


def sql_templates(
    document: Document, specs: Mapping[str, ComponentSpec]
) -> dict[tuple[str, str], tuple[SqlTemplate, YScalar]]:
    """Every SQL field that references a param, by (step id, field)."""
    found: dict[tuple[str, str], tuple[SqlTemplate, YScalar]] = {}
    for step in document.steps:
        if step.id is None or step.config is None or step.id.value not in specs:
            continue
        for field, dialect in sql_fields(specs[step.id.value]).items():
            entry = step.config.get(field)
            if entry is None or not isinstance(entry.value, YScalar):
                continue
            template = entry.value.template
            if template is None or not template.valid:
                continue
            sql = sql_template(template, dialect)
            if sql is not None:
                found[(step.id.value, field)] = (sql, entry.value)
    return found


def check_sql_params(ctx: CheckContext) -> None:
    """A param outside a SQL string literal must have a safe type (OML110); a literal it sits in
    must be one whose body can be escaped (OML111). Records the classification for lowering."""
    ctx.sql_params = sql_templates(ctx.document, ctx.specs)
    for (step_id, field), (sql, scalar) in ctx.sql_params.items():
        references = [
            r
            for r in (scalar.template.parts if scalar.template else ())
            if isinstance(r, Reference) and r.param is not None
        ]
        dialect = _DIALECT_NAMES[sql.dialect]
        for slot, ref in zip(sql.slots, references, strict=True):
            param = ctx.document.param(slot.param)
            if param is None:
                continue  # an unknown param is reported by check_params
            if slot.unsupported is not None:
                ctx.diagnostics.error(
                    "OML111",
                    f"param '{slot.param}' is inside {slot.unsupported} in the {field} of '{step_id}'",
                    ref.span,
                    why=f"Osiris can escape a param only inside a plain '...' {dialect} string "
                    "literal; other literal forms have no escape for every value.",
                    fix=f"Write it inside single quotes: '{ref.source}'.",
                )
                continue
            problem = None if slot.literal else bare_problem(param)
            if problem is None:
                continue
            why = (
                f"Outside a string literal the value is pasted into the {dialect} statement as "
                f"SQL text, and {problem}: a value like  x' OR '1'='1  would change the "
                "statement. Only integer, number, boolean, date and enum params may stand "
                "outside quotes."
            )
            if sql.lex_error is not None:
                why += f" (The SQL could not be read to find its literals: {sql.lex_error}.)"
            ctx.diagnostics.error(
                "OML110",
                f"param '{slot.param}' is used outside quotes in the {field} of '{step_id}'",
                ref.span,
                why=why,
                fix=f"Put it inside quotes: '{ref.source}', or declare '{slot.param}' as "
                "integer, number, boolean or date, or give it an enum.",
                example=f"params:\n  {slot.param}: {{type: integer}}",
            )


def render_sql_fields(
    document: Document,
    templates: Mapping[tuple[str, str], tuple[SqlTemplate, YScalar]],
    step_id: str,
    params: Mapping[str, Any],
) -> dict[str, str | SqlParamError]:
    """The SQL fields of one step with params written in (or why one cannot be)."""
    out: dict[str, str | SqlParamError] = {}
    for (sid, field), (sql, _) in templates.items():
        if sid != step_id or any(s.param not in params for s in sql.slots):
            continue
        kinds = [param_kind(document, s.param) for s in sql.slots]
        try:
            out[field] = render(sql, [params[s.param] for s in sql.slots], kinds)
        except SqlParamError as err:
            out[field] = err
    return out


def param_kind(document: Document, name: str) -> str | None:
    """The param's type as rendering sees it: "enum" for a param with declared values."""
    param = document.param(name)
    if param is None:
        return None
    return "enum" if param.enum is not None else param_type(param)
