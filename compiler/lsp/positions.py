"""LSP positions (0-based line, UTF-16/8/32 code units) to and from our spans and character offsets."""

from __future__ import annotations

from lsprotocol import types

from osiris.oml.span import SourceText, Span

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def units(text: str, encoding: str = UTF16) -> int:
    """Length of text in the encoding's code units."""
    if text.isascii() or encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8"))
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def column_from_units(line: str, character: int, encoding: str = UTF16) -> int:
    """0-based code-point column of a code-unit offset within line (clamped to the line)."""
    if line.isascii() or encoding == UTF32:
        return max(0, min(character, len(line)))
    count = 0
    for index, ch in enumerate(line):
        if count >= character:
            return index
        count += units(ch, encoding)
    return len(line)


def lsp_position(
    source: SourceText, line: int, column: int, encoding: str = UTF16
) -> types.Position:
    """LSP position of a 1-based line and 1-based code-point column."""
    text = source.line_text(line)
    return types.Position(max(0, line - 1), units(text[: max(0, column - 1)], encoding))


def span_range(source: SourceText, span: Span | None, encoding: str = UTF16) -> types.Range:
    """LSP range of a span (the start of the file when there is none)."""
    if span is None:
        return types.Range(types.Position(0, 0), types.Position(0, 0))
    start = lsp_position(source, span.start.line, span.start.column, encoding)
    end = lsp_position(source, span.end.line, span.end.column, encoding)
    return types.Range(start, end)


def cursor(source: SourceText, position: types.Position, encoding: str = UTF16) -> tuple[int, int]:
    """(0-based line, 0-based code-point column) of an LSP position."""
    line_text = source.line_text(position.line + 1)
    return position.line, column_from_units(line_text, position.character, encoding)


def contains(outer: types.Range, inner: types.Range) -> bool:
    """Whether two ranges touch or overlap (used to pick diagnostics for a code-action request)."""

    def key(p: types.Position) -> tuple[int, int]:
        return (p.line, p.character)

    return key(outer.start) <= key(inner.end) and key(inner.start) <= key(outer.end)
