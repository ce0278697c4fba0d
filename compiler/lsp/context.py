"""Where is the cursor? Line-based inference from indentation that works while the YAML is broken."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

_KEY = re.compile(
    r"""(?P<key>"[^"]*"|'[^']*'|[^\s#'"{}\[\],:&*!|>%@`-][^#:]*?|-[^\s#:][^#:]*?)\s*:(?=\s|$)"""
)


@dataclass(frozen=True, slots=True)
class Line:
    """One source line split into its YAML parts (no multi-line knowledge)."""

    indent: int  # leading spaces
    dash: int | None  # column of a '- ' sequence-item marker
    col: int  # column where the content after indentation and dash starts
    key: str | None  # the mapping key on the line
    key_end: int  # column just after the key's ':'
    value: str  # the text after the ':' (or the whole content when there is no key), comment kept


def scan(text: str) -> Line:
    stripped = text.lstrip(" ")
    indent = len(text) - len(stripped)
    if not stripped.strip() or stripped.startswith("#"):
        return Line(indent, None, indent, None, indent, "")
    dash = None
    col = indent
    if stripped == "-" or stripped.startswith("- "):
        dash = indent
        rest = stripped[1:]
        col = indent + 1 + (len(rest) - len(rest.lstrip(" ")))
    content = text[col:]
    match = _KEY.match(content)
    if match is None:
        return Line(indent, dash, col, None, col, content)
    key = match.group("key")
    if key[:1] in "\"'":
        key = key[1:-1]
    end = col + match.end()
    return Line(indent, dash, col, key, end, text[end:])


def plain(value: str) -> str:
    """A one-line scalar value without comment and quotes."""
    value = value.strip()
    if value and value[0] in "\"'":
        close = value.find(value[0], 1)
        return value[1:close] if close > 0 else value[1:]
    return value.split(" #", 1)[0].strip()


@dataclass(slots=True)
class StepOutline:
    """A step item of `steps:` as the text shows it: lines, keys and the usual values."""

    start: int  # line of the '-'
    end: int  # first line after the item
    key_col: int
    keys: dict[str, int] = field(default_factory=dict)  # step key -> line
    id: str | None = None
    id_at: tuple[int, int, int] | None = None  # (line, start column, end column) of the id value
    component: str | None = None


@dataclass(slots=True)
class Outline:
    text: str
    lines: list[str]
    top: dict[str, int]  # top-level key -> line
    steps: list[StepOutline]
    params: list[str]  # names declared under params: (block style, or one flow mapping line)

    def step_at(self, line: int) -> StepOutline | None:
        starts = [s.start for s in self.steps]
        index = bisect.bisect_right(starts, line) - 1
        if index >= 0 and line < self.steps[index].end:
            return self.steps[index]
        return None

    def step(self, step_id: str) -> StepOutline | None:
        return next((s for s in self.steps if s.id == step_id), None)


def outline(text: str) -> Outline:
    """One pass over the lines: top-level keys and the step items under `steps:`."""
    lines = text.split("\n")
    top: dict[str, int] = {}
    steps: list[StepOutline] = []
    in_steps = in_params = False
    params: list[str] = []
    param_col: int | None = None
    item_dash: int | None = None
    current: StepOutline | None = None
    for number, raw in enumerate(lines):
        if not raw.strip() or raw.lstrip(" ").startswith("#"):
            continue
        if raw[0] not in " -":
            line = scan(raw)
            if line.key is not None:
                top[line.key] = number
            in_steps = line.key == "steps"
            in_params = line.key == "params"
            if in_params and line.value.strip().startswith("{"):
                params.extend(_flow_keys(line.value))
            item_dash = None
            if current is not None:
                current.end = number
                current = None
            continue
        if in_params:
            line = scan(raw)
            param_col = line.col if param_col is None else param_col
            if line.key is not None and line.col == param_col and line.dash is None:
                params.append(line.key)
            continue
        if not in_steps:
            continue
        line = scan(raw)
        if line.dash is not None and (item_dash is None or line.dash == item_dash):
            item_dash = line.dash
            if current is not None:
                current.end = number
            current = StepOutline(number, len(lines), line.col)
            steps.append(current)
        if current is None or line.key is None or line.col != current.key_col:
            continue
        if line.dash is not None and line.dash != item_dash:
            continue
        current.keys.setdefault(line.key, number)
        if line.key in ("id", "component"):
            value = plain(line.value)
            if line.key == "component":
                current.component = value or None
            elif value:
                current.id = value
                start = raw.find(value, line.key_end)
                current.id_at = (number, start, start + len(value))
    return Outline(text, lines, top, steps, params)


def _flow_keys(value: str) -> list[str]:
    """Top-level keys of a one-line flow mapping: `{a: 1, b: {c: 2}}` -> [a, b]."""
    keys, depth, start = [], 0, 1
    for index, ch in enumerate(value):
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "," and depth == 1:
            start = index + 1
        elif ch == ":" and depth == 1 and start >= 0:
            keys.append(plain(value[start:index]))
            start = -1
    return [k for k in keys if k]


@dataclass(slots=True)
class Context:
    """The cursor's place in the document."""

    line: int
    column: int
    path: tuple[str, ...]  # keys from the root to the mapping holding the cursor ('-' = an item)
    key: str | None = None  # the key whose value the cursor is in (None: typing a key)
    block: bool = False  # inside a block or multi-line scalar
    prefix: str = ""  # what is typed of the current token
    start: int = 0  # column where the token starts
    quote: str | None = None  # the quote the token is in
    siblings: frozenset[str] = frozenset()  # keys already present beside the cursor
    step: StepOutline | None = None


def _ancestors(lines: list[str], number: int, need: int, seq: bool) -> tuple[list[str], bool]:
    """Keys above (line number, column need) that contain it, root first, and whether the nearest
    one holds a block or multi-line scalar (so the position is inside that string).

    seq: the position is a '- ' item, whose parent key may sit at the same indentation.
    """
    path: list[str] = []
    block = False
    first = True
    for index in range(number - 1, -1, -1):
        raw = lines[index]
        stripped = raw.lstrip(" ")
        indent = len(raw) - len(stripped)
        if indent > need or not stripped or stripped.startswith("#"):
            continue
        line = scan(raw)
        if line.dash is not None:
            if line.dash >= need:
                continue
            # inside this item: its own key line may be our parent (`- config:` + deeper lines)
            if line.key is not None and line.col < need and not _value(line):
                path.append(line.key)
            path.append("-")
            first = False
            need, seq = line.dash, True
            continue
        if line.key is None or not (indent < need or (seq and indent == need)):
            continue
        if _value(line) and first:
            block = True  # a `key: |` block scalar or a multi-line plain scalar
        elif _value(line):
            continue
        path.append(line.key)
        first = False
        need, seq = indent, False
        if need == 0:
            break
    return path[::-1], block


def _value(line: Line) -> str:
    return line.value.split(" #")[0].strip()


def _siblings(lines: list[str], number: int, col: int, up: bool = True) -> frozenset[str]:
    """Keys at column col of the mapping block that holds line number."""
    found = set()
    for direction in (-1, 1) if up else (1,):
        index = number + direction
        while 0 <= index < len(lines):
            raw = lines[index]
            stripped = raw.lstrip(" ")
            if stripped and not stripped.startswith("#"):
                line = scan(raw)
                if (
                    line.key is not None
                    and line.col == col
                    and (line.dash is None or direction < 0)
                ):
                    found.add(line.key)
                    if line.dash is not None:
                        break  # the first line of this item
                elif line.indent < col and (line.dash is None or line.dash < col):
                    break
            index += direction
    return frozenset(found)


def _flow(value: str) -> tuple[list[tuple[str, str | None, bool]], int, str | None, set[str]]:
    """Scan a flow value up to the cursor: (open frames, token start, open quote, keys seen)."""
    frames: list[tuple[str, str | None, bool]] = []  # (bracket, key, in value)
    start = 0
    quote: str | None = None
    keys: set[str] = set()
    index = 0
    while index < len(value):
        ch = value[index]
        if quote is not None:
            if ch == quote and not (quote == '"' and value[index - 1] == "\\"):
                quote = None
            index += 1
            continue
        if ch in "\"'" and not value[start:index].strip():
            quote, start = ch, index + 1
        elif ch in "[{":
            frames.append((ch, None, False))
            start = index + 1
        elif ch in "]}":
            if frames:
                frames.pop()
            start = index + 1
        elif ch == "," and frames:
            bracket, _, _ = frames[-1]
            frames[-1] = (bracket, None, False)
            start = index + 1
        elif (
            ch == ":"
            and frames
            and frames[-1][0] == "{"
            and value[index + 1 : index + 2] in ("", " ")
        ):
            key = plain(value[start:index])
            keys.add(key)
            frames[-1] = ("{", key, True)
            start = index + 1
        elif ch == "#" and (index == 0 or value[index - 1] == " ") and not frames:
            break
        index += 1
    while start < len(value) and value[start] == " " and quote is None:
        start += 1
    return frames, start, quote, keys


def context_at(doc: Outline, number: int, column: int) -> Context:
    """The context of (0-based line, 0-based code-point column) in the outlined text."""
    lines = doc.lines
    raw = lines[number] if number < len(lines) else ""
    before = raw[:column]
    line = scan(raw)
    ctx = Context(number, column, ())
    if not before.strip():  # a key is about to be typed here
        path, block = _ancestors(lines, number, column, False)
        ctx.path = tuple(path)
        ctx.start = column
        if block:
            ctx.key, ctx.path, ctx.block = path[-1], tuple(path[:-1]), True
        else:
            ctx.siblings = _siblings(lines, number, column)
        return _with_step(doc, ctx)
    if line.dash is not None and column > line.dash:
        path, block = _ancestors(lines, number, line.dash, True)
        base = (*path, "-")
    else:
        path, block = _ancestors(lines, number, line.col, False)
        base = tuple(path)
    if block:
        ctx.path, ctx.key, ctx.block = tuple(path[:-1]), path[-1], True
        ctx.start = _word_start(raw, column)
        ctx.prefix = raw[ctx.start : column]
        return _with_step(doc, ctx)
    if line.key is not None and column >= line.key_end:
        frames, start, quote, keys = _flow(raw[line.key_end : column])
        ctx.path, ctx.key = base, line.key
        for bracket, key, in_value in frames:
            if bracket == "[":
                continue
            if in_value:
                ctx.path, ctx.key = (*ctx.path, ctx.key or "-"), key
            else:
                ctx.path, ctx.key = (*ctx.path, ctx.key or "-"), None
                ctx.siblings = frozenset(keys)
        ctx.start = line.key_end + start
        ctx.quote = quote
        ctx.prefix = raw[ctx.start : column]
        return _with_step(doc, ctx)
    # typing a key, or a plain list item (`- extract-or`)
    ctx.start = line.col
    ctx.prefix = raw[line.col : column]
    if line.dash is not None and line.key is None and path and path != ["steps"]:
        ctx.path, ctx.key = tuple(path[:-1]), path[-1]
        frames, start, quote, _ = _flow(raw[line.col : column])
        ctx.start, ctx.quote = line.col + start, quote
        ctx.prefix = raw[ctx.start : column]
        return _with_step(doc, ctx)
    ctx.path = base
    ctx.siblings = _siblings(lines, number, line.col, line.dash is None) - {line.key or ""}
    return _with_step(doc, ctx)


def _word_start(raw: str, column: int) -> int:
    start = column
    while start > 0 and (raw[start - 1].isalnum() or raw[start - 1] in "_-.@${"):
        start -= 1
    return start


def _with_step(doc: Outline, ctx: Context) -> Context:
    if ctx.path[:2] == ("steps", "-"):
        ctx.step = doc.step_at(ctx.line)
    return ctx


def word_at(raw: str, column: int, chars: str = "_-.") -> tuple[int, int]:
    """(start, end) columns of the word around column (letters, digits and chars)."""
    start = end = column
    while start > 0 and (raw[start - 1].isalnum() or raw[start - 1] in chars):
        start -= 1
    while end < len(raw) and (raw[end].isalnum() or raw[end] in chars):
        end += 1
    return start, end
