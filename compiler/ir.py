"""The IR: resolved step nodes and data-flow edges in deterministic order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from osiris.oml.span import Span


@dataclass(frozen=True, slots=True)
class StepNode:
    id: str
    component: str
    component_version: str
    driver: str
    mode: str  # the spec's own mode name (extract | write | transform)
    role: str  # extractor | processor | writer
    config: Mapping[str, Any]  # params applied, spec defaults filled, connection still symbolic
    connection: str | None  # "@family.alias" / "@family"
    inputs: tuple[tuple[str, str], ...]  # (input name, upstream step id)
    needs: tuple[str, ...]  # every upstream step id, in topological order
    description: str | None
    span: Span
    partition: Mapping[str, Any] | None = None  # an extractor's partitioned read, params applied


@dataclass(frozen=True, slots=True)
class PipelineIR:
    name: str
    oml_version: str
    description: str | None
    profile: str | None
    params: Mapping[str, Any]
    nodes: Mapping[str, StepNode]  # step id -> node
    edges: tuple[tuple[str, str], ...]  # (upstream, downstream): data flow
    order: tuple[str, ...]  # deterministic topological order, ties broken by source order
    specs: Mapping[str, str]  # component name -> spec sha256 of each component used
    span: Span

    def steps(self) -> list[StepNode]:
        return [self.nodes[step_id] for step_id in self.order]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view for `omlc --emit ir`."""
        return {
            "name": self.name,
            "oml_version": self.oml_version,
            "profile": self.profile,
            "params": dict(self.params),
            "order": list(self.order),
            "edges": sorted([u, v] for u, v in self.edges),
            "steps": [
                {
                    "id": s.id,
                    "component": f"{s.component}@{s.component_version}",
                    "driver": s.driver,
                    "mode": s.mode,
                    "role": s.role,
                    "connection": s.connection,
                    "inputs": dict(s.inputs),
                    "needs": list(s.needs),
                    "config": dict(s.config),
                    "source": f"{s.span.file}:{s.span.start.line}:{s.span.start.column}",
                    **({"partition": dict(s.partition)} if s.partition else {}),
                }
                for s in self.steps()
            ],
        }
