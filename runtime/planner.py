"""The planner: a verified manifest, the run options and probed facts -> execution units (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

from osiris.runtime.drivers.base import Abilities
from osiris.runtime.manifest import ManifestStep

MaterializeMode = Literal["auto", "all"]
MATERIALIZE_MODES: tuple[str, ...] = ("auto", "all")
MATERIALIZE_ENV = "OSIRIS_MATERIALIZE"
INPLACE_ENV = "OSIRIS_INPLACE_MIN_BYTES"
# File sources smaller than this are always copied into run.duckdb: copying is cheap there (no
# measurable gain from the shortcuts), and the copy is a snapshot that stays inspectable even
# if the file changes or disappears later.
INPLACE_MIN_BYTES = 32 * 2**20


def inplace_min_bytes(environ: Mapping[str, str]) -> int:
    """$OSIRIS_INPLACE_MIN_BYTES or 32 MiB: the smallest file source that is streamed to its
    writer or read in place as a view."""
    try:
        return max(0, int(environ.get(INPLACE_ENV, INPLACE_MIN_BYTES)))
    except ValueError:
        return INPLACE_MIN_BYTES


def materialize_mode(value: str | None, environ: Mapping[str, str]) -> MaterializeMode:
    """The materialisation mode: an explicit value, else $OSIRIS_MATERIALIZE, else "auto".
    Raises ValueError for anything else."""
    chosen = (value or environ.get(MATERIALIZE_ENV) or "auto").strip().lower()
    if chosen not in MATERIALIZE_MODES:
        raise ValueError(
            f"materialize mode {chosen!r} is not one of {', '.join(MATERIALIZE_MODES)}"
            f" (from {'the option' if value else MATERIALIZE_ENV})"
        )
    return cast(MaterializeMode, chosen)


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """The run options the planner follows."""

    materialize: MaterializeMode = "auto"
    inplace_min_bytes: int = INPLACE_MIN_BYTES
    # every unit runs as tasks on a cluster, where steps share no run.duckdb: no views over
    # files or queries, and streams only between ends that stage (one task, published here)
    cluster: bool = False


@dataclass(frozen=True, slots=True)
class Facts:
    """What the planner knows beyond the manifest, gathered before the run by runtime.probe.
    Every mapping is keyed by step id; a step missing from one could not be measured."""

    abilities: Mapping[str, Abilities]  # every step's driver's
    source_bytes: Mapping[str, int] = field(default_factory=dict)  # sized sources
    # native, sized sources whose query builds: the paths (or globs) a view over them reads
    source_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # (upstream, step) edges whose steps open the same database file, or where we cannot tell
    shared_database_files: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class SourceFiles:
    """A file source read in place: its paths (or globs) and their total size, against which
    the reading query's profile is checked before its row count is trusted."""

    paths: tuple[str, ...]
    bytes: int


@dataclass(frozen=True, slots=True)
class StepUnit:
    """One step on its own: an extractor's or processor's output becomes a table in run.duckdb."""

    kind: ClassVar[str] = "step"
    step: ManifestStep

    @property
    def steps(self) -> tuple[ManifestStep, ...]:
        return (self.step,)


@dataclass(frozen=True, slots=True)
class StreamUnit:
    """An extractor's Arrow batches handed straight to its only consumer, a writer."""

    kind: ClassVar[str] = "stream"
    source: ManifestStep
    sink: ManifestStep

    @property
    def steps(self) -> tuple[ManifestStep, ...]:
        return (self.source, self.sink)


@dataclass(frozen=True, slots=True)
class ViewChainUnit:
    """Steps whose outputs are views (a file read in place, a processor's query), each read only
    by the next, run with the step after them, whose one DuckDB query reads them all."""

    kind: ClassVar[str] = "view_chain"
    views: tuple[ManifestStep, ...]
    reader: ManifestStep
    source: SourceFiles | None  # what the first view reads in place; None: it is a processor

    @property
    def steps(self) -> tuple[ManifestStep, ...]:
        return (*self.views, self.reader)


@dataclass(frozen=True, slots=True)
class FileViewUnit:
    """A file extract read in place by a step that has other inputs too: VIEW <step_id> over
    its files, made on its own."""

    kind: ClassVar[str] = "file_view"
    step: ManifestStep

    @property
    def steps(self) -> tuple[ManifestStep, ...]:
        return (self.step,)


@dataclass(frozen=True, slots=True)
class PartitionedUnit:
    """An extractor with `partition:` whose only consumer is a writer that stages partitions:
    each partition streams into a staging table of its own (in parallel, on threads or on a
    cluster's workers), then the writer publishes them all in one transaction."""

    kind: ClassVar[str] = "partitioned"
    source: ManifestStep
    sink: ManifestStep

    @property
    def steps(self) -> tuple[ManifestStep, ...]:
        return (self.source, self.sink)


Unit = StepUnit | StreamUnit | ViewChainUnit | FileViewUnit | PartitionedUnit


@dataclass(frozen=True, slots=True)
class ExecutionPlan:
    """Every step of a run exactly once, in units in dependency order. A unit may start once
    every step it depends on outside itself has succeeded."""

    steps: tuple[ManifestStep, ...]  # in manifest order
    units: tuple[Unit, ...]

    def downstream(self, step_id: str) -> tuple[ManifestStep, ...]:
        """Every step that depends on step_id, directly or transitively, in manifest order."""
        affected = {step_id}
        found = []
        for step in self.steps:
            if any(u in affected for u in step.upstream):
                affected.add(step.id)
                found.append(step)
        return tuple(found)

    def describe(self) -> list[dict[str, Any]]:
        """The plan as the run_started event records it."""
        return [{"kind": unit.kind, "steps": [s.id for s in unit.steps]} for unit in self.units]


