"""Completion from the cursor's inferred context: keys, components, modes, config, enums, refs."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from osiris.compiler.lsp import docs
from osiris.compiler.lsp.context import Context, context_at
from osiris.compiler.lsp.positions import cursor, units
from osiris.compiler.lsp.state import DocumentState

if TYPE_CHECKING:
    from osiris.compiler.registry import ComponentSpec, Registry
    from osiris.runtime.catalog.model import Catalog

Kind = types.CompletionItemKind


def _registry() -> Registry:
    from osiris.compiler.registry import load_registry

    return load_registry()


def _markdown(text: str) -> types.MarkupContent:
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=text)


class _Items:
    """Builds items that replace the typed token (ctx.start .. cursor) with their text."""

    def __init__(self, state: DocumentState, ctx: Context, start: int) -> None:
        raw = state.outline.lines[ctx.line] if ctx.line < len(state.outline.lines) else ""
        enc = state.encoding
        self.range = types.Range(
            types.Position(ctx.line, units(raw[:start], enc)),
            types.Position(ctx.line, units(raw[: ctx.column], enc)),
        )
        self.typed = raw[start : ctx.column]
        self.lead = " " if start > 0 and raw[start - 1] == ":" else ""  # `key:|` needs a space
        self.items: list[types.CompletionItem] = []

    def add(
        self,
        label: str,
        kind: types.CompletionItemKind,
        text: str | None = None,
        detail: str | None = None,
        doc: str | None = None,
        sort: str | None = None,
        filter_text: str | None = None,
    ) -> None:
        self.items.append(
            types.CompletionItem(
                label=label,
                kind=kind,
                detail=detail,
                documentation=_markdown(doc) if doc else None,
                sort_text=sort,
                filter_text=filter_text,
                text_edit=types.TextEdit(
                    range=self.range, new_text=self.lead + (label if text is None else text)
                ),
            )
        )


def complete(state: DocumentState, position: types.Position) -> types.CompletionList:
    line, column = cursor(state.source, position, state.encoding)
    doc = state.outline
    if line >= len(doc.lines):
        return types.CompletionList(is_incomplete=False, items=[])
    ctx = context_at(doc, line, column)
    items = _reference(state, ctx) if ctx.key is not None or ctx.block else None
    if items is None:
        items = _Items(state, ctx, ctx.start)
        _fill(state, ctx, items)
    return types.CompletionList(is_incomplete=False, items=items.items)


def _fill(state: DocumentState, ctx: Context, items: _Items) -> None:
    from osiris.oml.parser import PARAM_KEYS, STEP_KEYS, TOP_KEYS

    path, key = ctx.path, ctx.key
    if ctx.block:
        if path == ("steps", "-", "config") and key == "query":
            _sql_columns(state, ctx, items)
        return
    if path == () and key is None:
        _keys(items, TOP_KEYS, ctx.siblings, Kind.Module)
    elif path == () and key == "oml_version":
        items.add('"0.1.0"', Kind.Constant, detail="the OML version this toolchain reads")
    elif len(path) == 2 and path[0] == "params":
        if key is None:
            _keys(items, PARAM_KEYS, ctx.siblings, Kind.Property)
        elif key == "type":
            from osiris.oml.types import PARAM_TYPES

            for name in PARAM_TYPES:
                items.add(name, Kind.EnumMember)
    elif path == ("steps", "-"):
        if key is None:
            _keys(items, STEP_KEYS, ctx.siblings, Kind.Property)
        elif key == "component":
            _components(items, _registry())
        elif key == "mode":
            spec = _spec(ctx)
            for index, mode in enumerate(_modes(spec) if spec else ()):
                items.add(
                    mode,
                    Kind.EnumMember,
                    detail=f"{spec.role} mode" if spec else None,
                    sort=f"{index:02d}",
                )
        elif key == "needs":
            _step_ids(state, ctx, items, listed=_listed(state, ctx))
    elif path == ("steps", "-", "inputs") and key is not None:
        _step_ids(state, ctx, items, wrap=ctx.quote is None)
    elif path == ("steps", "-", "config"):
        spec = _spec(ctx)
        if spec is None:
            return
        if key is None:
            _config_keys(items, spec, ctx.siblings)
        elif key == "connection":
            _connections(state, ctx, items, spec)
        elif key == "table" and spec.connection_family is not None:
            _tables(state, ctx, items, spec)
        elif key == "columns" and spec.role == "extractor":
            _columns(state, ctx, items, spec)
        else:
            _values(items, spec, (key,), ctx)
    elif path[:3] == ("steps", "-", "config") and len(path) > 3:
        spec = _spec(ctx)  # inside an object field: paginator: {type: …}, incremental: …
        if spec is None or spec.schema_at(path[3:]) is None:
            return
        if key is None:
            _config_keys(items, spec, ctx.siblings, path[3:])
        else:
            _values(items, spec, (*path[3:], key), ctx)


def _keys(items: _Items, keys: tuple[str, ...], present: frozenset[str], kind: Any) -> None:
    for index, key in enumerate(keys):
        if key not in present:
            items.add(key, kind, f"{key}: ", sort=f"{index:02d}")


def _spec(ctx: Context) -> ComponentSpec | None:
    component = ctx.step.component if ctx.step else None
    return _registry().get(component) if component else None


def _modes(spec: ComponentSpec) -> list[str]:
    return list(spec.oml_modes)  # the usual mode first


def _components(items: _Items, registry: Registry) -> None:
    for spec in registry:
        items.add(spec.name, Kind.Class, detail=spec.title, doc=docs.component_doc(spec))


def _config_keys(
    items: _Items, spec: ComponentSpec, present: frozenset[str], parent: tuple[str, ...] = ()
) -> None:
    """The fields of the config (or of the object field at parent) not yet present."""
    holder = spec.schema_at(parent) or {}
    for index, name in enumerate(holder.get("properties") or {}):
        schema = spec.schema_at((*parent, name)) or {}
        if name in present or schema.get("deprecated"):
            continue  # upstream Osiris names are accepted, never offered
        required = name in holder.get("required", ())
        items.add(
            name,
            Kind.Field,
            f"{name}: ",
            detail=docs.type_of(schema) + (" (required)" if required else ""),
            doc=docs.field_doc(spec, name, parent),
            sort=f"{0 if required else 1}{index:03d}",
        )


def _values(items: _Items, spec: ComponentSpec, path: tuple[str, ...], ctx: Context) -> None:
    schema = spec.schema_at(path) or {}
    key = path[-1]
    values: list[Any] = list(schema.get("enum") or [])
    if not values and schema.get("type") == "boolean":
        values = [True, False]
    for index, value in enumerate(values):  # in the spec's order, which editors keep
        label = value if isinstance(value, str) else json.dumps(value)
        text = label if ctx.quote is not None else docs.scalar(value)
        default = " (default)" if schema.get("default") == value else ""
        items.add(
            label,
            Kind.EnumMember,
            text,
            detail=f"{key}{default}",
            filter_text=label,
            sort=f"{index:02d}",
        )


def _connections(state: DocumentState, ctx: Context, items: _Items, spec: ComponentSpec) -> None:
    connections = state.connections
    family = spec.connection_family
    if connections is None or connections.index is None or family is None:
        return
    registry = _registry()
    for alias in connections.index.aliases.get(family, {}).values():
        ref = f"@{family}.{alias.alias}"
        fields = docs.public_fields(alias, registry)
        detail = ", ".join(
            f"{k}={v}" for k, v in fields.items() if k in ("host", "database", "path", "base_url")
        )
        items.add(
            ref,
            Kind.Reference,
            ref if ctx.quote is not None else f'"{ref}"',
            detail=detail or connections.path.rsplit("/", 1)[-1],
            doc=docs.connection_doc(alias, connections.path, registry),
            filter_text=ref if ctx.quote is not None else f'"{ref}"',
            sort="0" if alias.default else "1",
        )


def _listed(state: DocumentState, ctx: Context) -> set[str]:
    value = state.outline.lines[ctx.line].split(":", 1)[-1]
    return set(re.findall(r"[A-Za-z][\w-]*", value))


def _step_ids(
    state: DocumentState,
    ctx: Context,
    items: _Items,
    listed: set[str] | frozenset[str] = frozenset(),
    wrap: bool = False,
    ref: bool = False,
    close: bool = False,
) -> None:
    own = ctx.step.id if ctx.step else None
    for index, step in enumerate(state.outline.steps):
        if step.id is None or step.id == own or (step.id in listed and step.id != items.typed):
            continue
        detail = step.component or "step"
        if ref:
            items.add(
                step.id,
                Kind.Reference,
                f"{step.id}.df" + ("}" if close else ""),
                detail=detail,
                sort=f"{index:05d}",
            )
        elif wrap:
            text = f'"${{{step.id}.df}}"'
            items.add(
                step.id, Kind.Reference, text, detail=detail, filter_text=text, sort=f"{index:05d}"
            )
        else:
            items.add(step.id, Kind.Reference, detail=detail, sort=f"{index:05d}")


def _reference(state: DocumentState, ctx: Context) -> _Items | None:
    """Completion inside an unclosed `${`: step ids, `params.` and param names, `df`."""
    raw = state.outline.lines[ctx.line]
    before = raw[: ctx.column]
    at = before.rfind("${")
    if at < 0 or "}" in before[at:] or (at > 0 and before[at - 1] == "$"):
        return None
    typed = before[at + 2 :]
    close = not raw[ctx.column :].lstrip().startswith("}")
    brace = "}" if close else ""
    if typed.startswith("params."):
        items = _Items(state, ctx, at + 2 + len("params."))
        document = state.document
        declared = {p.name.value: p for p in document.params} if document is not None else {}
        for name in state.outline.params:
            if name not in declared:
                items.add(name, Kind.Variable, name + brace, detail="param")
        for param in declared.values():
            items.add(
                param.name.value,
                Kind.Variable,
                param.name.value + brace,
                detail="param",
                doc=docs.param_doc(param),
            )
        return items
    if "." in typed:
        items = _Items(state, ctx, at + 2 + typed.rindex(".") + 1)
        items.add("df", Kind.Property, "df" + brace, detail="the step's output table")
        return items
    items = _Items(state, ctx, at + 2)
    _step_ids(state, ctx, items, ref=True, close=close)
    if state.outline.params or (state.document is not None and state.document.params):
        items.add("params", Kind.Module, "params.", detail="${params.NAME}", sort="~")
    return items


# -- discovered schemas (the cached catalog only: completion never connects) --------------------


def _step_value(state: DocumentState, ctx: Context, key: str) -> str | None:
    """A plain value of key in the cursor's step as its text shows it (block or flow style)."""
    step = ctx.step
    if step is None:
        return None
    text = "\n".join(state.outline.lines[step.start : step.end])
    found = re.search(rf"(?<![\w-]){key}:[ \t]*[\"']?([^\"'\s,{{}}\[\]#]+)", text)
    return found.group(1) if found else None


