"""The typed OML AST: frozen nodes, each with the span of the source it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from osiris.oml.span import SourceText, Span
from osiris.oml.yamltree import YEntry, YMap, YNode, YScalar


@dataclass(frozen=True, slots=True)
class Name:
    """A string value with the span it came from."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Param:
    name: Name
    type: Name | None  # declared type; None when inferred from a shorthand default
    default: YNode | None
    description: str | None
    enum: tuple[object, ...] | None
    span: Span


@dataclass(frozen=True, slots=True)
class Profile:
    name: Name
    params: tuple[YEntry, ...]
    description: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class StepRef:
    """A step named in `needs`."""

    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class Input:
    """A named input: `inputs: {df: "${upstream.df}"}`."""

    name: Name
    value: YNode
    span: Span


@dataclass(frozen=True, slots=True)
class Step:
    id: Name | None
    component: Name | None
    mode: Name | None
    config: YMap | None
    needs: tuple[StepRef, ...]
    inputs: tuple[Input, ...]
    description: str | None
    node: YMap
    span: Span

    @property
    def key(self) -> str:
        return self.id.value if self.id else f"<step at line {self.span.start.line}>"


@dataclass(frozen=True, slots=True)
class Document:
    oml_version: YScalar | None
    name: Name | None
    description: str | None
    metadata: YNode | None
    params: tuple[Param, ...]
    profiles: tuple[Profile, ...]
    steps: tuple[Step, ...]
    extensions: tuple[YEntry, ...]
    node: YMap
    source: SourceText = field(compare=False, repr=False)

    @property
    def span(self) -> Span:
        return self.node.span

    def step(self, step_id: str) -> Step | None:
        for step in self.steps:
            if step.id and step.id.value == step_id:
                return step
        return None

    def param(self, name: str) -> Param | None:
        for param in self.params:
            if param.name.value == name:
                return param
        return None
