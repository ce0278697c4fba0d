"""Lowering: a checked AST plus resolved params becomes the IR (params applied, defaults filled)."""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from osiris.compiler.check_config import check_config
from osiris.compiler.ir import PipelineIR, StepNode
from osiris.compiler.modes import spec_mode_of
from osiris.compiler.sql_params import SqlParamError, render_sql_fields
from osiris.compiler.upstream import normalise
from osiris.oml.diagnostics import Diagnostic, DiagnosticList
from osiris.oml.expr import Escape, Reference, Template, Text
from osiris.oml.visitor import NodeVisitor
from osiris.oml.yamltree import YMap, YNode, YScalar, YSeq

if TYPE_CHECKING:
    from osiris.compiler.check import CheckContext


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Substitute(NodeVisitor):
    """A config as Python with ${params.x} applied: a whole-scalar reference keeps the param's type."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def visit_YMap(self, node: YMap) -> dict[Any, Any]:
        return {e.key.value: self.visit(e.value) for e in node.entries}

    def visit_YSeq(self, node: YSeq) -> list[Any]:
        return [self.visit(item) for item in node.items]

    def visit_YScalar(self, node: YScalar) -> Any:
        return node.value if node.template is None else self.visit_Template(node.template)

    def visit_Template(self, node: Template) -> Any:
        whole = node.whole_reference
        if whole is not None and whole.param is not None and whole.param in self.params:
            return self.params[whole.param]
        return "".join(self.visit(part) for part in node.parts)

    def visit_Text(self, node: Text) -> str:
        return node.text

    def visit_Escape(self, node: Escape) -> str:
        return node.text

    def visit_Reference(self, node: Reference) -> str:
        if node.param is not None and node.param in self.params:
            return _as_text(self.params[node.param])
        return node.source  # step references stay symbolic


def substitute(node: YNode, params: Mapping[str, Any]) -> Any:
    """Python value of node with ${params.x} applied: whole-scalar refs keep the param's type."""
    return _Substitute(params).visit(node)


def _fill_defaults(
    config: dict[str, Any], schema: Mapping[str, Any], connection_fields: Mapping[str, str]
) -> dict[str, Any]:
    """Spec defaults made explicit, except for fields a connection supplies (no `host: localhost`)."""
    filled = dict(config)
    for name, prop in schema.get("properties", {}).items():
        if name not in filled and "default" in prop and name not in connection_fields:
            filled[name] = prop["default"]
    return filled


def topological_order(ids: list[str], edges: list[tuple[str, str]]) -> tuple[str, ...]:
    """Kahn's algorithm; among ready steps the one earliest in the source goes first."""
    position = {step_id: i for i, step_id in enumerate(ids)}
    downstream: dict[str, list[str]] = {step_id: [] for step_id in ids}
    waiting = dict.fromkeys(ids, 0)
    for upstream, down in set(edges):
        downstream[upstream].append(down)
        waiting[down] += 1
    ready = [position[s] for s in ids if waiting[s] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        step_id = ids[heapq.heappop(ready)]
        order.append(step_id)
        for down in downstream[step_id]:
            waiting[down] -= 1
            if waiting[down] == 0:
                heapq.heappush(ready, position[down])
    if len(order) != len(ids):
        raise ValueError("the step graph has a cycle")  # the checker reports cycles first
    return tuple(order)


def lower(
    ctx: CheckContext, params: Mapping[str, Any], profile: str | None, diagnostics: DiagnosticList
) -> PipelineIR | None:
    """Build the IR of a document whose check produced no errors."""
    document = ctx.document
    ids = list(ctx.steps)
    edges = [(e.upstream, e.downstream) for e in ctx.edges]
    order = topological_order(ids, edges)
    rank = {step_id: i for i, step_id in enumerate(order)}
    nodes: dict[str, StepNode] = {}
    for step_id in order:
        step = ctx.steps[step_id]
        spec = ctx.specs[step_id]
        config_node = step.config or YMap((), step.span)
        config = substitute(config_node, params)
        for name, sql in render_sql_fields(document, ctx.sql_params, step_id, params).items():
            if isinstance(sql, SqlParamError):
                _unsafe_sql(ctx, step_id, name, sql, diagnostics)
            else:
                config[name] = sql
        if step_id in ctx.param_steps:
            _recheck(ctx, spec.name, config_node, config, diagnostics)
        config = normalise(config, spec.config_schema)
        config = _fill_defaults(config, spec.config_schema, spec.connection_fields)
        inputs = tuple(
            sorted(
                (e.input_name, e.upstream)
                for e in ctx.edges_into.get(step_id, ())
                if e.input_name is not None
            )
        )
        connection = config.get("connection")
        partition = substitute(step.partition, params) if step.partition else None
        if partition is not None and step_id in ctx.param_steps:
            _recheck_partition(step_id, step.partition, partition, diagnostics)
        nodes[step_id] = StepNode(
            id=step_id,
            component=spec.name,
            component_version=spec.version,
            driver=spec.driver,
            mode=_spec_mode(spec.modes, step.mode.value if step.mode else ""),
            role=spec.role,
            config=config,
            connection=connection if isinstance(connection, str) else None,
            inputs=inputs,
            needs=tuple(sorted(ctx.upstream(step_id), key=rank.__getitem__)),
            description=step.description,
            span=step.span,
            partition=partition,
        )
    if diagnostics.has_errors:
        return None
    assert document.name is not None and document.oml_version is not None
    return PipelineIR(
        name=document.name.value,
        oml_version=str(document.oml_version.value),
        description=document.description,
        profile=profile,
        params=dict(params),
        nodes=nodes,
        edges=tuple(sorted(set(edges), key=lambda e: (rank[e[1]], rank[e[0]]))),
        order=order,
        specs=dict(sorted({spec.name: spec.sha256 for spec in ctx.specs.values()}.items())),
        span=document.span,
    )


def _recheck_partition(
    step_id: str, node: YMap | None, partition: dict[str, Any], diagnostics: DiagnosticList
) -> None:
    """Params can make a partition invalid (count: ${params.n} with n = 0): report as OML171."""
    count = partition.get("count")
    if "count" in partition and (
        not isinstance(count, int) or isinstance(count, bool) or count < 1
    ):
        assert node is not None
        diagnostics.error(
            "OML171",
            f"with the given params, the partition count of '{step_id}' is {count!r}",
            node.span,
            why="A partitioned read needs a count of at least 1.",
            fix="Pass a param value of at least 1.",
        )


def _spec_mode(spec_modes: tuple[str, ...], mode: str) -> str:
    canonical = spec_mode_of(mode) or mode
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


def _unsafe_sql(
    ctx: CheckContext, step_id: str, field: str, error: SqlParamError, diagnostics: DiagnosticList
) -> None:
    template, scalar = ctx.sql_params[(step_id, field)]
    diagnostics.error(
        "OML112",
        f"a param cannot be written into the {field} of '{step_id}': {error}",
        scalar.span,
        why="A param value may only ever become a literal value or a number in SQL; this one "
        f"cannot be written into {template.dialect} SQL as such.",
        fix="Pass a different value for the param.",
    )
