"""The one walker over the AST: a Jinja-style NodeVisitor, and find_all for the simple searches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

N = TypeVar("N")


def child_nodes(node: Any) -> list[Any]:
    """The direct children of a node, in the order of its fields.

    A node class names the fields that hold its children in `child_fields` (a node, None, or a
    tuple of nodes); classes without it are leaves.
    """
    out: list[Any] = []
    for name in getattr(type(node), "child_fields", ()):
        value = getattr(node, name)
        if type(value) is tuple:
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


def find_all(node: Any, kind: type[N]) -> Iterator[N]:
    """Every node of type kind at or under node (None: no node), depth first in tree order."""
    if isinstance(node, kind):
        yield node
    for child in child_nodes(node):
        yield from find_all(child, kind)


class NodeVisitor:
    """visit(node) calls self.visit_<ClassName>(node) and returns its result; a class without
    such a method gets generic_visit, which visits the node's children."""

    def visit(self, node: Any) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            return self.generic_visit(node)
        return method(node)

    def generic_visit(self, node: Any) -> Any:
        for child in child_nodes(node):
            self.visit(child)
