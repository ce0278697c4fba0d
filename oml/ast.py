"""The typed OML AST: frozen nodes, each with the span of the source it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from osiris.oml.expr import Reference
from osiris.oml.span import SourceText, Span
from osiris.oml.yamltree import Merge, YEntry, YMap, YNode, YScalar


@dataclass(frozen=True, slots=True)
class Name:
    """A string value with the span it came from."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Param:
    child_fields: ClassVar[tuple[str, ...]] = ("name", "type", "default")
    name: Name
    type: Name | None  # declared type; None when inferred from a shorthand default
    default: YNode | None
    description: str | None
    enum: tuple[object, ...] | None
    span: Span


@dataclass(frozen=True, slots=True)
class Profile:
    child_fields: ClassVar[tuple[str, ...]] = ("name", "params")
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

    child_fields: ClassVar[tuple[str, ...]] = ("name", "value")
    name: Name
    value: YNode
    span: Span

    @property
    def upstream(self) -> Reference | None:
        """The ${STEP.df} (or ${steps.STEP.df}) the input reads; None when it is written otherwise."""
        template = self.value.template if isinstance(self.value, YScalar) else None
        reference = template.whole_reference if template is not None else None
        if reference is None or reference.step is None or reference.attribute != "df":
            return None
        return reference


@dataclass(frozen=True, slots=True)
class Step:
    child_fields: ClassVar[tuple[str, ...]] = (
        "id",
        "component",
        "mode",
        "config",
        "needs",
        "inputs",
        "partition",
    )
    id: Name | None
    component: Name | None
    mode: Name | None
    config: YMap | None  # its "${" strings carry their parsed templates
    needs: tuple[StepRef, ...]
    inputs: tuple[Input, ...]
    description: str | None
    span: Span
    partition: YMap | None = None  # an extractor's partitioned read, as written (templates parsed)

    @property
    def key(self) -> str:
        return self.id.value if self.id else f"<step at line {self.span.start.line}>"


@dataclass(frozen=True, slots=True)
class Document:
    child_fields: ClassVar[tuple[str, ...]] = (
        "oml_version",
        "name",
        "metadata",
        "params",
        "profiles",
        "steps",
        "extensions",
    )
    oml_version: YScalar | None
    name: Name | None
    description: str | None
    metadata: YNode | None
    params: tuple[Param, ...]
    profiles: tuple[Profile, ...]
    steps: tuple[Step, ...]
    extensions: tuple[YEntry, ...]
    span: Span
    source: SourceText = field(compare=False, repr=False)
    merges: tuple[Merge, ...] = field(default=(), compare=False, repr=False)  # `<<` keys used

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
