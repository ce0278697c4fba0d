"""Step outcomes and how they are reported: step events, run.log lines, StepOutcome records."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from osiris.runtime.cancel import CancelToken
from osiris.runtime.drivers.base import CONFIGURATION_REASONS, ConnectionFailure, DriverError
from osiris.runtime.drivers.duckdb_errors import explain
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.events import (
    STEP_CANCELLED,
    STEP_FAILED,
    STEP_FINISHED,
    STEP_SKIPPED,
    STEP_STARTED,
    EventLog,
    RunLog,
)
from osiris.runtime.manifest import ManifestStep
from osiris.runtime.secrets import Redactor

StepStatus = Literal["ok", "failed", "skipped", "cancelled"]


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What happened to one step."""

    step_id: str
    driver: str
    role: str
    status: StepStatus
    rows_in: int = 0
    rows_out: int = 0
    bytes: int = 0
    duration_ms: int = 0
    error: str | None = None
    error_type: str | None = None
    cause: str | None = None  # for a skipped step: the failed step that caused it
    configuration: bool = False  # failed for a configuration reason (exit 5), e.g. credentials
    detail: str | None = None  # the library's or server's own words behind error

    @property
    def rows_per_s(self) -> float:
        rows = max(self.rows_in, self.rows_out)
        return round(rows * 1000 / self.duration_ms, 1) if self.duration_ms > 0 else float(rows)


@dataclass(frozen=True, slots=True)
class Measured:
    """What a step that succeeded read, produced and moved."""

    rows_in: int
    rows_out: int
    bytes: int


def one_line(text: str) -> str:
    """Collapse a (possibly multi-line) error message into one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def user_error(err: BaseException) -> DriverError | None:
    """err as the runtime reports it: a DriverError as is, a library's error that we can
    explain in our components' terms as one (None: neither)."""
    return err if isinstance(err, DriverError) else explain(err)


def describe_error(err: BaseException, redact: Callable[[str], str]) -> str:
    """A user-facing, one-line description of why a step failed, its message redacted."""
    known = user_error(err)
    if known is not None:
        return one_line(redact(str(known))) or type(err).__name__
    if type(err).__module__.split(".")[0] in ("duckdb", "_duckdb"):
        return one_line(redact(str(err)))  # it names its kind itself: "Binder Error: ..."
    return one_line(f"{type(err).__name__}: {redact(str(err))}")


def error_detail(err: BaseException) -> str | None:
    """The original text behind describe_error, when describe_error reworded it."""
    known = user_error(err)
    return known.detail if known is not None else None


def is_configuration_error(err: BaseException) -> bool:
    """Whether a step failed because of its configuration (exit 5) rather than at run time
    (exit 4): configuration errors, and connections the configuration cannot make."""
    if isinstance(err, ConnectionFailure):
        return err.reason in CONFIGURATION_REASONS
    return isinstance(err, ConfigurationError)


class StepReporter:
    """Turns what happens to steps into events, run.log lines and outcomes (thread-safe).
    Where a failure's free text enters the records: redacted here, once."""

    def __init__(
        self,
        events: EventLog,
        log: RunLog,
        redactor: Redactor,
        cancel: CancelToken | None = None,
    ) -> None:
        self.events = events
        self.log = log
        self.redactor = redactor
        self.cancel = cancel or CancelToken()

    def started(self, step: ManifestStep, **fields: Any) -> None:
        self.events.emit(STEP_STARTED, step.id, driver=step.driver, role=step.role, **fields)
        note = "".join(f", {k} {v}" for k, v in fields.items())
        self.log.write(f"started ({step.role}, {step.driver}{note})", step.id)

    def failed(
        self,
        step: ManifestStep,
        err: BaseException,
        started: float,
        *,
        rows_in: int = 0,
        message: str | None = None,
    ) -> StepOutcome:
        """message, when given, is made of parts that are redacted already (other outcomes'
        errors, step ids); otherwise err's own message is described and redacted.
        Once the run is cancelled, whatever a step raised is how its cancellation surfaced
        (an interrupted statement, a stream cut short): cancelled."""
        if self.cancel.cancelled:
            return self.cancelled(step, started, rows_in=rows_in, err=err)
        duration = _ms_since(started)
        text = message if message is not None else describe_error(err, self.redactor.redact)
        detail = error_detail(err)
        detail = self.redactor.redact(detail) if detail else None
        self.log.write(
            f"failed after {duration} ms: {text}\n"
            + (f"detail: {detail}\n" if detail else "")
            + self.redactor.traceback(err),
            step.id,
        )
        extra = {"detail": detail} if detail else {}
        self.events.emit(
            STEP_FAILED,
            step.id,
            error=text,
            error_type=type(err).__name__,
            duration_ms=duration,
            **extra,
        )
        return StepOutcome(
            step.id,
            step.driver,
            step.role,
            "failed",
            rows_in=rows_in,
            duration_ms=duration,
            error=text,
            error_type=type(err).__name__,
            configuration=is_configuration_error(err),
            detail=detail,
        )

    def succeeded(
        self, step: ManifestStep, measured: Measured, started: float, *, ended: float | None = None
    ) -> StepOutcome:
        duration = _ms_since(started, ended)
        outcome = StepOutcome(
            step.id,
            step.driver,
            step.role,
            "ok",
            rows_in=measured.rows_in,
            rows_out=measured.rows_out,
            bytes=measured.bytes,
            duration_ms=duration,
        )
        self.events.emit(
            STEP_FINISHED,
            step.id,
            duration_ms=duration,
            rows_in=outcome.rows_in,
            rows_out=outcome.rows_out,
            bytes=outcome.bytes,
            rows_per_s=outcome.rows_per_s,
        )
        self.log.write(
            f"finished in {duration} ms: rows_in={outcome.rows_in} rows_out={outcome.rows_out}",
            step.id,
        )
        return outcome

    def skipped(self, step: ManifestStep, failed: str, blocked_by: list[str]) -> StepOutcome:
        reason = f"upstream step '{failed}' failed"
        self.events.emit(STEP_SKIPPED, step.id, reason=reason, cause=failed, upstream=blocked_by)
        self.log.write(f"skipped: {reason}", step.id)
        return StepOutcome(step.id, step.driver, step.role, "skipped", error=reason, cause=failed)

    def cancelled(
        self,
        step: ManifestStep,
        started: float | None,
        *,
        rows_in: int = 0,
        err: BaseException | None = None,
    ) -> StepOutcome:
        """A step stopped by the run's cancellation (started None: it never started)."""
        duration = _ms_since(started) if started is not None else 0
        reason = self.cancel.describe()
        if started is None:
            self.log.write(f"cancelled before it started: {reason}", step.id)
        else:
            how = f"; it stopped with: {describe_error(err, self.redactor.redact)}" if err else ""
            self.log.write(f"cancelled after {duration} ms: {reason}{how}", step.id)
        self.events.emit(
            STEP_CANCELLED,
            step.id,
            reason=reason,
            started=started is not None,
            duration_ms=duration,
        )
        return StepOutcome(
            step.id,
            step.driver,
            step.role,
            "cancelled",
            rows_in=rows_in,
            duration_ms=duration,
            error=reason,
        )


def _ms_since(started: float, ended: float | None = None) -> int:
    return round(((ended or time.perf_counter()) - started) * 1000)
