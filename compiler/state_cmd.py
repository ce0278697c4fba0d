"""`osiris state show|reset`: the incremental cursors a project's pipelines keep in .osiris/state."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import run_project_dir
from osiris.runtime.records.state import StateError, list_states, reset_states

FORMAT_HELP = "output format: text for people, json for programs (one JSON object on stdout)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `state show|reset` on the osiris command's subparsers."""
    state = sub.add_parser(
        "state", help="show or reset incremental state (cursor high-water marks)"
    )
    state.set_defaults(func=lambda args: _usage(state))
    commands = state.add_subparsers(metavar="COMMAND")

    p = commands.add_parser("show", help="each incremental step's last value, by pipeline")
    p.add_argument("pipeline", nargs="?", metavar="PIPELINE", help="only this pipeline (its name)")
    _common(p, cmd_show)

    p = commands.add_parser("reset", help="forget a pipeline's state: the next run starts over")
    p.add_argument("pipeline", metavar="PIPELINE", help="the pipeline's name")
    p.add_argument("--step", metavar="STEP", help="only this step")
    _common(p, cmd_reset)


def _common(p: argparse.ArgumentParser, func: Any) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    p.add_argument("--project-dir", metavar="DIR", help="the project whose .osiris/state to use")
    p.set_defaults(func=func)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return ExitCode.INVALID


def _project(args: argparse.Namespace) -> Path:
    if args.project_dir:
        return Path(args.project_dir).absolute()
    cwd = Path.cwd()
    return run_project_dir(cwd, os.environ, None, cwd)


def _refuse(args: argparse.Namespace, err: StateError) -> int:
    from osiris.compiler.cli import print_error

    return print_error(
        "osiris state", str(err), args.format, code="usage", exit_code=ExitCode.INVALID
    )


def cmd_show(args: argparse.Namespace) -> int:
    from osiris.compiler.cli import print_json

    try:
        states = list_states(_project(args), args.pipeline)
    except StateError as err:
        return _refuse(args, err)
    if args.format == "json":
        print_json({"project": str(_project(args)), "states": [s.to_dict() for s in states]})
        return ExitCode.OK
    if not states:
        print(f"no incremental state in {_project(args)}")
        return ExitCode.OK
    for item in states:
        if item.state is None:
            print(f"{item.pipeline}  {item.step}  unreadable: {item.problem}")
        else:
            print(f"{item.pipeline}  {item.step}  {item.state.cursor} > {item.state.last_value!r}")
    return ExitCode.OK


def cmd_reset(args: argparse.Namespace) -> int:
    from osiris.compiler.cli import print_json

    try:
        removed = reset_states(_project(args), args.pipeline, args.step)
    except StateError as err:
        return _refuse(args, err)
    if args.format == "json":
        print_json({"pipeline": args.pipeline, "removed": [str(p) for p in removed]})
        return ExitCode.OK
    what = f"{args.pipeline}/{args.step}" if args.step else args.pipeline
    print(f"reset {len(removed)} state file(s) of {what}" if removed else f"no state for {what}")
    return ExitCode.OK
