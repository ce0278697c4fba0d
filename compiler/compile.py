"""The orchestrator: parse → check → resolve params → lower → emit, each stage callable alone."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from osiris.compiler.connections import ConnectionsIndex
from osiris.compiler.emit import Emitted, emit
from osiris.compiler.frontend import CheckResult, check_file, check_text
from osiris.compiler.ir import PipelineIR
from osiris.compiler.lower import lower
from osiris.compiler.params import parse_cli_params, resolve_params
from osiris.oml.diagnostics import Diagnostic, DiagnosticList
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.manifest import MANIFEST_FILE

if TYPE_CHECKING:
    from osiris.compiler.check_schema import Catalogs


@dataclass(frozen=True, slots=True)
class CompileResult:
    checked: CheckResult
    ir: PipelineIR | None
    emitted: Emitted | None
    diagnostics: tuple[Diagnostic, ...]  # the check's, then the compile stage's
    exit_code: ExitCode


def compile_checked(
    checked: CheckResult,
    *,
    params: Sequence[str] = (),
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CompileResult:
    """Lower and emit a checked document; params are NAME=VALUE strings as on the command line."""
    if not checked.ok or checked.context is None:
        return CompileResult(checked, None, None, checked.diagnostics, ExitCode.INVALID)
    diagnostics = DiagnosticList()
    cli = parse_cli_params(params, diagnostics)
    ctx = checked.context
    resolved = resolve_params(
        ctx.document,
        profile,
        cli,
        os.environ if environ is None else environ,
        ctx.param_uses,
        diagnostics,
    )
    ir = None
    if not diagnostics.has_errors:
        ir = lower(ctx, {name: r.value for name, r in resolved.items()}, profile, diagnostics)
    emitted = None
    if ir is not None and not diagnostics.has_errors:
        emitted = emit(ir, ctx.registry.fingerprint(sorted(ir.specs)))
    all_diagnostics = checked.diagnostics + tuple(diagnostics.sorted())
    code = ExitCode.OK if emitted is not None else ExitCode.COMPILE
    return CompileResult(checked, ir, emitted, all_diagnostics, code)


def compile_text(
    text: str,
    file: str = "<string>",
    *,
    params: Sequence[str] = (),
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    connections: ConnectionsIndex | None = None,
    catalogs: Catalogs | None = None,
) -> CompileResult:
    checked = check_text(text, file, connections=connections, catalogs=catalogs)
    return compile_checked(checked, params=params, profile=profile, environ=environ)


def compile_file(
    path: Path,
    display: str | None = None,
    *,
    params: Sequence[str] = (),
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    connections: ConnectionsIndex | None = None,
    catalogs: Catalogs | None = None,
) -> CompileResult:
    checked = check_file(path, display, connections=connections, catalogs=catalogs)
    return compile_checked(checked, params=params, profile=profile, environ=environ)


class OutputRefused(Exception):
    """The output directory holds something that is not a previous compile; we do not replace it."""


def write_output(emitted: Emitted, out_dir: Path) -> None:
    """Write the files atomically: a new directory is built beside out_dir and swapped in."""
    out_dir = out_dir.absolute()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputRefused(f"{out_dir.name} exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
            raise OutputRefused(
                f"{out_dir.name} is not empty and holds no manifest.yaml; refusing to replace it"
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for rel, data in sorted(emitted.files.items()):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        os.chmod(staging, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.rmdir(old)
            os.rename(out_dir, old)
            os.rename(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
