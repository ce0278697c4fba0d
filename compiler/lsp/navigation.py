"""Go to definition (steps, connection aliases, params) and document symbols."""

from __future__ import annotations

from lsprotocol import types

from osiris.compiler.lsp.context import StepOutline
from osiris.compiler.lsp.positions import span_range, units
from osiris.compiler.lsp.state import DocumentState, path_to_uri
from osiris.compiler.lsp.targets import Target, step_value, target_at
from osiris.oml.yamltree import YScalar


def upstream(state: DocumentState, step_id: str | None) -> list[str]:
    """Step ids a step reads (needs and inputs), from the current or last good AST."""
    document = state.document
    step = document.step(step_id) if document is not None and step_id else None
    if step is None:
        return []
    found = [ref.id for ref in step.needs]
    found += [ref.step for item in step.inputs if (ref := item.upstream) and ref.step]
    return list(dict.fromkeys(found))


def query_reads(state: DocumentState, target: Target) -> bool:
    """Whether a processor query really reads the table under the cursor (DuckDB's parser)."""
    document = state.document
    step = target.step
    ast = document.step(step.id) if document is not None and step and step.id else None
    entry = ast.config.get("query") if ast is not None and ast.config is not None else None
    query = entry.value if entry is not None else None
    if not isinstance(query, YScalar) or not isinstance(query.value, str):
        return True  # nothing to check against (e.g. the text does not parse yet)
    from osiris.compiler.check import sql_with_param_defaults
    from osiris.compiler.check_sql import query_tables

    parseable = sql_with_param_defaults(document, query) if document is not None else None
    if parseable is None:
        return True
    tables = query_tables(parseable)
    if tables.error is not None:
        return True
    word = state.outline.lines[target.line][target.start : target.end].lower()
    return word in {t.lower() for t in tables.tables}


def resolve_step(state: DocumentState, target: Target) -> StepOutline | None:
    """The step a step target names (`input` in a query: the one upstream step)."""
    doc = state.outline
    name = target.name
    in_query = target.step is not None and target.line not in target.step.keys.values()
    if in_query and not query_reads(state, target):
        return None
    if name in ("input", "input_df") and doc.step(name) is None:
        ups = upstream(state, target.step.id if target.step else None)
        return doc.step(ups[0]) if len(ups) == 1 else None
    return doc.step(name)


def definition(state: DocumentState, position: types.Position) -> list[types.Location]:
    target = target_at(state, position)
    if target is None:
        return []
    if target.kind == "step":
        step = resolve_step(state, target)
        if step is None or step.id_at is None:
            return []
        line, start, end = step.id_at
        raw = state.outline.lines[line]
        enc = state.encoding
        at = types.Range(
            types.Position(line, units(raw[:start], enc)),
            types.Position(line, units(raw[:end], enc)),
        )
        return [types.Location(state.uri, at)]
    if target.kind == "connection":
        connections = state.connections
        if connections is None or connections.index is None:
            return []
        family, _, alias = target.name.partition(".")
        entry = connections.index.lookup(family, alias or None)
        if entry is None:
            return []
        at = span_range(connections.source, entry.span, state.encoding)
        return [types.Location(path_to_uri(connections.path), at)]
    if target.kind == "param":
        document = state.document
        param = document.param(target.name) if document is not None else None
        if param is None or not state.fresh:
            return []
        return [
            types.Location(state.uri, span_range(state.source, param.name.span, state.encoding))
        ]
    return []


def symbols(state: DocumentState) -> list[types.DocumentSymbol]:
    """One symbol per step: name = id, detail = component; exact spans when the text parses."""
    out = []
    result = state.result if state.fresh else None
    document = result.document if result is not None else None
    enc = state.encoding
    if document is not None:
        for step in document.steps:
            if step.id is None:
                continue
            out.append(
                types.DocumentSymbol(
                    name=step.id.value,
                    detail=step.component.value if step.component else None,
                    kind=types.SymbolKind.Function,
                    range=span_range(state.source, step.span, enc),
                    selection_range=span_range(state.source, step.id.span, enc),
                )
            )
        return out
    doc = state.outline
    for item in doc.steps:
        if item.id is None or item.id_at is None:
            continue
        line, start, end = item.id_at
        raw = doc.lines[line]
        last = max(item.start, item.end - 1)
        while last > item.start and not doc.lines[last].strip():
            last -= 1
        out.append(
            types.DocumentSymbol(
                name=item.id,
                detail=step_value(doc, item, "component"),
                kind=types.SymbolKind.Function,
                range=types.Range(
                    types.Position(item.start, units(doc.lines[item.start][: item.key_col], enc)),
                    types.Position(last, units(doc.lines[last], enc)),
                ),
                selection_range=types.Range(
                    types.Position(line, units(raw[:start], enc)),
                    types.Position(line, units(raw[:end], enc)),
                ),
            )
        )
    return out
