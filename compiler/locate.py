"""Spans inside YAML values: map a character range of a string scalar back to the source."""

from __future__ import annotations

from typing import Any

from osiris.oml.span import SourceText, Span
from osiris.oml.yamltree import YMap, YNode, YScalar, YSeq


def inner_span(source: SourceText, scalar: YScalar, start: int, end: int) -> Span:
    """Span of value[start:end] inside the scalar's source text (whole scalar if not found)."""
    value = scalar.value if isinstance(scalar.value, str) else str(scalar.value)
    needle = value[start:end]
    region_end = source.offset_of(scalar.span.end.line - 1, scalar.span.end.column - 1)
    region = source.text[scalar.offset : region_end]
    if not needle:
        # An empty range (e.g. "unexpected end"): point just before the closing quote, if any.
        at = scalar.offset + len(region) - (1 if scalar.style in ('"', "'") else 0)
        return source.span(at, at)
    occurrence = value[:start].count(needle)
    position = -1
    for _ in range(occurrence + 1):
        position = region.find(needle, position + 1)
        if position == -1:
            return scalar.span
    at = scalar.offset + position
    return source.span(at, at + len(needle))


def node_at(node: YNode, path: tuple[Any, ...] | list[Any]) -> tuple[YNode, bool]:
    """The node at a JSON path inside a YAML tree: (node, True) or (deepest ancestor, False)."""
    current = node
    for part in path:
        if isinstance(current, YMap) and isinstance(part, str):
            entry = current.get(part)
            if entry is None:
                return current, False
            current = entry.value
        elif isinstance(current, YSeq) and isinstance(part, int) and 0 <= part < len(current.items):
            current = current.items[part]
        else:
            return current, False
    return current, True


def key_span(node: YNode, path: tuple[Any, ...] | list[Any]) -> Span | None:
    """Span of the key that holds the value at path (for 'unknown field' and the like)."""
    if not path:
        return None
    parent, found = node_at(node, path[:-1])
    if found and isinstance(parent, YMap) and isinstance(path[-1], str):
        entry = parent.get(path[-1])
        if entry is not None:
            return entry.key.span
    return None
