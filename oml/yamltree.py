"""YAML text to a tree of nodes with spans (libyaml composer, YAML 1.2 scalars); errors become diagnostics."""

from __future__ import annotations

import functools
import gc
import math
import re
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.expr import Template
from osiris.oml.span import SourceText, Span


@dataclass(frozen=True, slots=True)
class YScalar:
    child_fields: ClassVar[tuple[str, ...]] = ("template",)
    value: Any  # None, bool, int, float or str
    span: Span
    style: str | None = None  # None (plain), '"', "'", '|', '>'
    offset: int = 0  # character offset of the node's start in the source
    # A step config or input string with "${" in it, parsed by the parser; None: plain text.
    template: Template | None = None

    def to_python(self) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class YEntry:
    child_fields: ClassVar[tuple[str, ...]] = ("key", "value")
    key: YScalar
    value: YNode
    span: Span


@dataclass(frozen=True, slots=True)
class YMap:
    child_fields: ClassVar[tuple[str, ...]] = ("entries",)
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
    child_fields: ClassVar[tuple[str, ...]] = ("items",)
    items: tuple[YNode, ...]
    span: Span

    def to_python(self) -> list[Any]:
        return [item.to_python() for item in self.items]


YNode = YScalar | YMap | YSeq


@dataclass(frozen=True, slots=True)
class Merge:
    """A mapping merged into another by a `<<` key: where its entries are written, and the key."""

    origin: Span  # the merged mapping (its entries keep their spans there)
    at: Span  # the `<<` key that merges it
    alias: str  # the merge key's value as written, e.g. "*defaults" or "[*a, *b]"


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


_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_MERGE = _TAG + "merge"  # a plain `<<` key (YAML 1.1 merge keys, as in docker-compose files)

# Bounds that keep a hostile document cheap: its text, and the nodes its aliases add (each alias
# repeats its anchor's whole value, so nine levels of nine aliases make 387 million nodes).
MAX_SOURCE_CHARS = 4 * 1024 * 1024
MAX_ALIAS_NODES = 100_000
_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def _scalar_value(tag: str, text: str) -> Any:
    if tag == _STR:
        return text
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


# libyaml also breaks lines at a lone CR, NEL, LS and PS, and does not count a BOM: in such a text
# its marks' lines and offsets disagree with SourceText's.
_MERGE_VALUE = re.compile(r"\s*:\s*(\*[^\s,\[\]{}]+|\[[^\]\n]*\*[^\]\n]*\])")
_MARKS_DISAGREE = re.compile(r"\r(?!\n)|[\x85\u2028\u2029\ufeff]")


