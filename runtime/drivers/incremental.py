"""Incremental cursors: the window a step reads (after the last value a successful run saw, less a lag) and the new high-water mark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from osiris.runtime.drivers.base import DriverError, StepContext
from osiris.runtime.records.state import CursorState, StateError


def _as_datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) < 10 or not value[:4].isdigit():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def after(value: Any, other: Any) -> bool:
    """value > other, for cursor values: numbers by value, ISO timestamps by instant (zones
    and the Z suffix understood), anything else as text."""
    if _number(value) and _number(other):
        return bool(value > other)
    left, right = _as_datetime(value), _as_datetime(other)
    if left is not None and right is not None:
        return left > right
    return str(value) > str(other)


def minus_lag(value: Any, lag: float | None) -> Any:
    """value moved back by lag: seconds for a timestamp, units for a number."""
    if not lag or value is None:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        result = value - lag
        return int(result) if isinstance(value, int) and float(lag).is_integer() else result
    when = _as_datetime(value)
    if when is None:
        raise DriverError(
            f"incremental lag needs a numeric or ISO timestamp cursor; got {str(value)[:40]!r}"
        )
    earlier = when - dt.timedelta(seconds=lag)
    naive = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None
    if naive:  # written as it came: no zone added, the same separator
        return earlier.replace(tzinfo=None).isoformat(sep="T" if "T" in value else " ")
    text = earlier.isoformat()
    return text.replace("+00:00", "Z") if value.endswith("Z") else text


@dataclass(slots=True)
class Window:
    """One run's incremental window for a step."""

    cursor: str  # cursor_path (API records) or cursor_column (SQL)
    last: Any  # the value the last successful run stopped at (or initial_value)
    since: Any  # last less the lag: read values after this
    highest: Any = None
    columns: tuple[tuple[str, str], ...] = ()  # as the last successful run stored them

    @classmethod
    def open(cls, ctx: StepContext, spec: Mapping[str, Any], cursor: str) -> Window:
        """The window after the state the last successful run left (else initial_value)."""
        load = getattr(ctx, "load_state", None)
        try:
            stored: CursorState | None = load() if load is not None else None
        except StateError as err:
            raise DriverError(str(err)) from None
        last = spec.get("initial_value")
        columns: tuple[tuple[str, str], ...] = ()
        if stored is not None and stored.cursor == cursor:
            last = stored.last_value
            columns = stored.columns
        elif stored is not None:
            ctx.log(
                f"incremental: the stored state follows {stored.cursor!r}, not {cursor!r}; "
                "starting from initial_value"
            )
        lag = spec.get("lag")
        since = minus_lag(last, float(lag) if isinstance(lag, (int, float)) else None)
        window = cls(cursor, last, since, columns=columns)
        ctx.log(f"incremental: reading {cursor} after {since!r} (last run's value {last!r})")
        return window

    def keep(self, value: Any) -> bool:
        """Whether a record with this cursor value is in the window (no value: kept); tracks
        the highest value seen."""
        if value is None:
            return True
        if self.highest is None or after(value, self.highest):
            self.highest = value
        return self.since is None or after(value, self.since)

    def hold(self, ctx: StepContext, columns: tuple[tuple[str, str], ...] = ()) -> None:
        """Hand the new high-water mark to the run, written only if the whole run succeeds."""
        hold = getattr(ctx, "hold_state", None)
        if hold is None or self.highest is None:
            return
        if self.last is not None and not after(self.highest, self.last):
            return
        hold(CursorState(self.cursor, self.highest, columns or self.columns))


def dig(document: Any, path: str) -> Any:
    """The value at a dotted path (a JSONPath-like '$.' prefix and [n] indexes allowed)."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
    current = document
    for part in text.replace("[", ".").replace("]", "").split("."):
        if part == "":
            continue
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


def dig_all(document: Any, path: str) -> list[Any]:
    """What a path selects, as a list: dig(), plus [*] over every item of a list
    (data.products.edges[*].node); a selected list is its items."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
    head, star, rest = text.partition("[*]")
    found = dig(document, head) if head else document
    if not star:
        if found is None:
            return []
        return list(found) if isinstance(found, list) else [found]
    if not isinstance(found, list):
        return []
    rest = rest.lstrip(".")
    out: list[Any] = []
    for item in found:
        out += dig_all(item, rest) if rest else [item]
    return out


def plain(value: Any) -> Any:
    """A cursor value from the database as JSON can keep it (timestamps as ISO text)."""
    import datetime as _dt
    import decimal

    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@dataclass(frozen=True, slots=True)
class SqlIncremental:
    """A SQL extractor's incremental read: its window, and the filter that wraps the SELECT
    (the last value travels as a bound parameter, never inside the SQL text)."""

    window: Window
    column: str

    @classmethod
    def open(cls, ctx: StepContext, spec: Any) -> SqlIncremental | None:
        if not isinstance(spec, Mapping):
            return None
        column = spec.get("cursor_column")
        if not isinstance(column, str) or not column:
            raise DriverError("incremental needs cursor_column: the column that only grows")
        return cls(Window.open(ctx, spec, column), column)

    def wrap(self, select: str, quoted_column: str, placeholder: str) -> str:
        """select filtered to the window; placeholder is the driver's bound-parameter mark or
        an expression reading one (nothing to filter before the first value is known)."""
        if self.window.since is None:
            return select
        return f"SELECT * FROM ({select}) AS osiris_inc WHERE {quoted_column} > {placeholder}"

    def check_columns(self, names: list[str]) -> None:
        if self.column not in names:
            raise DriverError(
                f"incremental cursor_column {self.column!r} is not among the columns read "
                f"({', '.join(names[:20])})"
            )

    def track(self, ctx: StepContext, batches: Any) -> Any:
        """Pass batches through, noting the cursor column's highest value; once they are all
        read, hand it to the run (written only if the whole run succeeds)."""
        import pyarrow.compute as pc

        for batch in batches:
            if batch.num_rows:
                highest = pc.max(batch.column(self.column)).as_py()
                if highest is not None:
                    self.window.keep(plain(highest))
            yield batch
        self.window.hold(ctx)
