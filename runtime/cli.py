"""`oml-run MANIFEST`: execute a compiled manifest (in process, or with --engine in a sandbox).

Exit codes (osiris.runtime.contract.exits.ExitCode):
  0  the run succeeded
  1  internal error (a one-line message on stderr; the traceback is in runs/<id>/run.log)
  2  usage: an unknown flag or a bad value
  3  manifest invalid or modified: not valid YAML, fails specs/manifest.schema.json, a cfg file
     is missing, or the body/cfg files do not match their fingerprints (--allow-modified
     skips only the fingerprint comparison, never validation)
  4  run failure: a step failed; downstream steps were skipped, independent branches finished
  5  configuration: connections file, alias, ${VARIABLE}, secrets file, run directory, or a
     connection it cannot make (credentials, unknown user/database, refused, unreachable)
  130  cancelled by SIGINT (Ctrl-C), 143 cancelled by SIGTERM: running statements are cancelled
     on their servers and rolled back, file targets are left as they were, status.json says
     "cancelled"; a second signal while cancelling only prints a line
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from osiris.runtime.cancel import CancelToken, cancel_on_signals, signal_name
from osiris.runtime.connections import VALIDATION_MODES
from osiris.runtime.console import (
    UNLIMITED_WIDTH,
    LiveView,
    PlainView,
    QuietView,
    progress_interval,
    summary_table,
)
from osiris.runtime.contract.args import ParseError, Parser, wants_json
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.version import add_version_flag
from osiris.runtime.engines import ENGINES
from osiris.runtime.output import closable_stdout
from osiris.runtime.runner import RunOutcome

if TYPE_CHECKING:
    from rich.console import Console


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="oml-run",
        description="Run a compiled Osiris manifest (manifest.yaml + cfg/).",
        epilog="exit codes: 0 ok, 1 internal error, 2 usage, 3 manifest invalid/modified, "
        "4 run failure, 5 configuration, 130/143 cancelled by SIGINT/SIGTERM (the running "
        "steps are rolled back)",
    )
    add_version_flag(parser)
    parser.add_argument("manifest", type=Path, help="manifest.yaml or the directory holding it")
    add_run_arguments(parser)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser, *, with_format: bool = True) -> None:
    """The run flags, shared by `oml-run` and `osiris run`."""
    parser.add_argument(
        "--connections", type=Path, help="osiris_connections.yaml (default: in the project dir)"
    )
    parser.add_argument("--secrets-file", type=Path, help="KEY=VALUE file for ${VAR} references")
    parser.add_argument("--project-dir", type=Path, help="base for relative paths (default: cwd)")
    parser.add_argument(
        "--run-dir", type=Path, help="directory for this run's records (default: runs/<run_id>)"
    )
    add_engine_arguments(parser)
    if with_format:
        parser.add_argument(
            "--format",
            choices=["text", "json"],
            default="text",
            help="output format: a summary table (text) or the run summary as one JSON object",
        )
    parser.add_argument(
        "--allow-modified", action="store_true", help="run even if fingerprints do not match"
    )
    parser.add_argument(
        "--no-keep-intermediate",
        action="store_true",
        help="delete run.duckdb at the end of the run",
    )
    parser.add_argument(
        "--max-parallel", type=int, help="worker threads for independent steps (default 2-4)"
    )
    parser.add_argument(
        "--validation", choices=VALIDATION_MODES, help="connection validation (default warn)"
    )
    parser.add_argument(
        "--materialize",
        choices=["auto", "all"],
        help="all: copy every step's output into run.duckdb, no streaming or in-place views "
        "(default auto, or $OSIRIS_MATERIALIZE)",
    )
    parser.add_argument(
        "--atomic",
        action="store_true",
        help="publish every writer's target only once every step succeeded (default: each "
        "writer publishes when it finishes)",
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine (osiris.runtime.engines.ENGINES), the cluster's address and the sandbox's limits."""
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="local",
        help="where the run executes: local (in this process), dask (every step as tasks "
        "on a Dask cluster), local-sandbox (a separate venv with a scrubbed environment), e2b (an "
        "e2b cloud sandbox; needs E2B_API_KEY)",
    )
    parser.add_argument(
        "--scheduler",
        help="dask: the scheduler to connect to, tcp://HOST:PORT (default: a LocalCluster "
        "started for the run)",
    )
    parser.add_argument(
        "--workers", type=int, help="dask: worker processes of the LocalCluster (default 2)"
    )
    parser.add_argument("--e2b-template", help="e2b sandbox template (default: e2b's base)")
    parser.add_argument(
        "--e2b-timeout", type=int, help="sandboxed run time limit in seconds (default 3000)"
    )
    parser.add_argument(
        "--e2b-cpu", type=int, help="sandboxed run: worker threads (the VM size is the template's)"
    )
    parser.add_argument(
        "--e2b-memory", type=int, help="sandboxed run: address-space limit of the run in MiB"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help / --version
        return int(exit_.code or 0) and ExitCode.INVALID
    except ParseError as err:
        if not wants_json(argv):
            err.print_text()
            return ExitCode.INVALID
        failed = RunOutcome("failed", ExitCode.INVALID, error=f"{err.parser.prog}: {err.message}")
        print(json.dumps({**failed.summary(), "usage": err.usage}, ensure_ascii=False))
        return ExitCode.INVALID
    try:
        with closable_stdout() as out:
            return _run(args, out, sys.stderr)
    except KeyboardInterrupt:
        print("oml-run: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as err:  # never a raw traceback on stderr
        print(
            f"oml-run: internal error ({type(err).__name__}); see run.log in the run directory",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return execute(args, args.manifest, out, err)


def execute(
    args: argparse.Namespace, manifest: Path, out: TextIO, err: TextIO, *, prog: str = "oml-run"
) -> int:
    """Run a manifest with the flags of add_run_arguments; print as --format says. SIGINT and
    SIGTERM cancel the run (exit 130 / 143) instead of interrupting it."""
    for flag in ("max_parallel", "workers", "e2b_timeout", "e2b_cpu", "e2b_memory"):
        value = getattr(args, flag, None)
        if value is None or value >= 1:
            continue
        problem = f"--{flag.replace('_', '-')} must be at least 1"
        if args.format == "json":
            failed = RunOutcome("failed", ExitCode.INVALID, error=problem)
            print(json.dumps(failed.summary(), ensure_ascii=False), file=out, flush=True)
        else:
            print(f"{prog}: error: {problem}", file=err)
        return ExitCode.INVALID
    view: LiveView | PlainView | QuietView
    console: Console | None = None
    if args.format == "json":
        view = QuietView(err)
    elif out.isatty():
        from rich.console import Console  # not loaded for --format json

        console = Console(file=out)
        view = LiveView(console)
    else:
        try:
            interval = progress_interval(os.environ)
        except ValueError as problem:
            print(f"{prog}: error: {problem}", file=err)
            return ExitCode.CONFIGURATION
        from rich.console import Console

        # a pipe or file has no width: never cut or wrap the summary table to 80 columns
        console = Console(file=out, width=UNLIMITED_WIDTH)
        view = PlainView(out, interval)
    cancel = CancelToken()

    def notify(signum: int, repeated: bool) -> None:
        what = "already cancelling; cleaning up" if repeated else "cancelling; rolling back"
        with contextlib.suppress(Exception):  # e.g. a reentrant write: the line is only a courtesy
            print(f"{prog}: {signal_name(signum)}: {what}", file=err, flush=True)

    with view, cancel_on_signals(cancel, notify):
        outcome = ENGINES[args.engine](manifest, args, view, cancel)
    if args.format == "json":
        print(json.dumps(outcome.summary(), ensure_ascii=False), file=out, flush=True)
    elif console is not None:
        _print_text(outcome, console, err, prog)
    return outcome.exit_code


def _print_text(outcome: RunOutcome, console: Console, err: TextIO, prog: str) -> None:
    if outcome.steps:
        console.print(summary_table(outcome))
    if outcome.exit_code == 0:
        print(
            f"run {outcome.run_id} ok: records in {outcome.run_dir}", file=console.file, flush=True
        )
        return
    error = outcome.error or ""
    where = (
        ""
        if not outcome.run_dir or "details in" in error
        else f"; details in {outcome.run_dir / 'run.log'}"
    )
    label = "run failed" if outcome.exit_code == 4 else prog
    print(f"{label}: {error}{where}", file=err, flush=True)
    if outcome.note:
        print(f"note: {outcome.note}", file=err, flush=True)


if __name__ == "__main__":
    sys.exit(main())
