"""The expression language inside OML strings: ${...} references, $${ escapes, @family.alias refs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, ClassVar

from osiris.oml.span import Span

if TYPE_CHECKING:
    import lark


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text of a template."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Escape:
    """`$${`: a literal "${"."""

    text: ClassVar[str] = "${"
    span: Span


@dataclass(frozen=True, slots=True)
class Reference:
    """A ${...} reference: params.NAME, STEP.df or steps.STEP.df."""

    path: tuple[str, ...]
    span: Span  # the whole ${...}

    @property
    def source(self) -> str:
        return "${" + ".".join(self.path) + "}"

    @property
    def param(self) -> str | None:
        return self.path[1] if len(self.path) == 2 and self.path[0] == "params" else None

    @property
    def step(self) -> str | None:
        """The step id a step-output reference names (STEP.df or steps.STEP.df)."""
        if self.path[0] == "params":
            return None
        if self.path[0] == "steps" and len(self.path) >= 2:
            return self.path[1]
        return self.path[0]

    @property
    def attribute(self) -> str | None:
        rest = self.path[2:] if self.path[0] == "steps" else self.path[1:]
        return ".".join(rest) if rest else None


Part = Text | Escape | Reference


@dataclass(frozen=True, slots=True)
class Template:
    """A string with ${...} references, split into parts.

    An invalid template (a syntax error, reported once by the parser) is its whole text as one
    Text part, so it renders as written and references nothing.
    """

    child_fields: ClassVar[tuple[str, ...]] = ("parts",)
    parts: tuple[Part, ...]
    span: Span  # the whole string
    valid: bool = True

    @property
    def whole_reference(self) -> Reference | None:
        """The reference when the string is exactly one ${...} (its value keeps its type)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Reference):
            return self.parts[0]
        return None


@dataclass(frozen=True, slots=True)
class ConnectionRef:
    family: str
    alias: str | None  # None: the family's default connection

    def __str__(self) -> str:
        return f"@{self.family}" + (f".{self.alias}" if self.alias else "")


class ExpressionError(ValueError):
    """A syntax error at a character offset inside the string."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@functools.cache
def _parser() -> lark.Lark:
    import lark

    grammar = resources.files("osiris.grammar").joinpath("oml.lark").read_text(encoding="utf-8")
    # Positions come from the kept "${" and "}" tokens: cheaper than propagate_positions.
    return lark.Lark(
        grammar, parser="lalr", start=["template", "connection_ref"], keep_all_tokens=True
    )


_EXPECTED = {
    "NAME": "a name",
    "RBRACE": "'}'",
    "_WS": "a space",
    "DOT": "'.'",
    "ALIAS": "an alias",
    "FAMILY": "a lowercase family name",
}


def _error(err: Exception, text: str, what: str) -> ExpressionError:
    import lark

    offset = getattr(err, "pos_in_stream", None)
    token = getattr(err, "token", None)
    if offset is None or (token is not None and token.type == "$END"):
        offset = len(text)
    expected: set[str] = set()
    if isinstance(err, lark.exceptions.UnexpectedToken):
        expected = set(err.expected)
    elif isinstance(err, lark.exceptions.UnexpectedCharacters):
        expected = set(err.allowed or ())
    names = sorted(_EXPECTED.get(e, e.lower()) for e in expected if e != "_WS")
    found = "the end of the string" if offset >= len(text) else repr(text[offset])
    hint = f", expected {' or '.join(names)}" if names else ""
    return ExpressionError(f"invalid {what}: unexpected {found}{hint}", offset)


def parse_template(text: str, span: Span, locate: Callable[[int, int], Span]) -> Template:
    """Split a string (whose span is span) into parts; raise ExpressionError on bad syntax.

    locate maps a character range of text to its span in the source.
    """
    import lark

    try:
        tree = _parser().parse(text, start="template")
    except lark.exceptions.LarkError as err:
        raise _error(err, text, "${...} expression") from None
    parts: list[Part] = []
    for child in tree.children:
        if isinstance(child, lark.Token):
            at = locate(child.start_pos or 0, child.end_pos or 0)
            parts.append(Escape(at) if child.type == "ESCAPED" else Text(str(child), at))
        else:
            first, last = child.children[0], child.children[-1]
            (path,) = (c for c in child.children if isinstance(c, lark.Tree))
            assert isinstance(first, lark.Token) and isinstance(last, lark.Token)
            names = tuple(
                str(t) for t in path.children if isinstance(t, lark.Token) and t.type == "NAME"
            )
            parts.append(Reference(names, locate(first.start_pos or 0, last.end_pos or 0)))
    return Template(tuple(parts), span)


def parse_connection_ref(text: str) -> ConnectionRef:
    """Parse '@family.alias' or '@family'; raise ExpressionError on bad syntax."""
    import lark

    try:
        tree = _parser().parse(text, start="connection_ref")
    except lark.exceptions.LarkError as err:
        raise _error(err, text, "connection reference") from None
    names = {t.type: str(t) for t in tree.children if isinstance(t, lark.Token)}
    return ConnectionRef(names["FAMILY"], names.get("ALIAS"))
