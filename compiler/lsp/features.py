"""Diagnostics, formatting and quick fixes: thin mappings of the checker's and formatter's results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from osiris.compiler.lsp.positions import UTF16, contains, span_range, units
from osiris.compiler.lsp.state import Connections, DocumentState, uri_to_path
from osiris.oml.controls import escape_controls
from osiris.oml.diagnostics import Diagnostic, Severity
from osiris.oml.span import SourceText

if TYPE_CHECKING:
    from osiris.compiler.check_schema import Catalogs
    from osiris.compiler.frontend import CheckResult

SOURCE = "osiris"
_SEVERITY = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
}


def analyse(
    text: str,
    uri: str,
    connections: Connections | None = None,
    catalogs: Catalogs | None = None,
) -> CheckResult:
    """Run THE checker (`omlc check`'s check_text) over the text; connection problems included,
    and with catalogs (the cached discovery) the schema-aware checks."""
    from osiris.compiler.frontend import CheckResult, check_text

    index = connections.index if connections is not None else None
    result = check_text(text, uri_to_path(uri), connections=index, catalogs=catalogs)
    if connections is None or not connections.problems:
        return result
    merged = tuple(connections.problems) + result.diagnostics
    return CheckResult(result.file, result.source, result.document, result.context, merged)


def lsp_diagnostic(d: Diagnostic, source: SourceText, encoding: str = UTF16) -> types.Diagnostic:
    """One OML diagnostic as LSP: same code, severity and span; message = summary + why."""
    own = d.span is not None and d.span.file == source.file
    message = escape_controls(d.summary, newlines=False) + (f"\n{d.why}" if d.why else "")
    if d.span is not None and not own:
        message += f"\n({d.span.file}:{d.span.start.line}:{d.span.start.column})"
    return types.Diagnostic(
        range=span_range(source, d.span if own else None, encoding),
        message=escape_controls(message),
        severity=_SEVERITY[d.severity],
        code=d.code,
        source=SOURCE,
    )


def lsp_diagnostics(result: CheckResult, encoding: str = UTF16) -> list[types.Diagnostic]:
    return [lsp_diagnostic(d, result.source, encoding) for d in result.diagnostics]


def diagnose(
    text: str, uri: str, connections: Connections | None = None, encoding: str = UTF16
) -> list[types.Diagnostic]:
    """LSP diagnostics of a document's text, exactly those of `omlc check`."""
    return lsp_diagnostics(analyse(text, uri, connections), encoding)


def formatting(state: DocumentState) -> list[types.TextEdit]:
    """The canonical formatter's output as one whole-document edit (none if unchanged or invalid)."""
    from osiris.oml.format import format_text

    formatted, _ = format_text(state.text, state.path)
    if formatted is None or formatted == state.text:
        return []
    return [types.TextEdit(range=whole_range(state.source, state.encoding), new_text=formatted)]


def whole_range(source: SourceText, encoding: str = UTF16) -> types.Range:
    last = source.line_count
    end = types.Position(last - 1, units(source.line_text(last), encoding))
    if source.text.endswith("\r"):  # a trailing CR that line_text strips
        end = types.Position(last, 0)
    return types.Range(types.Position(0, 0), end)


FIX_ALL = types.CodeActionKind.SourceFixAll + ".osiris"


def code_actions(
    state: DocumentState, range_: types.Range, only: list[str] | None = None
) -> list[types.CodeAction]:
    """Every suggestion of the diagnostics touching range_ as a quick fix, plus one action that
    applies all safe fixes (the engine `omlc check --fix` uses)."""
    wanted = only or [types.CodeActionKind.QuickFix, types.CodeActionKind.SourceFixAll]
    actions = []
    if any(FIX_ALL.startswith(kind) for kind in wanted):
        actions += fix_all(state)
    if not any(types.CodeActionKind.QuickFix.startswith(kind) for kind in wanted):
        return actions
    result = state.current()
    for d in result.diagnostics:
        if not d.suggestions or d.span is None or d.span.file != result.source.file:
            continue
        where = span_range(result.source, d.span, state.encoding)
        if not contains(range_, where):
            continue
        lsp = lsp_diagnostic(d, result.source, state.encoding)
        for suggestion in d.suggestions:
            edit = types.TextEdit(
                range=span_range(result.source, suggestion.span, state.encoding),
                new_text=suggestion.replacement,
            )
            actions.append(
                types.CodeAction(
                    title=suggestion.title,
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[lsp],
                    edit=types.WorkspaceEdit(changes={state.uri: [edit]}),
                    is_preferred=suggestion.safe or len(d.suggestions) == 1 or None,
                )
            )
    return actions


def fix_all(state: DocumentState) -> list[types.CodeAction]:
    """The safe fixes of the whole document as one edit, when there are any."""
    from functools import partial

    from osiris.compiler.fixes import fix_text
    from osiris.compiler.frontend import check_text

    index = state.connections.index if state.connections is not None else None
    outcome = fix_text(state.text, partial(check_text, file=state.path, connections=index))
    if not outcome.changed:
        return []
    edit = types.TextEdit(range=whole_range(state.source, state.encoding), new_text=outcome.text)
    count = len(outcome.applied)
    return [
        types.CodeAction(
            title=f"Fix all safe problems ({count})",
            kind=FIX_ALL,
            edit=types.WorkspaceEdit(changes={state.uri: [edit]}),
        )
    ]
