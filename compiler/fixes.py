"""Safe fixes: apply the unambiguous repairs diagnostics carry, re-checking until none is left.

One engine for `omlc check --fix`, the editor's fix-all and the LLM front end: which
suggestions are safe is decided where each diagnostic is made (`Suggestion.safe`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from osiris.compiler.frontend import CheckResult
from osiris.oml.diagnostics import Diagnostic, Suggestion

MAX_ROUNDS = 10  # a fix can reveal another (a quoted ref lets the rest parse); never loop forever


@dataclass(frozen=True, slots=True)
class AppliedFix:
    code: str
    title: str
    line: int
    before: str
    after: str

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "title": self.title, "line": self.line}


@dataclass(frozen=True, slots=True)
class FixResult:
    text: str
    applied: tuple[AppliedFix, ...]
    result: CheckResult  # the check of `text`, after the fixes

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def safe_edits(diagnostics: Iterable[Diagnostic], file: str) -> list[tuple[Diagnostic, Suggestion]]:
    """One safe suggestion per diagnostic that has exactly one, in this file, never overlapping."""
    chosen: list[tuple[Diagnostic, Suggestion]] = []
    for d in diagnostics:
        safe = [s for s in d.suggestions if s.safe and s.span.file == file]
        if len(safe) == 1 and len(d.suggestions) == 1:
            chosen.append((d, safe[0]))
    chosen.sort(key=lambda pair: (pair[1].span.start.byte, pair[1].span.end.byte))
    kept: list[tuple[Diagnostic, Suggestion]] = []
    end = -1
    for d, s in chosen:
        if kept and s.span == kept[-1][1].span:
            continue  # two diagnostics proposing the same edit: apply it once
        if s.span.start.byte < end:
            continue  # overlaps an edit already kept; the next round re-checks
        kept.append((d, s))
        end = s.span.end.byte
    return kept


def apply_edits(
    text: str, edits: Iterable[tuple[Diagnostic, Suggestion]]
) -> tuple[str, list[AppliedFix]]:
    data = text.encode("utf-8")
    applied = []
    for d, s in sorted(edits, key=lambda pair: pair[1].span.start.byte, reverse=True):
        start, end = s.span.start.byte, s.span.end.byte
        before = data[start:end].decode("utf-8", "replace")
        data = data[:start] + s.replacement.encode("utf-8") + data[end:]
        applied.append(AppliedFix(d.code, s.title, s.span.start.line, before, s.replacement))
    applied.reverse()
    return data.decode("utf-8"), applied


def fix_text(
    text: str,
    check: Callable[[str], CheckResult],
    normalise: Callable[[str], str] | None = None,
) -> FixResult:
    """Apply safe fixes and re-check until the check offers none (or MAX_ROUNDS). normalise,
    when given, rewrites the text after each round's edits, before its check (the LLM front
    end puts renamed keys back in canonical order); it must keep the document's meaning."""
    applied: list[AppliedFix] = []
    seen = {text}
    result = check(text)
    for _ in range(MAX_ROUNDS):
        edits = safe_edits(result.diagnostics, result.source.file)
        if not edits:
            break
        fixed, done = apply_edits(text, edits)
        if normalise is not None:
            fixed = normalise(fixed)
        if fixed in seen:
            break  # the fixes would undo one another
        seen.add(fixed)
        text = fixed
        applied.extend(done)
        result = check(text)
    return FixResult(text, tuple(applied), result)


def unified_diff(before: str, after: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=name,
            tofile=f"{name} (fixed)",
        )
    )


def write_atomically(path: Path, text: str) -> None:
    """Replace path's content in one step: a reader sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.osiris-tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
