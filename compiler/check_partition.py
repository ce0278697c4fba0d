"""Checks of an extractor's `partition:` (OML170-OML175): shape, predicates, use, the column."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from osiris.oml.yamltree import YMap, YScalar, YSeq

if TYPE_CHECKING:
    from osiris.compiler.check import CheckContext
    from osiris.oml.ast import Step

# Families whose extractors read partitions (runtime: partitioned_source), and their dialect.
PARTITIONED_FAMILIES = {"mysql": "mysql", "postgres": "postgres", "supabase": "postgres"}
# Writers that stage partitions (runtime: partitioned_sink): those of these families, and these.
PARTITIONED_WRITERS = frozenset({"filesystem.parquet_writer"})
BY_COLUMN = ("column", "count", "lower", "upper")
EXAMPLE = "partition: {column: id, count: 8}"
EXAMPLE_PREDICATES = (
    "partition:\n  predicates: [\"region = 'EU'\", \"region <> 'EU' OR region IS NULL\"]"
)
_ORDERED_TYPES = ("int", "uint", "date", "timestamp")  # arrow type names a stride can split


def check_partitions(ctx: CheckContext) -> None:
    """OML170-OML173 for every step with `partition:`; OML174 when a catalog knows its table."""
    for step_id, step in ctx.steps.items():
        if step.partition is None or step_id not in ctx.specs:
            continue
        spec = ctx.specs[step_id]
        dialect = PARTITIONED_FAMILIES.get(spec.connection_family or "")
        if spec.role != "extractor" or dialect is None:
            ctx.diagnostics.error(
                "OML170",
                f"step '{step_id}' ({spec.name}) cannot be partitioned",
                step.partition.span,
                why="Only the MySQL/MariaDB, PostgreSQL and Supabase extractors read a table in "
                "partitions.",
                fix="Remove partition: from this step.",
            )
            continue
        if _shape(ctx, step_id, step.partition, dialect):
            _no_paging(ctx, step_id, step)
            _staged(ctx, step_id, step)


def _shape(ctx: CheckContext, step_id: str, node: YMap, dialect: str) -> bool:
    keys = [str(e.key.value) for e in node.entries]

    def bad(summary: str, span: Any = node.span, example: str = EXAMPLE) -> bool:
        ctx.diagnostics.error(
            "OML171",
            f"partition of '{step_id}': {summary}",
            span,
            why="partition: is either {column, count} (with optional lower/upper bounds that set "
            "the stride) or {predicates: [...]}, one SQL condition per partition.",
            fix="Write partition: in one of these two forms.",
            example=example,
        )
        return False

    if "predicates" in keys:
        if len(keys) > 1:
            return bad(
                "predicates cannot be combined with "
                + ", ".join(k for k in keys if k != "predicates")
            )
        entry = node.get("predicates")
        assert entry is not None
        if not isinstance(entry.value, YSeq) or not entry.value.items:
            return bad("predicates must be a non-empty list of SQL conditions", entry.value.span,
                       EXAMPLE_PREDICATES)  # fmt: skip
        ok = True
        for item in entry.value.items:
            if not (
                isinstance(item, YScalar) and isinstance(item.value, str) and item.value.strip()
            ):
                ok = bad("each predicate must be a SQL condition (a string)", item.span,
                         EXAMPLE_PREDICATES)  # fmt: skip
                continue
            if item.template is None:
                ok = _parses(ctx, step_id, item, dialect) and ok
        return ok
    unknown = [k for k in keys if k not in BY_COLUMN]
    if unknown:
        return bad(f"unknown key(s) {', '.join(unknown)}")
    for required in ("column", "count"):
        if required not in keys:
            return bad(f"{required} is missing")
    column = node.get("column")
    count = node.get("count")
    assert column is not None and count is not None
    if not (isinstance(column.value, YScalar) and isinstance(column.value.value, str)
            and column.value.value):  # fmt: skip
        return bad("column must be a column name", column.value.span)
    if isinstance(count.value, YScalar) and count.value.template is None:
        value = count.value.value
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return bad(f"count must be an integer of at least 1, not {value!r}", count.value.span)
    if ("lower" in keys) != ("upper" in keys):
        return bad("give both lower and upper, or neither (then MIN/MAX are read at run time)")
    bounds = [node.get(k) for k in ("lower", "upper")]
    values = [_bound(e.value) for e in bounds if e is not None and isinstance(e.value, YScalar)]
    if len(values) == 2 and None not in values:
        low, high = values
        if type(low) is not type(high):
            return bad("lower and upper must be of the same kind (integer, date or timestamp)")
        if low >= high:
            return bad(f"lower ({low}) must be below upper ({high})")
    elif bounds[0] is not None:
        for entry in bounds:
            assert entry is not None
            if (
                isinstance(entry.value, YScalar)
                and entry.value.template is None
                and _bound(entry.value) is None
            ):
                return bad(f"{entry.key.value} must be an integer, a date or a timestamp",
                           entry.value.span)  # fmt: skip
    return True


def _bound(node: YScalar) -> Any:
    """An int, date or datetime from a bound as written, else None."""
    value = node.value
    if node.template is not None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
            try:
                parsed = parse(value)
            except ValueError:
                continue
            return (
                parsed
                if isinstance(parsed, dt.datetime)
                else dt.datetime.combine(parsed, dt.time())
            )
    return None


def _parses(ctx: CheckContext, step_id: str, item: YScalar, dialect: str) -> bool:
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    text = str(item.value)
    try:
        sqlglot.parse_one(f"SELECT 1 FROM t WHERE {text}", read=dialect)
    except (ParseError, TokenError) as err:
        said = str(err).splitlines()[0] if str(err) else type(err).__name__
        ctx.diagnostics.error(
            "OML172",
            f"partition predicate of '{step_id}' is not a {dialect} condition: {said}",
            item.span,
            why="Each predicate becomes the WHERE condition of one partition's query on the "
            "source.",
            fix="Write a condition the source's SQL dialect reads, e.g. region = 'EU'.",
            example=EXAMPLE_PREDICATES,
        )
        return False
    return True


def _staged(ctx: CheckContext, step_id: str, step: Step) -> None:
    """OML175: partitions stage in parallel only into a database or Parquet writer that reads
    nothing else."""
    readers = [e.downstream for e in ctx.edges if e.upstream == step_id]
    writer = ctx.specs.get(readers[0]) if len(set(readers)) == 1 else None
    if (
        writer is not None
        and writer.role == "writer"
        and (writer.connection_family in PARTITIONED_FAMILIES or writer.name in PARTITIONED_WRITERS)
        and ctx.upstream(readers[0]) == [step_id]
    ):
        return
    assert step.partition is not None
    ctx.diagnostics.warning(
        "OML175",
        f"partition of '{step_id}' has no effect: it is read by "
        + (", ".join(f"'{r}'" for r in dict.fromkeys(readers)) or "no step"),
        step.partition.span,
        why="Partitions are staged in parallel only when the step's one reader is a MySQL/"
        "MariaDB, PostgreSQL, Supabase or Parquet writer with no other input; otherwise every "
        "row is read in one stream, as without partition:.",
        fix="Remove partition:, or load this step straight into a database or Parquet writer.",
    )


def _no_paging(ctx: CheckContext, step_id: str, step: Step) -> None:
    config = step.config
    paging = [k for k in ("limit", "offset") if config is not None and config.get(k) is not None]
    if paging:
        assert step.partition is not None
        ctx.diagnostics.error(
            "OML173",
            f"step '{step_id}' sets {' and '.join(paging)} and partition",
            step.partition.span,
            why="Partitions are read independently and in parallel: a limit or offset has no "
            "single order to apply to.",
            fix=f"Remove {' and '.join(paging)}, or remove partition:.",
        )


def check_partition_columns(ctx: CheckContext) -> None:
    """OML174: the partition column must be a column of the table the catalog knows, of an
    integer, date or timestamp type. Runs only when the check has catalogs."""
    from osiris.compiler.check_schema import _pool, _same, _Schema, _target

    if ctx.catalogs is None:
        return
    state = _Schema(ctx, ctx.catalogs)
    for step_id, step in ctx.steps.items():
        spec = ctx.specs.get(step_id)
        if step.partition is None or spec is None or step.config is None:
            continue
        entry = step.partition.get("column")
        if entry is None or not isinstance(entry.value, YScalar) or entry.value.template:
            continue
        column = str(entry.value.value)
        target = _target(state, step.config, spec)
        if target is None:
            continue
        ref, catalog, _, name, schema = target
        exact = ref.family != "mysql"
        table = next(
            (t for t in _pool(catalog, schema, exact) or [] if _same(t.name, name, exact)), None
        )
        if table is None:
            continue  # OML150 said so
        found = next((c for c in table.columns if _same(c.name, column, exact)), None)
        if found is None:
            summary = f"partition column '{column}' is not in table '{table.name}' of {ref}"
        elif not found.arrow_type.startswith(_ORDERED_TYPES):
            summary = (f"partition column '{column}' is {found.arrow_type}; partitions need an "
                       "integer, date or timestamp column")  # fmt: skip
        else:
            continue
        ctx.diagnostics.error(
            "OML174",
            summary,
            entry.value.span,
            why=f"Columns of {table.name}: {', '.join(c.name for c in table.columns[:12])}.",
            fix="Partition by an integer, date or timestamp column of the table, or give "
            "predicates.",
            example=EXAMPLE,
        )
