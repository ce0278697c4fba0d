"""The expression language inside OML strings: ${...} references, $${ escapes, @family.alias refs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lark


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    start: int  # character offsets inside the string
    end: int


@dataclass(frozen=True, slots=True)
class Reference:
    """A ${...} reference: params.NAME, STEP.df or steps.STEP.df."""

    path: tuple[str, ...]
    start: int
    end: int

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


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[Text | Reference, ...]

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(p for p in self.parts if isinstance(p, Reference))

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
    return lark.Lark(
        grammar, parser="lalr", start=["template", "connection_ref"], propagate_positions=True
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


def parse_template(text: str) -> Template:
    """Split a string into text and ${...} references; raise ExpressionError on bad syntax."""
    if "$" not in text:
        return Template((Text(text, 0, len(text)),) if text else ())
    return _parse_template(text)


@functools.lru_cache(maxsize=16384)
def _parse_template(text: str) -> Template:
    # Cached: every pass of the checker (and the editor, on each keystroke) asks again.
    import lark

    try:
        tree = _parser().parse(text, start="template")
    except lark.exceptions.LarkError as err:
        raise _error(err, text, "${...} expression") from None
    parts: list[Text | Reference] = []
    for child in tree.children:
        if isinstance(child, lark.Token):
            value = "${" if child.type == "ESCAPED" else str(child)
            start = child.start_pos or 0
            end = child.end_pos or start
            if parts and isinstance(parts[-1], Text):
                prev = parts.pop()
                assert isinstance(prev, Text)
                parts.append(Text(prev.text + value, prev.start, end))
            else:
                parts.append(Text(value, start, end))
        else:
            path = child.children[0]
            assert isinstance(path, lark.Tree)
            names = tuple(str(tok) for tok in path.children)
            parts.append(Reference(names, child.meta.start_pos, child.meta.end_pos))
    return Template(tuple(parts))


def parse_connection_ref(text: str) -> ConnectionRef:
    """Parse '@family.alias' or '@family'; raise ExpressionError on bad syntax."""
    import lark

    try:
        tree = _parser().parse(text, start="connection_ref")
    except lark.exceptions.LarkError as err:
        raise _error(err, text, "connection reference") from None
    tokens = [str(t) for t in tree.children]
    return ConnectionRef(tokens[0], tokens[1] if len(tokens) > 1 else None)
