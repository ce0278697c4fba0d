"""Diagnostic renderers: terminal text (source line + caret underline) and the JSON envelope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from osiris.oml.diagnostics import Diagnostic, Severity, count
from osiris.oml.span import SourceText

DEFAULT_LIMIT = 50

_COLORS = {Severity.ERROR: "\x1b[1;31m", Severity.WARNING: "\x1b[1;33m"}
_BOLD, _DIM, _CYAN, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[36m", "\x1b[0m"


def render_text(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, SourceText],
    *,
    color: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> str:
    """Human-readable diagnostics, capped at limit with '… and N more'."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    blocks = []
    for d in diagnostics[:limit]:
        lines = []
        where = ""
        if d.span is not None:
            where = f"{d.span.file}:{d.span.start.line}:{d.span.start.column}: "
        head = paint(_COLORS[d.severity], f"{d.severity.value}[{d.code}]")
        lines.append(f"{paint(_BOLD, where)}{head}: {paint(_BOLD, d.summary)}")
        source = sources.get(d.span.file) if d.span is not None else None
        if d.span is not None and source is not None:
            lines.extend(_excerpt(d, source, paint))
        for text in (d.why, f"fix: {d.fix}" if d.fix else ""):
            if text:
                lines.append(paint(_DIM, "  = ") + text.replace("\n", "\n    "))
        if d.example:
            lines.append(paint(_DIM, "  = example:"))
            lines.extend("      " + line for line in d.example.splitlines())
        blocks.append("\n".join(lines))
    if len(diagnostics) > limit:
        blocks.append(f"… and {len(diagnostics) - limit} more")
    errors, warnings = count(diagnostics)
    blocks.append(_summary(errors, warnings))
    return "\n\n".join(blocks) + "\n"


def _excerpt(d: Diagnostic, source: SourceText, paint: Any) -> list[str]:
    assert d.span is not None
    line_no = d.span.start.line
    text = source.line_text(line_no)
    if not text and line_no > source.line_count:
        return []
    gutter = str(line_no)
    start = d.span.start.column - 1
    if d.span.end.line == line_no:
        width = max(1, d.span.end.column - d.span.start.column)
    else:
        width = max(1, len(text) - start)
    prefix = text[:start].expandtabs(1)
    caret = " " * len(prefix) + "^" * min(width, max(1, len(text) - start))
    pad = " " * len(gutter)
    return [
        f"{pad} {paint(_CYAN, '|')}",
        f"{paint(_CYAN, gutter)} {paint(_CYAN, '|')} {text.expandtabs(1)}",
        f"{pad} {paint(_CYAN, '|')} {paint(_COLORS[d.severity], caret)}",
    ]


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
        "summary": d.summary,
        "detail": d.detail,
    }
    if d.span is not None:
        out["range"] = d.span.to_dict()
    if d.suggestions:
        out["suggestions"] = [
            {"title": s.title, "replacement": s.replacement, "range": s.span.to_dict()}
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
