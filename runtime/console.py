"""Terminal output for oml-run: a Rich live view on a TTY, plain lines otherwise, and the summary.

Rich is imported where it draws, so `--format json` runs never load it (~30 ms of start-up)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from osiris.runtime.runner import RunOutcome

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

DEFAULT_PROGRESS_INTERVAL = 10.0  # seconds between progress lines off a terminal
UNLIMITED_WIDTH = 100_000  # console width off a terminal: tables take their natural width

_STYLE = {
    "ok": "green",
    "failed": "bold red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "running": "cyan",
    "pending": "dim",
}


def human_rows(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


@dataclass(slots=True)
class _StepLine:
    step_id: str
    driver: str
    status: str = "pending"
    rows: int = 0
    started: float | None = None
    elapsed: float = 0.0
    note: str = ""

    def seconds(self) -> float:
        if self.status == "running" and self.started is not None:
            return time.perf_counter() - self.started
        return self.elapsed


class _StepBoard:
    """Per-step state, fed from engine threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lines: dict[str, _StepLine] = {}
        self.run_id = ""

    def apply(self, event: dict[str, Any]) -> _StepLine | None:
        with self.lock:
            name = event["event"]
            if name == "run_started":
                self.run_id = event["run_id"]
                for step in event.get("steps", []):
                    self.lines[step["id"]] = _StepLine(step["id"], step["driver"])
                return None
            line = self.lines.get(event.get("step") or "")
            if line is None:
                return None
            if name == "step_started":
                line.status, line.started = "running", time.perf_counter()
            elif name == "step_finished":
                line.status = "ok"
                line.rows = max(event.get("rows_out", 0), event.get("rows_in", 0))
                line.elapsed = event.get("duration_ms", 0) / 1000
            elif name == "step_failed":
                line.status, line.note = "failed", event.get("error", "")
                line.elapsed = event.get("duration_ms", 0) / 1000
            elif name == "step_skipped":
                line.status, line.note = "skipped", event.get("reason", "")
            elif name == "step_cancelled":
                line.status, line.note = "cancelled", event.get("reason", "")
                line.elapsed = event.get("duration_ms", 0) / 1000
            return line

    def progress(self, step_id: str, rows: int) -> None:
        with self.lock:
            if step_id in self.lines:
                self.lines[step_id].rows = rows

    def table(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, title=f"run {self.run_id}", title_justify="left")
        for header, justify in (
            ("", "left"),
            ("step", "left"),
            ("rows", "right"),
            ("rows/s", "right"),
            ("elapsed", "right"),
            ("", "left"),
        ):
            table.add_column(header, justify=justify)  # type: ignore[arg-type]
        with self.lock:
            for line in self.lines.values():
                seconds = line.seconds()
                rate = human_rows(line.rows / seconds) if seconds > 0 and line.rows else ""
                table.add_row(
                    Text(line.status, style=_STYLE[line.status]),
                    line.step_id,
                    human_rows(line.rows) if line.rows else "",
                    rate,
                    f"{seconds:.1f}s" if line.status != "pending" else "",
                    Text(line.note, style="dim", overflow="ellipsis", no_wrap=True),
                )
        return table