class _Builder:
    """Converts PyYAML composer nodes to YNodes, reporting duplicate and complex keys."""

    def __init__(self, source: SourceText, diagnostics: DiagnosticList) -> None:
        self.source = source
        self.diagnostics = diagnostics
        self._active: set[int] = set()
        self._position = source.position_at
        self._marks_agree = _MARKS_DISAGREE.search(source.text) is None
        self.merges: list[Merge] = []

    def span(self, node: Any) -> Span:
        start, end = node.start_mark, node.end_mark
        position = self._position
        return Span(
            self.source.file,
            position(start.line, start.column, start.index),
            position(end.line, end.column, end.index),
        )

    def build(self, node: Any) -> YNode:
        kind = node.id  # PyYAML's node kinds: "scalar", "sequence", "mapping"
        if kind == "scalar":
            style = node.style if node.style in ('"', "'", "|", ">") else None
            return YScalar(
                _scalar_value(node.tag, node.value), self.span(node), style, node.start_mark.index
            )
        if id(node) in self._active:
            self.diagnostics.error(
                "OML001",
                "recursive YAML alias",
                self.span(node),
                why="An alias refers to a node that contains it, so the document has no finite value.",
                fix="Write the value out instead of using a recursive anchor/alias.",
            )
            return YScalar(None, self.span(node), None, node.start_mark.index)
        self._active.add(id(node))
        try:
            if kind == "mapping":
                return self._mapping(node)
            return YSeq(tuple(self.build(item) for item in node.value), self.span(node))
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: Any) -> YMap:
        entries: list[YEntry] = []
        seen: dict[Any, YScalar] = {}
        merged: list[YEntry] = []  # entries of `<<` mappings, in order: the first of a key wins
        merge_at = 0  # where merged entries go among the explicit ones
        for key_node, value_node in node.value:
            key = self.build(key_node)
            if key_node.tag == _MERGE and isinstance(key, YScalar) and key.value not in seen:
                seen[key.value] = key
                merge_at = len(entries)
                merged.extend(self._merged(key, value_node))
                continue
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
            if self._marks_agree:  # the entry's positions are at hand
                span = Span(self.source.file, key.span.start, value.span.end)
            else:
                span = self.source.span(key.offset, value_node.end_mark.index)
            entries.append(YEntry(key, value, span))
        if merged:
            # YAML 1.1: the mapping's own keys win over merged ones; merged entries keep the spans
            # of where they are written (the anchored mapping).
            explicit = {entry.key.value for entry in entries}
            taken: set[Any] = set()
            inherited = []
            for entry in merged:
                if entry.key.value not in explicit and entry.key.value not in taken:
                    taken.add(entry.key.value)
                    inherited.append(entry)
            entries[merge_at:merge_at] = inherited
        return YMap(tuple(entries), self.span(node))

    def _merged(self, key: YScalar, value_node: Any) -> list[YEntry]:
        """The entries a `<<` key merges in: from a mapping, or from a list of mappings."""
        items = value_node.value if value_node.id == "sequence" else [value_node]
        out: list[YEntry] = []
        for item in items:
            recursive = id(item) in self._active  # reported by build()
            merged = self.build(item)
            if isinstance(merged, YMap):
                self.merges.append(Merge(merged.span, key.span, self._merge_value(key)))
                out.extend(merged.entries)
            elif not recursive:
                self.diagnostics.error(
                    "OML008",
                    "a merge key '<<' takes a mapping or a list of mappings, not "
                    + ("a list" if isinstance(merged, YSeq) else "a scalar"),
                    merged.span,
                    why="'<<' copies the keys of the mappings it names into this mapping "
                    "(YAML merge keys); keys written in the mapping itself win.",
                    fix="Merge an anchored mapping, or a list of them.",
                    example="x-defaults: &defaults {delimiter: ';'}\n...\n"
                    "    config:\n      <<: *defaults\n      path: data/in.csv",
                )
        return out

    def _merge_value(self, key: YScalar) -> str:
        """The `<<` key's value as written when it is aliases (an alias node is its anchor's)."""
        found = _MERGE_VALUE.match(self.source.text, key.offset + len("<<"))
        return found.group(1) if found else ""


