"""Connection doctor: aliases resolved exactly as a run resolves them, then pinged concurrently, each within a timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from osiris.runtime.catalog.ping import PING_FAMILIES, PingResult, ping, preload
from osiris.runtime.connections import ConnectionResolver, ValidationMode
from osiris.runtime.contract.connections import ConnectionRef
from osiris.runtime.drivers.base import ConnectionFailure, DriverError
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.secrets import Redactor, read_dotenv

# A driver that overruns its own connect timeout (DNS, a silent server) gets this much longer.
GRACE_S = 0.5


@dataclass(frozen=True, slots=True)
class AliasReport:
    """How one alias fared; message is one secret-free line."""

    ref: str  # '@family.alias' as asked
    status: str  # ok | failed | skipped
    reason: str | None  # a ConnectionFailure reason, "configuration" or "timeout"; None when ok
    message: str
    elapsed_ms: float
    result: PingResult | None = None
    warnings: tuple[str, ...] = ()


def doctor(
    refs: Sequence[str],
    *,
    connections: Path,
    root: Path,
    secrets_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    validation: ValidationMode = "warn",
    timeout: float = 10.0,
) -> list[AliasReport]:
    """One report per ref, in order. Every alias is checked in its own thread; one that has not
    answered after timeout (+ GRACE_S) seconds is reported as timed out and left behind, so the
    whole check takes about as long as the slowest alias, at most the timeout."""
    redactor = Redactor()
    resolver = ConnectionResolver(
        connections,
        redactor=redactor,
        secrets_file=secrets_file,
        dotenv=root / ".env",
        environ=environ,
        validation=validation,
    )
    for family in {parsed.family for ref in refs if (parsed := ConnectionRef.parse(ref))}:
        preload(family)
    reports: dict[int, AliasReport] = {}
    threads = []
    started = time.monotonic()
    for index, ref in enumerate(refs):

        def work(index: int = index, ref: str = ref) -> None:
            reports[index] = _check(resolver, ref, root, timeout)

        thread = threading.Thread(target=work, name=f"osiris-doctor-{index}", daemon=True)
        thread.start()
        threads.append(thread)
    deadline = started + timeout + GRACE_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    out = []
    for index, ref in enumerate(refs):
        report = reports.get(index)
        if report is None:
            report = AliasReport(
                ref,
                "failed",
                "timeout",
                f"no answer within {timeout:g} s (the host may be down or a firewall drops "
                "the packets)",
                _ms(time.monotonic() - started),
            )
        out.append(_redacted(report, redactor))
    return out


def _check(resolver: ConnectionResolver, ref: str, root: Path, timeout: float) -> AliasReport:
    started = time.monotonic()

    def failed(reason: str, message: str, warnings: tuple[str, ...] = ()) -> AliasReport:
        return AliasReport(
            ref, "failed", reason, message, _ms(time.monotonic() - started), warnings=warnings
        )

    try:
        resolved = resolver.resolve(ref)
    except ConfigurationError as err:
        return failed("configuration", str(err))
    if resolved.family not in PING_FAMILIES:
        return AliasReport(
            ref,
            "skipped",
            None,
            f"no connection check for family {resolved.family!r}",
            0.0,
            warnings=resolved.warnings,
        )
    try:
        result = ping(resolved.family, resolved.fields, timeout, root=root)
    except ConnectionFailure as err:
        return failed(err.reason, str(err), resolved.warnings)
    except ConfigurationError as err:  # DriverConfigError: fields the driver cannot use
        return failed("configuration", str(err), resolved.warnings)
    except DriverError as err:
        return failed("other", str(err), resolved.warnings)
    except Exception as err:  # a library's own error: still one line, never a traceback
        return failed("other", f"{type(err).__name__}: {err}", resolved.warnings)
    version = f"{result.server_version}, " if result.server_version else ""
    note = f" ({result.note})" if result.note else ""
    return AliasReport(
        ref,
        "ok",
        None,
        f"ok: {version}{result.latency_ms:.1f} ms round trip{note}",
        _ms(time.monotonic() - started),
        result,
        resolved.warnings,
    )


def variable_sources(
    names: Sequence[str],
    *,
    root: Path,
    secrets_file: Path | None = None,
    environ: Mapping[str, str],
) -> tuple[dict[str, str | None], list[str]]:
    """Where each ${VAR} would come from when a run resolves it: "environment", "secrets file",
    ".env", or None (not set); never a value. Also the problems reading those files."""
    layers: list[tuple[str, Mapping[str, str]]] = [("environment", environ)]
    problems: list[str] = []
    files = [("secrets file", secrets_file), (".env", root / ".env")]
    for label, path in files:
        if path is None or (label == ".env" and not path.exists()):
            continue
        try:
            layers.append((label, read_dotenv(path)))
        except ConfigurationError as err:
            problems.append(str(err))
    found: dict[str, str | None] = {}
    for name in names:
        found[name] = next((label for label, layer in layers if name in layer), None)
    return found, problems


def _redacted(report: AliasReport, redactor: Redactor) -> AliasReport:
    return AliasReport(
        report.ref,
        report.status,
        report.reason,
        " ".join(redactor.redact(report.message).split()),  # one line, whatever a library said
        report.elapsed_ms,
        report.result,
        tuple(redactor.redact(w) for w in report.warnings),
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
