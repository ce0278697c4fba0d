"""Diagnostics as data: code, severity, summary, detail, span and quick-fix suggestions."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from osiris.oml.controls import escape_controls
from osiris.oml.span import Span


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A replacement of the text at span; an editor offers it as a quick fix."""

    title: str
    replacement: str
    span: Span
    # Safe: applied without asking by `omlc check --fix`, the LLM front end and the editor's
    # fix-all (compiler/fixes.py); only for unambiguous repairs that keep the author's meaning.
    safe: bool = False


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    summary: str
    span: Span | None
    why: str = ""
    fix: str = ""
    example: str = ""
    suggestions: tuple[Suggestion, ...] = ()
    # Source text renderers never show (an inline secret): masked in every excerpt of the file.
    masked: tuple[Span, ...] = ()

    def __post_init__(self) -> None:
        # A summary is one printable line whatever names from the file it quotes.
        summary = escape_controls(self.summary, newlines=False)
        if summary is not self.summary:
            object.__setattr__(self, "summary", summary)

    @property
    def detail(self) -> str:
        parts = [
            self.why,
            f"Fix: {self.fix}" if self.fix else "",
            self.example and "Example:\n" + self.example,
        ]
        return "\n".join(p for p in parts if p)

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.start.byte, self.span.end.byte, self.code)


class Detail(TypedDict, total=False):
    """The optional parts of a diagnostic, as keyword arguments."""

    why: str
    fix: str
    example: str
    suggestions: tuple[Suggestion, ...]
    masked: tuple[Span, ...]


@dataclass(slots=True)
class DiagnosticList:
    """Collects diagnostics across stages; errors are gathered, never raised one by one."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def error(self, code: str, summary: str, span: Span | None, **detail: Unpack[Detail]) -> None:
        self.items.append(Diagnostic(code, Severity.ERROR, summary, span, **detail))

    def warning(self, code: str, summary: str, span: Span | None, **detail: Unpack[Detail]) -> None:
        self.items.append(Diagnostic(code, Severity.WARNING, summary, span, **detail))

    def extend(self, more: Iterable[Diagnostic]) -> None:
        self.items.extend(more)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        """In source order, without exact duplicates."""
        seen: set[tuple[object, ...]] = set()
        out = []
        for d in sorted(self.items, key=Diagnostic.sort_key):
            key = (d.code, d.summary, d.span)
            if key not in seen:
                seen.add(key)
                out.append(d)
        return out


def count(diagnostics: Iterable[Diagnostic]) -> tuple[int, int]:
    """(errors, warnings)."""
    errors = warnings = 0
    for d in diagnostics:
        if d.severity is Severity.ERROR:
            errors += 1
        else:
            warnings += 1
    return errors, warnings
