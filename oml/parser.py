"""Source text to typed AST: structure, known keys and types; semantic rules live in the compiler."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Sequence

from osiris.oml.ast import Document, Input, Name, Param, Profile, Step, StepRef
from osiris.oml.controls import first_control
from osiris.oml.diagnostics import Diagnostic, DiagnosticList, Suggestion
from osiris.oml.expr import ExpressionError, Template, Text, parse_template
from osiris.oml.span import SourceText, Span
from osiris.oml.suggest import close_matches, did_you_mean, replacements
from osiris.oml.types import PARAM_TYPES, describe, phrase
from osiris.oml.visitor import NodeVisitor
from osiris.oml.yamltree import (
    Merge,
    YEntry,
    YMap,
    YNode,
    YScalar,
    YSeq,
    gc_paused,
    inner_span,
    parse_yaml,
)

OML_VERSION = "0.1.0"
STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Ids name files (cfg/<id>.json, runs/<id>/artifacts/<id>/, temporary siblings of those): 128
# leaves room for any prefix or suffix within the 255-byte file-name limit of common file
# systems. specs/oml.schema.json and specs/manifest.schema.json say the same (maxLength).
MAX_STEP_ID_LENGTH = 128
TOP_KEYS = ("oml_version", "name", "description", "metadata", "params", "profiles", "steps")
STEP_KEYS = ("id", "component", "mode", "config", "needs", "inputs", "description", "partition")
PARAM_KEYS = ("type", "default", "description", "enum")
PROFILE_KEYS = ("params", "description")

LEGACY_TOP = {
    "version": (
        "'version' is the pre-0.1.0 header",
        'Replace it with oml_version: "0.1.0".',
        "oml_version",
    ),
    "connectors": (
        "'connectors' no longer lives in the pipeline",
        "Move connection details to osiris_connections.yaml and reference them from a step's "
        'config as connection: "@family.alias".',
        None,
    ),
    "tasks": (
        "'tasks' was renamed to 'steps'",
        "Rename 'tasks' to 'steps'; each task becomes a step with id, component, mode and config.",
        "steps",
    ),
    "pipeline": (
        "'pipeline:' wraps the pipeline in upstream Osiris's older format",
        "Move the keys under 'pipeline:' (name, steps, ...) to the top level of the file, "
        "remove the 'pipeline:' line and add oml_version: \"0.1.0\".",
        None,
    ),
    "source": (
        "'source' is a pre-OML config of upstream Osiris, not a pipeline",
        "Write the source as an extractor step under steps: (e.g. component: mysql.extractor, "
        'mode: read, config: {connection: "@mysql.main", table: ...}).',
        None,
    ),
    "destination": (
        "'destination' is a pre-OML config of upstream Osiris, not a pipeline",
        "Write the destination as a writer step under steps: (e.g. component: "
        "supabase.writer, mode: write, needs: [<the extractor's id>], config: {table: ...}).",
        None,
    ),
    "outputs": (
        "'outputs' is not part of OML 0.1.0",
        "Write outputs as writer steps (e.g. filesystem.csv_writer) that name their upstream "
        "step in needs or inputs.",
        None,
    ),
}
LEGACY_STEP = {
    "depends_on": ("needs", "Rename 'depends_on' to 'needs'."),
    "depends-on": ("needs", "Rename 'depends-on' to 'needs'."),
    "dependsOn": ("needs", "Rename 'dependsOn' to 'needs'."),
    "type": ("component", "Rename 'type' to 'component' and use a registered component name."),
    "uses": ("component", "Rename 'uses' to 'component'."),
    "with": ("config", "Rename 'with' to 'config'."),
    "name": ("id", "Rename 'name' to 'id' (a step's identifier)."),
}

_COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def _safe_rename(key: str, entry: YEntry) -> bool:
    """A legacy step key's rename is safe, except `type` whose value is not a component name
    (`type: sql` means something else; renaming it would invent a component)."""
    if key != "type":
        return True
    value = entry.value
    return isinstance(value, YScalar) and _COMPONENT_NAME.match(str(value.value)) is not None


_EXAMPLE_STEP = """  - id: extract-orders
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.shop"
      table: orders"""


def _type_name(node: YNode) -> str:
    if isinstance(node, YMap):
        return phrase("object")
    if isinstance(node, YSeq):
        return phrase("array")
    return "empty (null)" if node.value is None else describe(node.value)


def _same(new: tuple[object, ...], old: tuple[object, ...]) -> bool:
    return all(a is b for a, b in zip(new, old, strict=True))


class _Templates(NodeVisitor):
    """A YAML value with each string that holds "${" parsed into its template (OML028 if bad).

    Copy on write: only the nodes on the way to a template are new; the rest is shared.
    """

    def __init__(self, source: SourceText, diagnostics: DiagnosticList) -> None:
        self.source = source
        self.diagnostics = diagnostics

    def visit_YMap(self, node: YMap) -> YMap:
        entries = tuple(self.visit_YEntry(entry) for entry in node.entries)
        return node if _same(entries, node.entries) else YMap(entries, node.span)

    def visit_YEntry(self, node: YEntry) -> YEntry:
        value = self.visit(node.value)
        return node if value is node.value else YEntry(node.key, value, node.span)

    def visit_YSeq(self, node: YSeq) -> YSeq:
        items = tuple(self.visit(item) for item in node.items)
        return node if _same(items, node.items) else YSeq(items, node.span)

    def visit_YScalar(self, node: YScalar) -> YScalar:
        text = node.value
        if not isinstance(text, str) or "${" not in text:
            return node
        locate = functools.partial(inner_span, self.source, node)
        try:
            template = parse_template(text, node.span, locate)
        except ExpressionError as err:
            self.diagnostics.error(
                "OML028",
                err.message,
                locate(err.offset, err.offset + 1),
                why="Inside OML strings, ${...} is a reference: ${params.NAME} or ${STEP.df}. "
                "A literal '${' is written '$${'.",
                fix="Complete the reference, or escape it as '$${'.",
                example="query: \"SELECT * FROM t WHERE day >= '${params.since}'\"",
            )
            template = Template((Text(text, locate(0, len(text))),), node.span, valid=False)
        return YScalar(text, node.span, node.style, node.offset, template)


class Parser:
    """Builds a Document from a YAML tree, collecting structural diagnostics."""

    def __init__(
        self, source: SourceText, diagnostics: DiagnosticList, merges: Sequence[Merge] = ()
    ) -> None:
        self.source = source
        self.diagnostics = diagnostics
        self.templates = _Templates(source, diagnostics)
        self.merges = tuple(dict.fromkeys(merges))

    # -- helpers -----------------------------------------------------------------------------

    def expect(self, node: YNode, kind: type, what: str, example: str = "") -> bool:
        if isinstance(node, kind) and not (
            isinstance(node, YScalar) and not isinstance(node.value, str)
        ):
            return True
        expected = phrase({YMap: "object", YSeq: "array", YScalar: "string"}[kind])
        self.diagnostics.error(
            "OML008",
            f"{what} must be {expected}, not {_type_name(node)}",
            node.span,
            why=f"OML reads {what} as {expected}.",
            fix=f"Write {what} as {expected}.",
            example=example,
        )
        return False

    def name(self, node: YNode, what: str) -> Name | None:
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return Name(node.value, node.span)
        if (
            isinstance(node, YScalar)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):
            return Name(str(node.value), node.span)  # `id: 1` is kept as the text "1"
        self.expect(node, YScalar, what)
        return None

    def printable(self, name: Name, what: str) -> Name:
        """name, with an OML122 when it holds a control character (NUL, ESC, BEL, a newline...)."""
        control = first_control(name.value)
        if control is not None:
            self.diagnostics.error(
                "OML122",
                f"{what} contains the control character {control}",
                name.span,
                why="Names end up in manifests, file names, logs and terminals, where a control "
                "character is invisible, cuts the text short (NUL) or drives the terminal (ESC).",
                fix=f"Remove the control character from {what}.",
            )
        return name

    def unknown_key(self, entry: YEntry, known: tuple[str, ...], where: str, code: str) -> None:
        key = str(entry.key.value)
        if key.startswith("x-"):
            return
        matches = close_matches(key, known)
        self.diagnostics.error(
            code,
            f"unknown key '{key}' in {where}",
            entry.key.span,
            why=f"{where.capitalize()} accepts only: {', '.join(known)} (and x-* extensions)."
            + did_you_mean(matches),
            fix="Remove the key, correct its spelling, or prefix it with 'x-' to keep it as an "
            "extension.",
            suggestions=replacements(matches, entry.key.span, word=key),
        )

    def missing(self, node: YMap, key: str, where: str, code: str, example: str) -> None:
        self.diagnostics.error(
            code,
            f"{where} is missing required key '{key}'",
            Span(node.span.file, node.span.start, node.span.start) if node.entries else node.span,
            why=f"{where[:1].upper()}{where[1:]} needs '{key}'.",
            fix=f"Add '{key}'.",
            example=example,
        )

    # -- document ----------------------------------------------------------------------------

    def document(self, root: YNode) -> Document | None:
        if not isinstance(root, YMap):
            self.diagnostics.error(
                "OML003",
                f"an OML document must be a mapping, not {_type_name(root)}",
                root.span,
                why="An OML file is a YAML mapping with oml_version, name and steps.",
                fix="Start the file with the top-level keys.",
                example='oml_version: "0.1.0"\nname: my-pipeline\nsteps:\n' + _EXAMPLE_STEP,
            )
            return None
        fields: dict[str, YEntry] = {}
        extensions = []
        for entry in root.entries:
            key = str(entry.key.value)
            if key in TOP_KEYS:
                fields[key] = entry
            elif key.startswith("x-"):
                extensions.append(entry)
            elif key in LEGACY_TOP:
                summary, fix, rename = LEGACY_TOP[key]
                self.diagnostics.error(
                    "OML005",
                    summary,
                    entry.key.span,
                    why="This key comes from an older pipeline format that OML 0.1.0 replaced.",
                    fix=fix,
                    suggestions=(
                        Suggestion(f"Rename to '{rename}'", rename, entry.key.span, safe=True),
                    )
                    if rename and rename not in root
                    else (),
                )
            else:
                self.unknown_key(entry, TOP_KEYS, "the pipeline", "OML004")
        version = self.oml_version(root, fields.get("oml_version"))
        name = None
        legacy = "pipeline" in root or "source" in root or "destination" in root
        if "name" in fields:
            name = self.name(fields["name"].value, "name")
            if name is not None:
                self.printable(name, "the pipeline name")
        elif "pipeline" not in root:
            self.missing(root, "name", "the pipeline", "OML006", "name: orders-to-warehouse")
        params = self.params(fields["params"].value) if "params" in fields else ()
        profiles = self.profiles(fields["profiles"].value) if "profiles" in fields else ()
        steps: tuple[Step, ...] = ()
        if "steps" in fields:
            steps = self.steps(fields["steps"].value)
        elif "tasks" not in root and not legacy:
            self.missing(root, "steps", "the pipeline", "OML006", "steps:\n" + _EXAMPLE_STEP)
        description = self.text(fields.get("description"), "description")
        metadata = fields["metadata"].value if "metadata" in fields else None
        if metadata is not None:
            self.expect(metadata, YMap, "metadata")
        return Document(
            version,
            name,
            description,
            metadata,
            params,
            profiles,
            steps,
            tuple(extensions),
            root.span,
            self.source,
            self.merges,
        )

    def oml_version(self, root: YMap, entry: YEntry | None) -> YScalar | None:
        if entry is None:
            if "version" not in root and "pipeline" not in root:
                self.missing(root, "oml_version", "the pipeline", "OML006", 'oml_version: "0.1.0"')
            return None
        node = entry.value
        if (
            not isinstance(node, YScalar)
            or str(node.value) != OML_VERSION
            or not isinstance(node.value, str)
        ):
            shown = node.value if isinstance(node, YScalar) else _type_name(node)
            self.diagnostics.error(
                "OML007",
                f'unsupported oml_version {shown!r}; this toolchain reads "{OML_VERSION}"',
                node.span,
                why="oml_version says which version of the language the file is written in; "
                'it must be the string "0.1.0" (quoted, so YAML does not read a number).',
                fix=f'Write oml_version: "{OML_VERSION}".',
                suggestions=(
                    Suggestion(f'Change to "{OML_VERSION}"', f'"{OML_VERSION}"', node.span),
                ),
            )
            return node if isinstance(node, YScalar) else None
        return node

    def text(self, entry: YEntry | None, what: str) -> str | None:
        if entry is None:
            return None
        node = entry.value
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return node.value
        self.expect(node, YScalar, what)
        return None

    # -- params and profiles -----------------------------------------------------------------

    def params(self, node: YNode) -> tuple[Param, ...]:
        if not self.expect(
            node, YMap, "params", 'params:\n  since: {type: string, default: "2024-01-01"}'
        ):
            return ()
        assert isinstance(node, YMap)
        out = []
        for entry in node.entries:
            name = self.printable(Name(str(entry.key.value), entry.key.span), "a param name")
            value = entry.value
            if not isinstance(value, YMap):  # shorthand: `since: "2024-01-01"`
                out.append(Param(name, None, value, None, None, entry.span))
                continue
            fields = {}
            for item in value.entries:
                if item.key.value in PARAM_KEYS:
                    fields[item.key.value] = item
                else:
                    self.unknown_key(item, PARAM_KEYS, f"param '{name.value}'", "OML010")
            ptype = None
            if "type" in fields:
                ptype = self.name(fields["type"].value, f"the type of param '{name.value}'")
                if ptype and ptype.value not in PARAM_TYPES:
                    matches = close_matches(ptype.value, PARAM_TYPES)
                    self.diagnostics.error(
                        "OML030",
                        f"unknown param type '{ptype.value}'",
                        ptype.span,
                        why="A param's type is one of: "
                        + ", ".join(PARAM_TYPES)
                        + "."
                        + did_you_mean(matches),
                        fix="Use one of the listed types.",
                        suggestions=replacements(matches, ptype.span, word=ptype.value),
                    )
                    ptype = None
            enum = None
            if "enum" in fields:
                enum_node = fields["enum"].value
                if self.expect(enum_node, YSeq, f"the enum of param '{name.value}'"):
                    enum = tuple(enum_node.to_python())
            out.append(
                Param(
                    name,
                    ptype,
                    fields["default"].value if "default" in fields else None,
                    self.text(fields.get("description"), "description"),
                    enum,
                    entry.span,
                )
            )
        return tuple(out)

    def profiles(self, node: YNode) -> tuple[Profile, ...]:
        if not self.expect(
            node, YMap, "profiles", "profiles:\n  prod:\n    params: {since: '2020-01-01'}"
        ):
            return ()
        assert isinstance(node, YMap)
        out = []
        for entry in node.entries:
            name = self.printable(Name(str(entry.key.value), entry.key.span), "a profile name")
            if not self.expect(entry.value, YMap, f"profile '{name.value}'"):
                continue
            assert isinstance(entry.value, YMap)
            params: tuple[YEntry, ...] = ()
            description = None
            for item in entry.value.entries:
                if item.key.value == "params":
                    if self.expect(item.value, YMap, f"the params of profile '{name.value}'"):
                        assert isinstance(item.value, YMap)
                        params = item.value.entries
                elif item.key.value == "description":
                    description = self.text(item, "description")
                else:
                    self.unknown_key(item, PROFILE_KEYS, f"profile '{name.value}'", "OML010")
            out.append(Profile(name, params, description, entry.span))
        return tuple(out)

    # -- steps -------------------------------------------------------------------------------

    def steps(self, node: YNode) -> tuple[Step, ...]:
        if not self.expect(node, YSeq, "steps", "steps:\n" + _EXAMPLE_STEP):
            return ()
        assert isinstance(node, YSeq)
        if not node.items:
            self.diagnostics.error(
                "OML009",
                "a pipeline needs at least one step",
                node.span,
                why="steps is empty, so there is nothing to run.",
                fix="Add a step.",
                example="steps:\n" + _EXAMPLE_STEP,
            )
        out = []
        for item in node.items:
            step = self.step(item)
            if step is not None:
                out.append(step)
        return tuple(out)

    def step(self, node: YNode) -> Step | None:
        if not self.expect(node, YMap, "a step", _EXAMPLE_STEP):
            return None
        assert isinstance(node, YMap)
        fields: dict[str, YEntry] = {}
        for entry in node.entries:
            key = str(entry.key.value)
            if key in STEP_KEYS:
                fields[key] = entry
            elif key in LEGACY_STEP and LEGACY_STEP[key][0] not in node:
                new, fix = LEGACY_STEP[key]
                self.diagnostics.error(
                    "OML005",
                    f"'{key}' is not a step key in OML 0.1.0; it is '{new}'",
                    entry.key.span,
                    why="This key comes from an older pipeline format.",
                    fix=fix,
                    suggestions=(
                        Suggestion(
                            f"Rename to '{new}'", new, entry.key.span, safe=_safe_rename(key, entry)
                        ),
                    ),
                )
            else:
                self.unknown_key(entry, STEP_KEYS, "a step", "OML010")
        step_id = self.step_id(fields.get("id"))
        where = f"step '{step_id.value}'" if step_id else "a step"
        for key in ("id", "component", "mode"):
            if key in fields:
                continue
            renamed_from_legacy = any(
                old in node for old, (new, _) in LEGACY_STEP.items() if new == key
            )
            if not renamed_from_legacy:
                self.missing(node, key, where, "OML011", _EXAMPLE_STEP)
        component = (
            self.name(fields["component"].value, "component") if "component" in fields else None
        )
        mode = self.name(fields["mode"].value, "mode") if "mode" in fields else None
        config = None
        if "config" in fields:
            value = fields["config"].value
            if isinstance(value, YScalar) and value.value is None:
                config = YMap((), value.span)  # `config:` with nothing under it
            elif self.expect(value, YMap, f"the config of {where}"):
                assert isinstance(value, YMap)
                config = self.templates.visit_YMap(value)
        needs = self.needs(fields["needs"].value) if "needs" in fields else ()
        inputs = self.inputs(fields["inputs"].value, where) if "inputs" in fields else ()
        description = self.text(fields.get("description"), "description")
        partition = None
        if "partition" in fields:
            value = fields["partition"].value
            example = "partition: {column: id, count: 8}"
            if self.expect(value, YMap, f"the partition of {where}", example):
                assert isinstance(value, YMap)
                partition = self.templates.visit_YMap(value)
        return Step(
            step_id, component, mode, config, needs, inputs, description, node.span, partition
        )

    def step_id(self, entry: YEntry | None) -> Name | None:
        if entry is None:
            return None
        name = self.name(entry.value, "a step id")
        if name is None:
            return None
        if not STEP_ID.fullmatch(name.value):
            fixed = re.sub(r"[^A-Za-z0-9_-]+", "-", name.value).strip("-")
            if fixed and not fixed[0].isalpha():
                fixed = "s-" + fixed
            self.diagnostics.error(
                "OML012",
                f"invalid step id '{name.value}'",
                name.span,
                why="A step id starts with a letter and contains only letters, digits, '-' and '_', "
                "so it can name a table and appear in ${id.df} references.",
                fix="Rename the step.",
                example="id: extract-orders",
                suggestions=(Suggestion(f"Rename to '{fixed}'", fixed, name.span),)
                if fixed
                else (),
            )
        elif len(name.value) > MAX_STEP_ID_LENGTH:
            self.diagnostics.error(
                "OML012",
                f"step id is {len(name.value)} characters long; at most {MAX_STEP_ID_LENGTH}",
                name.span,
                why="A step id names files of the compiled manifest and of each run "
                f"(cfg/<id>.json, artifacts/<id>/); {MAX_STEP_ID_LENGTH} characters keeps every "
                "such name within the 255-byte file-name limit of common file systems.",
                fix="Shorten the step id (the description field can say more).",
                example="id: load-orders",
            )
        return name

    def needs(self, node: YNode) -> tuple[StepRef, ...]:
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return (StepRef(node.value, node.span),)  # `needs: extract` is read as a list of one
        if not self.expect(node, YSeq, "needs", "needs: [extract-orders]"):
            return ()
        assert isinstance(node, YSeq)
        out = []
        for item in node.items:
            name = self.name(item, "an entry of needs")
            if name is not None:
                out.append(StepRef(name.value, name.span))
        return tuple(out)

    def inputs(self, node: YNode, where: str) -> tuple[Input, ...]:
        if not self.expect(
            node, YMap, f"the inputs of {where}", 'inputs: {df: "${extract-orders.df}"}'
        ):
            return ()
        assert isinstance(node, YMap)
        return tuple(
            Input(
                self.printable(Name(str(e.key.value), e.key.span), "an input name"),
                self.input_value(e.value),
                e.span,
            )
            for e in node.entries
        )

    def input_value(self, node: YNode) -> YNode:
        # Only a string can be a reference; a list or mapping is reported by the checker (OML043).
        return self.templates.visit_YScalar(node) if isinstance(node, YScalar) else node


def parse(
    text: str, file: str = "<string>", diagnostics: DiagnosticList | None = None
) -> tuple[Document | None, DiagnosticList]:
    """Parse OML source text into a Document (None when it is not even a YAML mapping)."""
    diagnostics = diagnostics if diagnostics is not None else DiagnosticList()
    source = SourceText(file, text)
    merges: list[Merge] = []
    with gc_paused:  # the YAML tree and the AST are built as one (see yamltree._GcPause)
        root = parse_yaml(source, diagnostics, merges)
        if root is None:
            return None, diagnostics
        return Parser(source, diagnostics, merges).document(root), diagnostics


def mention_merges(diagnostics: Iterable[Diagnostic], merges: Sequence[Merge]) -> list[Diagnostic]:
    """Diagnostics inside a mapping merged by `<<` elsewhere also name where it was merged.

    Their spans stay where the value is written (the anchored mapping); the note says which
    `<<` keys brought it into the pipeline.
    """
    out = []
    for d in diagnostics:
        span = d.span
        sites = [
            m
            for m in merges
            if span is not None
            and span.file == m.origin.file
            and m.origin.start.byte <= span.start.byte
            and span.end.byte <= m.origin.end.byte
        ]
        if sites:
            uses = [
                f"'<<: {alias}' on line {line}" if alias else f"'<<' on line {line}"
                for line, alias in sorted({(m.at.start.line, m.alias) for m in sites})
            ]
            listed = ", ".join(uses[:-1]) + " and " + uses[-1] if len(uses) > 1 else uses[0]
            note = f"This value is merged in by {listed}."
            d = dataclasses.replace(d, why=f"{d.why} {note}".strip())
        out.append(d)
    return out
