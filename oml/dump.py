"""A JSON-able view of the AST for `omlc --emit ast`: every node with its kind and span."""

from __future__ import annotations

import dataclasses
from typing import Any

from osiris.oml.span import SourceText, Span
from osiris.oml.yamltree import YMap, YScalar, YSeq


def _span(span: Span) -> str:
    return f"{span.start.line}:{span.start.column}-{span.end.line}:{span.end.column}"


def to_data(node: Any) -> Any:
    if isinstance(node, Span):
        return _span(node)
    if isinstance(node, YScalar):
        return node.value if node.template is None else to_data(node.template)
    if isinstance(node, YMap):
        return {str(e.key.value): to_data(e.value) for e in node.entries}
    if isinstance(node, YSeq):
        return [to_data(item) for item in node.items]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"kind": type(node).__name__}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, SourceText):
                continue
            out[f.name] = to_data(value)
        return out
    if isinstance(node, tuple | list):
        return [to_data(item) for item in node]
    return node
