"""Nodes and key spans inside YAML values, found by JSON path (as schema errors give them)."""

from __future__ import annotations

from typing import Any

from osiris.oml.span import Span
from osiris.oml.yamltree import YMap, YNode, YSeq


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