class _GcPause:
    """Python's cyclic GC off while a tree is built, back to its previous state afterwards.

    Building allocates tens of thousands of acyclic nodes, and the collections those allocations
    trigger re-scan every long-lived object in the process: most of the build time on large
    files. gc.disable() is process-wide, so nested and concurrent builds share one pause: the
    first in switches GC off (if it was on), the last out restores it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


gc_paused = _GcPause()


def parse_yaml(
    source: SourceText, diagnostics: DiagnosticList, merges: list[Merge] | None = None
) -> YNode | None:
    """Compose the single YAML document in source; None (with a diagnostic) when it is not YAML.

    The `<<` merges made are appended to merges, when given.
    """
    with gc_paused:
        return _parse_yaml(source, diagnostics, merges)


def _parse_yaml(
    source: SourceText, diagnostics: DiagnosticList, merges: list[Merge] | None
) -> YNode | None:
    import yaml

    if len(source.text) > MAX_SOURCE_CHARS:
        diagnostics.error(
            "OML121",
            f"the file is too large ({len(source.text):,} characters; at most "
            f"{MAX_SOURCE_CHARS:,})",
            source.span(0, 0),
            why="A pipeline is a description of steps, far smaller than this; the limit keeps "
            "every tool fast and its memory bounded whatever file it is given.",
            fix="Check that this is the intended file; split a generated pipeline into several.",
        )
        return None
    try:
        node = yaml.compose(source.text, Loader=_loader())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        offset = mark.index if mark is not None else 0
        problem = (err.problem or err.context or "invalid YAML").strip()
        context = f" ({err.context.strip()})" if err.context and err.problem else ""
        reserved = _reserved_start(source.text, offset)
        if reserved is not None:
            from osiris.oml.diagnostics import Suggestion  # not a tree node type of this module

            end = offset + len(reserved)
            diagnostics.error(
                "OML001",
                f"YAML syntax error: a plain value cannot start with '{reserved[0]}'; quote it",
                source.span(offset, end),
                why=f"'{reserved[0]}' is reserved in YAML, so {reserved} must be written as a "
                "quoted string.",
                fix=f'Write "{reserved}" in double quotes.',
                example=f'connection: "{reserved}"' if reserved.startswith("@") else "",
                suggestions=(
                    Suggestion(
                        "Quote the value",
                        f'"{reserved}"',
                        source.span(offset, end),
                        safe=reserved.startswith("@"),
                    ),
                ),
            )
            return None
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
    builder = _Builder(source, diagnostics)
    if "&" in source.text and "*" in source.text and not _aliases_bounded(node, builder):
        return None
    root = builder.build(node)
    if merges is not None:
        merges.extend(builder.merges)
    return root


def _children(node: Any) -> list[Any]:
    if node.id == "sequence":
        return list(node.value)
    if node.id == "mapping":
        return [child for pair in node.value for child in pair]
    return []


def _expanded_sizes(root: Any) -> dict[int, int]:
    """Nodes in each composed node's value with its aliases written out (a cycle counts once)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if id(node) in sizes:
            continue
        sizes[id(node)] = 1  # until its children are counted: what a recursive alias adds
        stack.append((node, True))
        stack.extend(
            (child, False) for child in reversed(_children(node)) if id(child) not in sizes
        )
    return sizes


def _aliases_bounded(root: Any, builder: _Builder) -> bool:
    """False (with an OML120 at the alias) when aliases would add more than MAX_ALIAS_NODES.

    Composed nodes are shared: an alias is the same node met again. Walking the document in
    order, and not into a node met before, meets the aliases in the order they are written.
    """
    sizes: dict[int, int] | None = None
    seen: set[int] = set()
    added = aliases = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(reversed(_children(node)))
            continue
        if sizes is None:
            sizes = _expanded_sizes(root)
        added += sizes[id(node)]
        if added > MAX_ALIAS_NODES:
            _alias_bomb(builder, aliases, sizes[id(node)])
            return False
        aliases += 1
    return True


def _alias_bomb(builder: _Builder, index: int, size: int) -> None:
    import yaml

    found = None
    for event in yaml.parse(builder.source.text, Loader=_loader()):
        if isinstance(event, yaml.AliasEvent):
            if index == 0:
                found = event
                break
            index -= 1
    name = f"*{found.anchor}" if found is not None else "an alias"
    builder.diagnostics.error(
        "OML120",
        f"YAML alias {name} expands the document past {MAX_ALIAS_NODES:,} nodes",
        builder.span(found) if found is not None else builder.source.span(0, 0),
        why=f"Each alias repeats the whole value of its anchor ({size:,} nodes for this one), and "
        "aliases inside anchored values multiply: a document like this (a 'billion laughs' "
        "bomb) would take minutes and gigabytes to read. OML stops at "
        f"{MAX_ALIAS_NODES:,} nodes added by aliases.",
        fix="Write the values out, or use fewer, smaller levels of anchors and aliases.",
    )


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
                if value == "<<":
                    return _MERGE
                for tag, regexp in by_first.get(value[:1], ()):
                    if regexp.match(value):
                        return tag
            return _STR
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


def _reserved_start(text: str, offset: int) -> str | None:
    """The unquoted value at offset when it starts with YAML's reserved '@' or '`' (else None)."""
    if text[offset : offset + 1] not in ("@", "`"):
        return None
    end = offset
    while end < len(text) and text[end] not in " \t\r\n,]}#\"'":
        end += 1
    return text[offset:end]
