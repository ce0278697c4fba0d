"""Lowering: a checked AST plus resolved params becomes the IR (params applied, defaults filled)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from compiler.check_config import check_config
from compiler.ir import PipelineIR, StepNode
from oml.diagnostics import Diagnostic, DiagnosticList
from oml.expr import ExpressionError, Text, parse_template
from oml.yamltree import YMap, YNode, YSeq

if TYPE_CHECKING:
    from compiler.check import CheckContext


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def substitute(node: YNode, params: Mapping[str, Any]) -> Any:
    """Python value of node with ${params.x} applied: whole-scalar refs keep the param's type."""
    if isinstance(node, YMap):
        return {e.key.value: substitute(e.value, params) for e in node.entries}
    if isinstance(node, YSeq):
        return [substitute(item, params) for item in node.items]
    value = node.value
    if not isinstance(value, str) or "$" not in value:
        return value
    try:
        template = parse_template(value)
    except ExpressionError:
        return value  # the checker already reported it
    whole = template.whole_reference
    if whole is not None and whole.param is not None and whole.param in params:
        return params[whole.param]
    out = []
    for part in template.parts:
        if isinstance(part, Text):
            out.append(part.text)
        elif part.param is not None and part.param in params:
            out.append(_as_text(params[part.param]))
        else:
            out.append(part.source)  # step references stay symbolic
    return "".join(out)


def _fill_defaults(
    config: dict[str, Any], schema: Mapping[str, Any], connection_fields: Mapping[str, str]
) -> dict[str, Any]:
    """Spec defaults made explicit, except for fields a connection supplies (no `host: localhost`)."""
    filled = dict(config)
    for name, prop in schema.get("properties", {}).items():
        if name not in filled and "default" in prop and name not in connection_fields:
            filled[name] = prop["default"]
    return filled


def lower(
    ctx: CheckContext, params: Mapping[str, Any], profile: str | None, diagnostics: DiagnosticList
) -> PipelineIR | None:
    """Build the IR of a document whose check produced no errors."""
    import networkx as nx

    document = ctx.document
    graph = nx.DiGraph()
    position = {step_id: i for i, step_id in enumerate(ctx.steps)}
    for step_id in ctx.steps:
        graph.add_node(step_id)
    for edge in ctx.edges:
        graph.add_edge(edge.upstream, edge.downstream)
    order = tuple(nx.lexicographical_topological_sort(graph, key=position.__getitem__))
    rank = {step_id: i for i, step_id in enumerate(order)}
    for step_id, step in ctx.steps.items():
        spec = ctx.specs[step_id]
        config_node = step.config or YMap((), step.span)
        config = substitute(config_node, params)
        config = _fill_defaults(config, spec.config_schema, spec.connection_fields)
        _recheck(ctx, spec.name, config_node, config, diagnostics)
        inputs = tuple(
            sorted(
                (e.input_name, e.upstream)
                for e in ctx.edges
                if e.downstream == step_id and e.input_name is not None
            )
        )
        needs = tuple(sorted(ctx.upstream(step_id), key=rank.__getitem__))
        connection = config.get("connection")
        graph.nodes[step_id]["step"] = StepNode(
            id=step_id,
            component=spec.name,
            component_version=spec.version,
            driver=spec.driver,
            mode=_spec_mode(spec.modes, step.mode.value if step.mode else ""),
            role=spec.role,
            config=config,
            connection=connection if isinstance(connection, str) else None,
            inputs=inputs,
            needs=needs,
            description=step.description,
            span=step.span,
        )
    if diagnostics.has_errors:
        return None
    specs = {spec.name: spec.sha256 for spec in ctx.specs.values()}
    assert document.name is not None and document.oml_version is not None
    return PipelineIR(
        name=document.name.value,
        oml_version=str(document.oml_version.value),
        description=document.description,
        profile=profile,
        params=dict(params),
        graph=graph,
        order=order,
        specs=dict(sorted(specs.items())),
        span=document.span,
    )


_OML_TO_SPEC = {"read": "extract"}


def _spec_mode(spec_modes: tuple[str, ...], mode: str) -> str:
    canonical = _OML_TO_SPEC.get(mode, mode)
    return canonical if canonical in spec_modes else mode


def _recheck(
    ctx: CheckContext,
    component: str,
    config_node: YMap,
    config: dict[str, Any],
    diagnostics: DiagnosticList,
) -> None:
    """Params can make a config invalid (e.g. batch_size from a string param): report as OML065."""
    local = DiagnosticList()
    spec = ctx.registry.get(component)
    assert spec is not None
    check_config(
        component,
        spec.config_schema,
        ctx.registry.config_validator(component),
        config_node,
        config,
        set(),
        local,
    )
    for d in local:
        diagnostics.add(
            Diagnostic(
                "OML065",
                d.severity,
                f"with the given params, {d.summary}",
                d.span,
                why=d.why,
                fix=d.fix + " Or pass params that make the config valid.",
                example=d.example,
            )
        )
