"""Engines: how a verified manifest is executed and its records land in runs/<run_id>/ (ENGINES)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from osiris.runtime.cancel import CancelToken

if TYPE_CHECKING:
    from osiris.runtime.runner import RunObserver, RunOutcome

# (manifest, the run flags of add_run_arguments, the progress view, the cancel token) -> outcome
Engine = Callable[[Path, argparse.Namespace, "RunObserver", CancelToken], "RunOutcome"]


def _in_process(
    manifest: Path, args: argparse.Namespace, observer: RunObserver, cancel: CancelToken
) -> RunOutcome:
    """local and dask: this process runs the plan; dask sends every step to its cluster."""
    from osiris.runtime.engines.partitions import EngineOptions
    from osiris.runtime.runner import run_manifest

    return run_manifest(
        manifest,
        connections=args.connections,
        secrets_file=args.secrets_file,
        project_dir=args.project_dir,
        run_dir=args.run_dir,
        allow_modified=args.allow_modified,
        keep_intermediate=not args.no_keep_intermediate,
        max_parallel=args.max_parallel,
        validation=args.validation,
        materialize=args.materialize,
        atomic=args.atomic,
        observer=observer,
        cancel=cancel,
        engine=args.engine,
        engine_options=EngineOptions(
            getattr(args, "scheduler", None), getattr(args, "workers", None)
        ),
    )


def _local_sandbox(
    manifest: Path, args: argparse.Namespace, observer: RunObserver, cancel: CancelToken
) -> RunOutcome:
    from osiris.runtime.engines.local_sandbox import LocalSandbox
    from osiris.runtime.engines.sandboxed import run_sandboxed, sandbox_options

    options = sandbox_options(args)
    return run_sandboxed(
        LocalSandbox(options.limits), manifest, options, observer=observer, cancel=cancel
    )


def _e2b(
    manifest: Path, args: argparse.Namespace, observer: RunObserver, cancel: CancelToken
) -> RunOutcome:
    from osiris.runtime.contract.exits import ExitCode
    from osiris.runtime.engines.e2b_sandbox import E2BSandbox
    from osiris.runtime.engines.sandboxed import e2b_api_key, run_sandboxed, sandbox_options
    from osiris.runtime.errors import ConfigurationError
    from osiris.runtime.runner import RunOutcome

    options = sandbox_options(args)
    try:
        key = e2b_api_key(os.environ, options.secrets_file)
    except ConfigurationError as err:
        return RunOutcome("failed", ExitCode.CONFIGURATION, error=str(err))
    return run_sandboxed(
        E2BSandbox(key, options.limits), manifest, options, observer=observer, cancel=cancel
    )


ENGINES: dict[str, Engine] = {
    "local": _in_process,
    "dask": _in_process,
    "local-sandbox": _local_sandbox,
    "e2b": _e2b,
}