class LiveView:
    """One line per step, refreshed in place (stdout is a terminal)."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.board = _StepBoard()
        self.live = Live(
            console=console,
            get_renderable=self.board.table,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def on_event(self, event: dict[str, Any]) -> None:
        self.board.apply(event)

    def on_progress(self, step_id: str, rows: int) -> None:
        self.board.progress(step_id, rows)

    def on_warning(self, message: str) -> None:
        from rich.text import Text

        self.console.print(Text(f"warning: {message}", style="yellow"))


def progress_interval(environ: Mapping[str, str]) -> float:
    """Seconds between plain progress lines: $OSIRIS_PROGRESS_INTERVAL, 0 for none."""
    text = environ.get("OSIRIS_PROGRESS_INTERVAL", "").strip()
    if not text:
        return DEFAULT_PROGRESS_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(
            f"OSIRIS_PROGRESS_INTERVAL must be a number of seconds (0: no progress lines), "
            f"not {text!r}"
        )
    return seconds


class PlainView:
    """One plain line per step event (stdout is a pipe or file), and every `interval` seconds
    a line per step running for at least that long."""

    def __init__(self, out: TextIO, interval: float = DEFAULT_PROGRESS_INTERVAL) -> None:
        self.out = out
        self.board = _StepBoard()
        self.lock = threading.Lock()
        self.interval = interval
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> PlainView:
        if self.interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="osiris-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()

    def _tick(self) -> None:
        next_tick = time.perf_counter() + self.interval
        while not self._stop.wait(max(next_tick - time.perf_counter(), 0)):
            next_tick += self.interval
            with self.board.lock:
                running = [
                    (line.step_id, line.rows, line.seconds())
                    for line in self.board.lines.values()
                    if line.status == "running"
                ]
            for step_id, rows, seconds in running:
                if seconds >= self.interval:
                    rate = rows / seconds if seconds > 0 else 0.0
                    self._print(
                        f"running {step_id}: {rows:,} rows, {human_rows(rate)} rows/s, "
                        f"{seconds:.1f}s"
                    )

    def _print(self, text: str) -> None:
        with self.lock:
            print(text, file=self.out, flush=True)

    def on_event(self, event: dict[str, Any]) -> None:
        line = self.board.apply(event)
        name, step = event["event"], event.get("step")
        if name == "run_started":
            self._print(
                f"run {event['run_id']}: {event.get('pipeline')} ({len(event.get('steps', []))} steps)"
            )
        elif line is None:
            return
        elif name == "step_started":
            self._print(f"start   {step} ({line.driver})")
        elif name == "step_finished":
            rate = event.get("rows_per_s", 0)
            self._print(
                f"ok      {step}: {line.rows} rows, {human_rows(rate)} rows/s, {line.elapsed:.2f}s"
            )
        elif name == "step_failed":
            self._print(f"FAILED  {step}: {line.note}")
        elif name == "step_skipped":
            self._print(f"skipped {step}: {line.note}")
        elif name == "step_cancelled":
            self._print(f"cancelled {step}: {line.note}")
        elif name == "partition_finished":
            state = "ok" if event.get("status") == "ok" else "FAILED"
            self._print(
                f"part    {step} {event.get('partition', 0) + 1}/{event.get('partitions')} "
                f"on {event.get('worker')}: {state}, {event.get('rows', 0)} rows, "
                f"{event.get('seconds', 0):.2f}s"
            )
        elif name == "step_task_finished":
            state = "ok" if event.get("status") == "ok" else "FAILED"
            self._print(
                f"task    {step} on {event.get('worker')}: {state}, {event.get('seconds', 0):.2f}s"
            )

    def on_progress(self, step_id: str, rows: int) -> None:
        self.board.progress(step_id, rows)

    def on_warning(self, message: str) -> None:
        self._print(f"warning: {message}")


class QuietView:
    """No per-step output (--format json); warnings go to stderr."""

    def __init__(self, err: TextIO) -> None:
        self.err = err

    def __enter__(self) -> QuietView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def on_event(self, event: dict[str, Any]) -> None:
        return None

    def on_progress(self, step_id: str, rows: int) -> None:
        return None

    def on_warning(self, message: str) -> None:
        print(f"warning: {message}", file=self.err, flush=True)


def summary_table(outcome: RunOutcome) -> Table:
    """The end-of-run table: one row per step."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{outcome.pipeline} — run {outcome.run_id}: {outcome.status}", title_justify="left"
    )
    for header in ("step", "driver", "status", "rows in", "rows out", "rows/s", "time"):
        table.add_column(header, justify="right" if header.startswith(("rows", "time")) else "left")
    for step in outcome.steps:
        table.add_row(
            step.step_id,
            step.driver,
            Text(step.status, style=_STYLE[step.status]),
            str(step.rows_in),
            str(step.rows_out),
            human_rows(step.rows_per_s) if step.status == "ok" else "",
            f"{step.duration_ms / 1000:.2f}s"
            if step.status not in ("skipped", "cancelled") or step.duration_ms
            else "",
        )
    return table
