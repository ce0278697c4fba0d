"""Partitioned reads: a step's `partition:` as SQL predicates that cover every row exactly once."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from osiris.runtime.drivers.base import DriverError

# The config key through which the engine narrows an extract to one partition (a predicate in
# the source's dialect, built by the extractor's own partitions()); never written by a user.
PARTITION_WHERE = "osiris_partition_where"
EPOCH = dt.datetime(1970, 1, 1)
Bound = int | dt.date | dt.datetime


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    """A step's `partition:` as compiled: a column split into `count` strides, or predicates."""

    column: str | None = None
    count: int = 1
    lower: Any = None
    upper: Any = None
    predicates: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> PartitionSpec:
        if raw.get("predicates"):
            return cls(predicates=tuple(str(p) for p in raw["predicates"]))
        count = raw.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise DriverError(f"partition count must be a positive integer, got {count!r}")
        return cls(str(raw["column"]), count, raw.get("lower"), raw.get("upper"))

    @property
    def needs_bounds(self) -> bool:
        return not self.predicates and self.count > 1 and (self.lower is None or self.upper is None)

    @property
    def planned(self) -> int:
        """How many partitions the plan has before any bound is known (at most)."""
        return len(self.predicates) if self.predicates else self.count


def as_bound(value: Any) -> Bound | None:
    """A MIN/MAX or lower/upper value as an int, date or datetime (None for an empty table)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DriverError("a partition column must be an integer, date or timestamp column")
    if isinstance(value, int | dt.date):
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)  # sessions run in UTC
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str):
        for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
            try:
                return as_bound(parse(value))
            except ValueError:
                continue
    raise DriverError(
        f"partition bound {value!r} is not an integer, date or timestamp; partition by an "
        "integer, date or timestamp column, or give predicates"
    )


def _ordinal(value: Bound) -> int:
    if isinstance(value, dt.datetime):
        return (value - EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(value, dt.date):
        return value.toordinal()
    return value


def _from_ordinal(n: int, like: Bound) -> Bound:
    if isinstance(like, dt.datetime):
        return EPOCH + dt.timedelta(microseconds=n)
    if isinstance(like, dt.date):
        return dt.date.fromordinal(n)
    return n


def literal(value: Bound) -> str:
    """A literal both MySQL/MariaDB and PostgreSQL read as the value's type."""
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ', timespec='microseconds')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return str(int(value))


def boundaries(lower: Bound, upper: Bound, count: int) -> list[Bound]:
    """The count-1 inner boundaries of [lower, upper] split into equal strides (fewer when the
    range has fewer distinct values than strides; none when upper <= lower)."""
    if type(lower) is not type(upper) and not (
        isinstance(lower, dt.date) and isinstance(upper, dt.date)
    ):
        raise DriverError(f"partition bounds {lower!r} and {upper!r} are not of the same type")
    lo, hi = _ordinal(lower), _ordinal(upper)
    if hi <= lo or count <= 1:
        return []
    inner = sorted({lo - (-(hi - lo) * i // count) for i in range(1, count)})  # ceil
    return [_from_ordinal(n, lower) for n in inner]


def stride_predicates(column: str, cuts: Sequence[Bound]) -> list[str | None]:
    """One predicate per partition, Spark-JDBC style: the bounds set the stride and filter
    nothing; the first partition also takes NULL and everything below, the last everything
    above. None: the only partition, every row."""
    if not cuts:
        return [None]
    first = f"{column} < {literal(cuts[0])} OR {column} IS NULL"
    middle = [
        f"{column} >= {literal(a)} AND {column} < {literal(b)}" for a, b in itertools.pairwise(cuts)
    ]
    return [first, *middle, f"{column} >= {literal(cuts[-1])}"]


def predicates(
    spec: PartitionSpec,
    quote: Callable[[str], str],
    min_max: Callable[[str], tuple[Any, Any]],
) -> list[str | None]:
    """The partitions' predicates (None: no filter). min_max(quoted column) reads the bounds
    from the source when lower/upper are not both given."""
    if spec.predicates:
        return list(spec.predicates)
    assert spec.column is not None
    column = quote(spec.column)
    if spec.count == 1:
        return [None]
    lower, upper = spec.lower, spec.upper
    if lower is None or upper is None:
        found_lo, found_hi = min_max(column)
        lower = found_lo if lower is None else lower
        upper = found_hi if upper is None else upper
    lo, hi = as_bound(lower), as_bound(upper)
    if lo is None or hi is None:  # an empty source (or a column of NULLs only)
        return [None]
    if isinstance(lo, dt.datetime) != isinstance(hi, dt.datetime):  # a date and a timestamp
        lo, hi = (_as_datetime(b) for b in (lo, hi))
    return stride_predicates(column, boundaries(lo, hi, spec.count))


def _as_datetime(value: Bound) -> Bound:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    return value


def restrict(sql: str, predicate: str | None) -> str:
    """sql narrowed to one partition."""
    if predicate is None:
        return sql
    return f"SELECT * FROM ({sql}) AS osiris_p WHERE {predicate}"