def plan(steps: Sequence[ManifestStep], options: PlanOptions, facts: Facts) -> ExecutionPlan:
    """Group steps (in manifest order, a dependency order) into units; docs/runtime.md has the
    rules and the measurements behind them."""
    if options.materialize == "all":
        return ExecutionPlan(tuple(steps), tuple(StepUnit(step) for step in steps))
    consumer = _only_consumers(steps)
    streams = {
        step.id: consumer[step.id]
        for step in steps
        if step.id in consumer
        and _streams(step, consumer[step.id], options, facts)
        # on a cluster, a stream is a partitioned unit of one partition (one task)
        and (not options.cluster or _stages(step, consumer[step.id], facts))
    }
    in_place = {
        step.id
        for step in steps
        if step.id in consumer
        and not options.cluster
        and _reads_in_place(step, consumer[step.id], options, facts)
    }
    views = in_place | {
        step.id
        for step in steps
        if step.id in consumer
        and not options.cluster
        and _processor_view(step, consumer[step.id], facts)
    }
    units: list[Unit] = []
    claimed: set[str] = set()
    for step in steps:
        if step.id in claimed:
            continue
        chain = [step]
        # a view read together with other inputs ends the chain: it is made on its own
        while chain[-1].id in views and consumer[chain[-1].id].upstream == (chain[-1].id,):
            chain.append(consumer[chain[-1].id])
        unit: Unit
        if step.id in consumer and _partitioned(step, consumer[step.id], facts):
            unit = PartitionedUnit(step, consumer[step.id])
        elif step.id in streams:
            unit = StreamUnit(step, streams[step.id])
        elif len(chain) > 1:
            source = _source_files(step, facts) if step.id in in_place else None
            unit = ViewChainUnit(tuple(chain[:-1]), chain[-1], source)
        elif step.id in in_place:
            unit = FileViewUnit(step)
        else:
            unit = StepUnit(step)
        claimed.update(s.id for s in unit.steps)
        units.append(unit)
    return ExecutionPlan(tuple(steps), tuple(units))


def _only_consumers(steps: Sequence[ManifestStep]) -> dict[str, ManifestStep]:
    """Step id -> the one step that reads it, for steps read by exactly one."""
    consumers: dict[str, list[ManifestStep]] = {}
    for step in steps:
        for upstream in step.upstream:
            consumers.setdefault(upstream, []).append(step)
    return {step_id: found[0] for step_id, found in consumers.items() if len(found) == 1}


def _streams(source: ManifestStep, sink: ManifestStep, options: PlanOptions, facts: Facts) -> bool:
    """An extractor whose only consumer is a writer with no other input, on another database
    file (one process opens a DuckDB file only once), from a source large enough."""
    return (
        source.role == "extractor"
        and sink.role == "writer"
        and sink.upstream == (source.id,)
        and "extractor" in facts.abilities[source.id].roles
        and "writer" in facts.abilities[sink.id].roles
        and (source.id, sink.id) not in facts.shared_database_files
        and _large_source(source, options, facts)
    )


def _partitioned(source: ManifestStep, sink: ManifestStep, facts: Facts) -> bool:
    """An extractor with `partition:` whose only consumer is a writer with no other input that
    can stage partitions (otherwise the step reads every row in one stream, as without it)."""
    return source.partition is not None and _stages(source, sink, facts)


def _stages(source: ManifestStep, sink: ManifestStep, facts: Facts) -> bool:
    """An extractor that reads in partitions whose only consumer is a writer with no other
    input that stages partitions."""
    return (
        source.role == "extractor"
        and sink.role == "writer"
        and sink.upstream == (source.id,)
        and facts.abilities[source.id].partitioned_source
        and facts.abilities[sink.id].partitioned_sink
    )


def _reads_in_place(
    step: ManifestStep, consumer: ManifestStep, options: PlanOptions, facts: Facts
) -> bool:
    """A file extract large enough whose only consumer is a processor: a view over its files."""
    return (
        step.role == "extractor"
        and consumer.role == "processor"
        and facts.abilities[step.id].native_source
        and step.id in facts.source_files
        and _large_source(step, options, facts)
    )


def _processor_view(step: ManifestStep, consumer: ManifestStep, facts: Facts) -> bool:
    """A processor whose only consumer is a writer with no other input: a view it reads."""
    return (
        step.role == "processor"
        and consumer.role == "writer"
        and consumer.upstream == (step.id,)
        and facts.abilities[step.id].view_processor
    )


def _large_source(step: ManifestStep, options: PlanOptions, facts: Facts) -> bool:
    """A source of at least the in-place threshold, or of unknown size (a database)."""
    if not facts.abilities[step.id].sized_source:
        return True
    size = facts.source_bytes.get(step.id)
    return size is not None and size >= options.inplace_min_bytes


def _source_files(step: ManifestStep, facts: Facts) -> SourceFiles:
    return SourceFiles(facts.source_files[step.id], facts.source_bytes[step.id])
