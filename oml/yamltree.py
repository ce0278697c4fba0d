"""YAML text to a tree of nodes with spans (libyaml composer, YAML 1.2 scalars); errors become diagnostics."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import SourceText, Span


@dataclass(frozen=True, slots=True)
class YScalar:
    value: Any  # None, bool, int, float or str
    span: Span
    style: str | None = None  # None (plain), '"', "'", '|', '>'
    offset: int = 0  # character offset of the node's start in the source

    def to_python(self) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class YEntry:
    key: YScalar
    value: YNode
    span: Span


@dataclass(frozen=True, slots=True)
class YMap:
    entries: tuple[YEntry, ...]
    span: Span

    def get(self, key: str) -> YEntry | None:
        for entry in self.entries:
            if entry.key.value == key:
                return entry
        return None

    def keys(self) -> list[Any]:
        return [e.key.value for e in self.entries]

    def __contains__(self, key: object) -> bool:
        return any(e.key.value == key for e in self.entries)

    def to_python(self) -> dict[Any, Any]:
        return {e.key.value: e.value.to_python() for e in self.entries}


@dataclass(frozen=True, slots=True)
class YSeq:
    items: tuple[YNode, ...]
    span: Span

    def to_python(self) -> list[Any]:
        return [item.to_python() for item in self.items]


YNode = YScalar | YMap | YSeq

_TAG = "tag:yaml.org,2002:"
_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def _scalar_value(tag: str, text: str) -> Any:
    kind = tag[len(_TAG) :] if tag.startswith(_TAG) else "str"
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        cleaned = text.replace("_", "")
        try:
            return int(cleaned, 0)
        except ValueError:
            try:
                return int(cleaned)
            except ValueError:
                return text
    if kind == "float":
        special = _FLOATS.get(text.lower())
        if special is not None:
            return special
        try:
            return float(text.replace("_", ""))
        except ValueError:
            return text
    return text  # str, timestamps and unknown tags stay text


class _Builder:
    """Converts ruamel composer nodes to YNodes, reporting duplicate and complex keys."""

    def __init__(self, source: SourceText, diagnostics: DiagnosticList) -> None:
        self.source = source
        self.diagnostics = diagnostics
        self._active: set[int] = set()

    def span(self, node: Any) -> Span:
        start, end = node.start_mark, node.end_mark
        return Span(
            self.source.file,
            self.source.position_at(start.line, start.column, start.index),
            self.source.position_at(end.line, end.column, end.index),
        )

    def build(self, node: Any) -> YNode:
        from yaml.nodes import MappingNode, SequenceNode

        if id(node) in self._active:
            self.diagnostics.error(
                "OML001",
                "recursive YAML alias",
                self.span(node),
                why="An alias refers to a node that contains it, so the document has no finite value.",
                fix="Write the value out instead of using a recursive anchor/alias.",
            )
            return YScalar(None, self.span(node), None, node.start_mark.index)
        if isinstance(node, MappingNode):
            self._active.add(id(node))
            try:
                return self._mapping(node)
            finally:
                self._active.discard(id(node))
        if isinstance(node, SequenceNode):
            self._active.add(id(node))
            try:
                return YSeq(tuple(self.build(item) for item in node.value), self.span(node))
            finally:
                self._active.discard(id(node))
        style = node.style if node.style in ('"', "'", "|", ">") else None
        return YScalar(
            _scalar_value(node.tag, node.value), self.span(node), style, node.start_mark.index
        )

    def _mapping(self, node: Any) -> YMap:
        entries: list[YEntry] = []
        seen: dict[Any, YScalar] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node)
            value = self.build(value_node)
            if not isinstance(key, YScalar) or isinstance(key.value, float):
                self.diagnostics.error(
                    "OML001",
                    "mapping keys must be plain strings",
                    key.span,
                    why="OML keys are names; a list, mapping or float cannot be a key.",
                    fix="Use a plain name as the key.",
                )
                continue
            if key.value is None or isinstance(key.value, bool | int):
                key = YScalar(
                    key_node.value if key.value is not None else "", key.span, key.style, key.offset
                )
            first = seen.get(key.value)
            if first is not None:
                self.diagnostics.error(
                    "OML002",
                    f"duplicate key '{key.value}'",
                    key.span,
                    why=f"'{key.value}' is already set on line {first.span.start.line}; YAML would "
                    "silently keep only the last value, so OML rejects it.",
                    fix="Remove one of the two, or merge their values.",
                )
                continue
            seen[key.value] = key
            entries.append(
                YEntry(key, value, self.source.span(key.offset, value_node.end_mark.index))
            )
        return YMap(tuple(entries), self.span(node))


def parse_yaml(source: SourceText, diagnostics: DiagnosticList) -> YNode | None:
    """Compose the single YAML document in source; None (with a diagnostic) when it is not YAML."""
    import yaml

    try:
        node = yaml.compose(source.text, Loader=_loader())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        offset = mark.index if mark is not None else 0
        problem = (err.problem or err.context or "invalid YAML").strip()
        context = f" ({err.context.strip()})" if err.context and err.problem else ""
        diagnostics.error(
            "OML001",
            f"YAML syntax error: {problem}{context}",
            source.span(offset, offset + 1),
            why="The file is not valid YAML, so nothing else in it can be checked yet.",
            fix="Correct the YAML at the marked position (indentation, a missing ':' or an "
            "unclosed quote or bracket are the usual causes).",
        )
        return None
    except yaml.YAMLError as err:  # reader errors: control characters and the like
        position = getattr(err, "position", 0) or 0
        diagnostics.error(
            "OML001",
            f"YAML syntax error: {_first_line(err)}",
            source.span(position, position + 1),
            why="The file is not valid YAML, so nothing else in it can be checked yet.",
            fix="Remove control characters and make sure the file is UTF-8 text.",
        )
        return None
    if node is None:
        diagnostics.error(
            "OML003",
            "the document is empty",
            source.span(0, 0),
            why="An OML file is a mapping with oml_version, name and steps.",
            fix="Start from a minimal pipeline.",
            example=_MINIMAL,
        )
        return None
    return _Builder(source, diagnostics).build(node)


@functools.cache
def _loader() -> type:
    """libyaml's composer with YAML 1.2 core-schema scalars (`yes`, `on`, `no` stay text)."""
    import yaml
    from yaml.nodes import ScalarNode, SequenceNode

    by_first: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for kind, pattern, first in _CORE_SCHEMA:
        for char in first:
            by_first.setdefault(char, []).append((_TAG + kind, re.compile(pattern)))

    def resolve(self: Any, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        # A lean resolver: only implicit scalar resolution is needed (no path resolvers).
        if kind is ScalarNode:
            if implicit[0]:
                for tag, regexp in by_first.get(value[:1], ()):
                    if regexp.match(value):
                        return tag
            return _TAG + "str"
        return _TAG + ("seq" if kind is SequenceNode else "map")

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return type("OmlLoader", (base,), {"resolve": resolve})


_CORE_SCHEMA = (
    ("null", r"^(?:~|null|Null|NULL|)$", ("~", "n", "N", "")),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


_MINIMAL = """oml_version: "0.1.0"
name: my-pipeline
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/orders.csv}"""
