"""Diagnostic renderers: terminal text (source line + caret underline) and the JSON envelope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from osiris.oml.controls import escape_controls
from osiris.oml.diagnostics import Diagnostic, Severity, count
from osiris.oml.span import SourceText, Span

DEFAULT_LIMIT = 50
MASK = "********"  # shown instead of masked source text (its length says nothing either)

_COLORS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m"}
_BOLD, _DIM, _CYAN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[36m", "\x1b[0m"


def render_text(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, SourceText],
    *,
    color: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> str:
    """Human-readable diagnostics, capped at limit with '… and N more'.

    Control characters from the source are escaped everywhere, and the text any diagnostic
    masks (an inline secret) is never shown, in whichever excerpt its line appears.
    """

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    masks: dict[str, list[Span]] = {}
    for d in diagnostics:
        for span in d.masked:
            masks.setdefault(span.file, []).append(span)
    blocks = []
    for d in diagnostics[:limit]:
        lines = []
        where = ""
        if d.span is not None:
            file = escape_controls(d.span.file, newlines=False)
            where = f"{file}:{d.span.start.line}:{d.span.start.column}: "
        head = paint(_COLORS[d.severity], f"{d.severity.value}[{d.code}]")
        summary = escape_controls(d.summary, newlines=False)
        lines.append(f"{paint(_BOLD, where)}{head}: {paint(_BOLD, summary)}")
        source = sources.get(d.span.file) if d.span is not None else None
        if d.span is not None and source is not None:
            lines.extend(_excerpt(d, source, masks.get(d.span.file, []), paint))
        for text in (d.why, f"fix: {d.fix}" if d.fix else ""):
            if text:
                lines.append(paint(_DIM, "  = ") + escape_controls(text).replace("\n", "\n    "))
        if d.example:
            lines.append(paint(_DIM, "  = example:"))
            lines.extend("      " + escape_controls(line) for line in d.example.splitlines())
        blocks.append("\n".join(lines))
    if len(diagnostics) > limit:
        blocks.append(f"… and {len(diagnostics) - limit} more")
    errors, warnings = count(diagnostics)
    blocks.append(_summary(errors, warnings))
    return "\n\n".join(blocks) + "\n"


def _excerpt(d: Diagnostic, source: SourceText, masks: list[Span], paint: Any) -> list[str]:
    assert d.span is not None
    line_no = d.span.start.line
    text = source.line_text(line_no)
    if not text and line_no > source.line_count:
        return []
    shown, at = _display(text, _masked_columns(masks, line_no, len(text)))
    gutter = str(line_no)
    start = min(d.span.start.column - 1, len(text))
    end = min(d.span.end.column - 1, len(text)) if d.span.end.line == line_no else len(text)
    caret = " " * at[start] + "^" * max(1, at[max(start, end)] - at[start])
    pad = " " * len(gutter)
    return [
        f"{pad} {paint(_CYAN, '|')}",
        f"{paint(_CYAN, gutter)} {paint(_CYAN, '|')} {shown}",
        f"{pad} {paint(_CYAN, '|')} {paint(_COLORS[d.severity], caret)}",
    ]


def _masked_columns(masks: list[Span], line_no: int, length: int) -> dict[int, int]:
    """0-based start column -> end column of the masked text on a line (overlaps merged)."""
    ranges = sorted(
        (
            span.start.column - 1 if span.start.line == line_no else 0,
            span.end.column - 1 if span.end.line == line_no else length,
        )
        for span in masks
        if span.start.line <= line_no <= span.end.line
    )
    merged: dict[int, int] = {}
    last = -1
    for start, end in ranges:
        if merged and start <= merged[last]:
            merged[last] = max(merged[last], end)
        elif end > start:
            merged[start] = end
            last = start
    return merged


def _display(text: str, masked: dict[int, int]) -> tuple[str, list[int]]:
    """A source line as shown (tabs as one space, control characters escaped, masked text as
    MASK) and, for each character offset in it, the column where it is shown."""
    pieces: list[str] = []
    at = [0] * (len(text) + 1)
    column = i = 0
    while i < len(text):
        end = masked.get(i)
        if end is not None:
            for j in range(i, min(end, len(text))):
                at[j] = column
            pieces.append(MASK)
            column += len(MASK)
            i = max(end, i + 1)
            continue
        at[i] = column
        char = text[i]
        piece = " " if char == "\t" else escape_controls(char, newlines=False)
        pieces.append(piece)
        column += len(piece)
        i += 1
    at[len(text)] = column
    return "".join(pieces), at


def _summary(errors: int, warnings: int) -> str:
    if not errors and not warnings:
        return "OK: no problems found."
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ("Invalid: " if errors else "Valid with ") + " and ".join(parts) + "."


def diagnostic_to_dict(d: Diagnostic) -> dict[str, Any]:
    out: dict[str, Any] = {
        "severity": d.severity.value,
        "code": d.code,
        "summary": escape_controls(d.summary, newlines=False),
        "detail": escape_controls(d.detail),
    }
    if d.span is not None:
        out["range"] = d.span.to_dict()
    if d.suggestions:
        out["suggestions"] = [
            {
                "title": escape_controls(s.title, newlines=False),
                "replacement": s.replacement,
                "range": s.span.to_dict(),
            }
            | ({"safe": True} if s.safe else {})
            for s in d.suggestions
        ]
    return out


def render_json(diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    """The `terraform validate -json` envelope."""
    errors, warnings = count(diagnostics)
    return {
        "format_version": "1.0",
        "valid": errors == 0,
        "error_count": errors,
        "warning_count": warnings,
        "diagnostics": [diagnostic_to_dict(d) for d in diagnostics],
    }


def envelope(diagnostics: Sequence[Diagnostic] = (), **fields: Any) -> dict[str, Any]:
    """A command's JSON output: render_json's envelope plus the command's own fields."""
    return {**render_json(diagnostics), **fields}


def error_envelope(message: str, *, code: str, exit_code: int, **fields: Any) -> dict[str, Any]:
    """A command-line error (usage, unknown component, …) as a one-diagnostic envelope."""
    error = Diagnostic(code=code, severity=Severity.ERROR, summary=message, span=None)
    return envelope([error], exit_code=int(exit_code), error=error.summary, **fields)