def _catalog(state: DocumentState, ctx: Context, spec: ComponentSpec) -> Catalog | None:
    from osiris.runtime.contract.connections import ConnectionRef

    text = _step_value(state, ctx, "connection")
    ref = ConnectionRef.parse(text) if text else None
    if state.catalogs is None or ref is None or ref.family != spec.connection_family:
        return None
    try:
        return state.catalogs(ref)
    except Exception:  # a broken cache entry must not break completion
        return None


def _tables(state: DocumentState, ctx: Context, items: _Items, spec: ComponentSpec) -> None:
    catalog = _catalog(state, ctx, spec)
    schema = _step_value(state, ctx, "schema")
    for table in catalog.tables if catalog else ():
        if schema and table.schema is not None and table.schema != schema:
            continue
        where = f"{table.schema}." if table.schema else ""
        items.add(
            table.name,
            Kind.Struct if table.kind != "view" else Kind.Interface,
            detail=f"{table.kind} {where}{table.name}: {len(table.columns)} columns",
            doc=", ".join(f"{c.name} {c.db_type}" for c in table.columns),
        )


def _columns(state: DocumentState, ctx: Context, items: _Items, spec: ComponentSpec) -> None:
    catalog = _catalog(state, ctx, spec)
    name = _step_value(state, ctx, "table")
    if catalog is None or name is None:
        return
    schema = _step_value(state, ctx, "schema")
    if spec.connection_family == "duckdb" and schema is None and "." in name:
        schema, _, name = name.partition(".")
    table = catalog.table(name, schema) or next(
        (t for t in catalog.tables if t.name.lower() == name.lower()), None
    )
    for index, column in enumerate(table.columns if table else ()):
        key = " (primary key)" if column.primary_key_position else ""
        items.add(
            column.name,
            Kind.Field,
            detail=f"{column.db_type}{key}",
            sort=f"{index:04d}",
        )


def _sql_columns(state: DocumentState, ctx: Context, items: _Items) -> None:
    """Inside a processor's query: the inputs' columns, where the check made them known."""
    result = state.result if state.result is not None else state.good
    context = result.context if result is not None else None
    step = ctx.step
    if context is None or step is None or step.id is None:
        return
    seen: set[str] = set()
    for upstream in context.upstream(step.id):
        for name, kind in context.schema_columns.get(upstream, ()):
            if name not in seen:
                seen.add(name)
                items.add(name, Kind.Field, detail=f"{kind} ({upstream})")
