"""What names the cursor is on: a component, mode, config key, connection, step or param reference."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsprotocol import types

from osiris.compiler.lsp.context import (
    Context,
    Outline,
    StepOutline,
    context_at,
    plain,
    scan,
    word_at,
)
from osiris.compiler.lsp.positions import cursor, units
from osiris.compiler.lsp.state import DocumentState

_REF = re.compile(r"(?<!\$)\$\{([^}]*)\}")


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # component | mode | field | connection | step | param
    # the component, mode, field, step id or param name; "family.alias" for connections;
    # "paginator.type" for a field nested in an object field
    name: str
    line: int
    start: int  # code-point columns of the name on the line
    end: int
    step: StepOutline | None  # the step the cursor is in

    def range(self, state: DocumentState) -> types.Range:
        raw = state.outline.lines[self.line]
        enc = state.encoding
        return types.Range(
            types.Position(self.line, units(raw[: self.start], enc)),
            types.Position(self.line, units(raw[: self.end], enc)),
        )


def step_value(doc: Outline, step: StepOutline | None, key: str) -> str | None:
    """A one-line value of a step key as the text has it (mode, component, id)."""
    if step is None or key not in step.keys:
        return None
    return plain(scan(doc.lines[step.keys[key]]).value) or None


def target_at(state: DocumentState, position: types.Position) -> Target | None:
    doc = state.outline
    line, col = cursor(state.source, position, state.encoding)
    if line >= len(doc.lines):
        return None
    raw = doc.lines[line]
    ctx = context_at(doc, line, col)
    if ctx.key is not None or ctx.block:
        found = _reference(raw, col, ctx)
        if found is not None:
            return found
    step_item = ctx.path == ("steps", "-")
    if step_item and ctx.key in ("component", "mode"):
        start, end = word_at(raw, col, "_-.")
        value = raw[start:end]
        return Target(ctx.key, value, line, start, end, ctx.step) if value else None
    if step_item and ctx.key == "needs":
        return _step(doc, raw, line, col, ctx)
    if ctx.path[:3] != ("steps", "-", "config"):
        return None
    if ctx.key is None:  # a field name; one nested in object fields is dotted: paginator.type
        start, end = word_at(raw, col, "_-")
        name = ".".join((*ctx.path[3:], raw[start:end]))
        return Target("field", name, line, start, end, ctx.step) if end > start else None
    if len(ctx.path) != 3:
        return None
    if ctx.key == "connection":
        start, end = word_at(raw, col, "_-.@")
        token = raw[start:end]
        if token.startswith("@") and len(token) > 1:
            return Target("connection", token[1:], line, start, end, ctx.step)
        return None
    if ctx.key == "query" and ctx.step is not None and ctx.step.component == "duckdb.processor":
        return _step(doc, raw, line, col, ctx, query=True)
    return None


def _reference(raw: str, col: int, ctx: Context) -> Target | None:
    for match in _REF.finditer(raw):
        if not match.start() <= col <= match.end():
            continue
        parts = match.group(1).split(".")
        offset = match.start(1)
        if parts[0] == "params" and len(parts) == 2:
            start = offset + len("params.")
            return Target("param", parts[1], ctx.line, start, start + len(parts[1]), ctx.step)
        if parts[0] == "steps" and len(parts) >= 2:
            start = offset + len("steps.")
            return Target("step", parts[1], ctx.line, start, start + len(parts[1]), ctx.step)
        if parts[0] and parts[0] != "params":
            return Target("step", parts[0], ctx.line, offset, offset + len(parts[0]), ctx.step)
    return None


def _step(
    doc: Outline, raw: str, line: int, col: int, ctx: Context, query: bool = False
) -> Target | None:
    start, end = word_at(raw, col, "_-")
    word = raw[start:end]
    if not word:
        return None
    if doc.step(word) is not None:
        return Target("step", word, line, start, end, ctx.step)
    if query and word.startswith("df_") and doc.step(word[3:]) is not None:
        return Target("step", word[3:], line, start, end, ctx.step)
    if query and word in ("input", "input_df"):
        return Target("step", word, line, start, end, ctx.step)  # resolved by the caller
    return None
