"""Hover: spec docs for components, modes and config fields; connection aliases; steps; params."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from osiris.compiler.lsp import docs
from osiris.compiler.lsp.navigation import resolve_step
from osiris.compiler.lsp.state import DocumentState
from osiris.compiler.lsp.targets import step_value, target_at

if TYPE_CHECKING:
    from osiris.compiler.registry import Registry


def _registry() -> Registry:
    from osiris.compiler.registry import load_registry

    return load_registry()


def hover(state: DocumentState, position: types.Position) -> types.Hover | None:
    target = target_at(state, position)
    if target is None:
        return None
    registry = _registry()
    text: str | None = None
    component = target.step.component if target.step else None
    if target.kind == "component":
        spec = registry.get(target.name)
        text = docs.component_doc(spec) if spec else None
    elif target.kind == "mode" and component:
        spec = registry.get(component)
        if spec is not None:
            modes = ", ".join(f"`{m}`" for m in sorted(spec.oml_modes))
            text = f"**mode `{target.name}`** — `{spec.name}` ({spec.role}) accepts: {modes}"
    elif target.kind == "field" and component:
        spec = registry.get(component)
        *parent, name = target.name.split(".")
        text = docs.field_doc(spec, name, tuple(parent)) if spec else None
    elif target.kind == "connection":
        connections = state.connections
        family, _, alias = target.name.partition(".")
        entry = (
            connections.index.lookup(family, alias or None)
            if connections is not None and connections.index is not None
            else None
        )
        if entry is not None and connections is not None:
            text = docs.connection_doc(entry, connections.path, registry)
    elif target.kind == "step":
        step = resolve_step(state, target)
        if step is not None:
            spec = registry.get(step.component) if step.component else None
            text = docs.step_doc(step, step_value(state.outline, step, "mode"), spec)
    elif target.kind == "param":
        document = state.document
        param = document.param(target.name) if document is not None else None
        text = docs.param_doc(param) if param is not None else None
    if text is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
        range=target.range(state),
    )
