"""Command lines: `omlc` (check, compile, fmt) and `osiris` (the same plus components, run, init, demo).

Exit codes are osiris.runtime.contract.exits.ExitCode, the same for every command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from osiris.runtime.contract.args import ParseError, Parser, wants_json
from osiris.runtime.contract.config_file import ConfigFileError
from osiris.runtime.contract.connections import (
    VALIDATION_ENV,
    VALIDATION_MODES,
    ValidationMode,
    parse_validation_mode,
)
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import connections_file
from osiris.runtime.contract.version import add_version_flag


class UsageError(Exception):
    """Bad command-line use; exit 2 with the message."""


FORMAT_HELP = "output format: text for people, json for programs (one JSON object on stdout)"


def print_json(data: Any, stream: Any = None) -> None:
    """One JSON document on stdout (or stream): the shape every --format json output shares."""
    print(json.dumps(data, indent=2, ensure_ascii=False), file=stream or sys.stdout)


def print_error(
    prog: str, message: str, fmt: str, *, code: str, exit_code: int, **fields: Any
) -> int:
    """An error as `prog: error: message` on stderr, or a JSON error envelope on stdout."""
    if fmt == "json":
        from osiris.oml.render import error_envelope

        print_json(error_envelope(message, code=code, exit_code=exit_code, **fields))
    else:
        print(f"{prog}: error: {message}", file=sys.stderr)
    return exit_code


def _color(stream: object) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def expand_paths(paths: Sequence[str]) -> list[tuple[Path, str]]:
    """Files to check: each file as given, every .oml below each directory (sorted)."""
    out: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.oml") if p.is_file())
            if not found:
                raise UsageError(f"no .oml files below {raw}")
            out.extend((p, str(p)) for p in found)
        else:
            out.append((path, raw))
    return out


# -- check ------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from osiris.compiler.frontend import check_file, load_connections, schema_catalogs
    from osiris.oml.render import render_json, render_text

    diagnostics: list[Any] = []
    fixed: list[dict[str, Any]] = []
    sources = {}
    loaded: dict[Path | None, Any] = {}  # each connections file is read (and reported) once
    catalogs: dict[tuple[Path, Path | None], Any] = {}  # one lookup per folder and file
    mode = validation_of(args)
    for path, display in expand_paths(args.files):
        connections_path = connections_file(args.connections, os.environ, path)
        if connections_path not in loaded:
            loaded[connections_path], problems = load_connections(connections_path, mode)
            diagnostics.extend(problems)
        key = (path.absolute().parent, connections_path)
        if key not in catalogs:
            catalogs[key] = schema_catalogs(args.schema, path, connections_path, os.environ)
        if args.fix or args.diff:
            result = _fix_file(path, display, loaded[connections_path], catalogs[key], args, fixed)
        else:
            result = check_file(
                path, display, connections=loaded[connections_path], catalogs=catalogs[key]
            )
        diagnostics.extend(result.diagnostics)
        sources[result.file] = result.source
    errors = sum(1 for d in diagnostics if d.severity.value == "error")
    if args.format == "json":
        extra = {"fixed": fixed} if args.fix or args.diff else {}
        print_json(render_json(diagnostics) | extra)
    else:
        sys.stdout.write(render_text(diagnostics, sources, color=_color(sys.stdout)))
    return ExitCode.INVALID if errors else ExitCode.OK


def _fix_file(
    path: Path,
    display: str,
    connections: Any,
    catalogs: Any,
    args: argparse.Namespace,
    fixed: list[Any],
) -> Any:
    """Check path after its safe fixes; write them (--fix) or print them as a diff (--diff)."""
    from functools import partial

    from osiris.compiler.fixes import fix_text, unified_diff, write_atomically
    from osiris.compiler.frontend import check_file, check_text, read_source

    text, _ = read_source(path, display)
    if text is None:
        return check_file(path, display)  # reports why it cannot be read
    check = partial(check_text, file=display, connections=connections, catalogs=catalogs)
    outcome = fix_text(text, check)
    fixed.extend(
        {"file": display, **f.to_dict(), "written": not args.diff} for f in outcome.applied
    )
    if outcome.changed and not args.diff:
        write_atomically(path, outcome.text)
    elif outcome.changed and args.format != "json":
        sys.stdout.write(unified_diff(text, outcome.text, display))
    if outcome.changed and args.format != "json":
        verb = "would fix" if args.diff else "fixed"
        for f in outcome.applied:
            print(f"{display}:{f.line}: {verb} {f.code}: {f.title}", file=sys.stderr)
    return outcome.result


def _add_check(sub: argparse._SubParsersAction, name: str = "check") -> None:
    p = sub.add_parser(name, help="check OML files against the component specs")
    p.add_argument("files", nargs="+", metavar="FILE", help="OML files or directories")
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    p.add_argument(
        "--connections",
        metavar="FILE",
        help="osiris_connections.yaml to check aliases against (default: $OSIRIS_CONNECTIONS, "
        "else the project's)",
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="apply the safe fixes (quoting @refs, legacy key renames, a lone close "
        "did-you-mean) to the files in place, then report what is left",
    )
    p.add_argument(
        "--diff",
        action="store_true",
        help="with or without --fix: print the safe fixes as a unified diff instead of writing",
    )
    add_schema_flag(p)
    add_validation_flag(p)
    p.set_defaults(func=cmd_check)


def add_schema_flag(p: argparse.ArgumentParser) -> None:
    """--schema: check tables, columns and processor SQL against discovered catalogs."""
    from osiris.compiler.frontend import SCHEMA_MODES

    p.add_argument(
        "--schema",
        choices=SCHEMA_MODES,
        default="cached",
        help="check tables, columns and processor SQL against discovered schemas: cached "
        "(discovery cache entries, never connects; the default), live (discover through the "
        "cache), off",
    )


# -- compile and fmt --------------------------------------------------------------------------


def _print_diagnostics(
    diagnostics: Sequence[Any], sources: dict[str, Any], fmt: str, stream: Any
) -> None:
    from osiris.oml.render import render_json, render_text

    if fmt == "json":
        print_json(render_json(diagnostics), stream)
    else:
        stream.write(render_text(diagnostics, sources, color=_color(stream)))


def _compile(args: argparse.Namespace) -> tuple[int, Any, list[Any]]:
    """Compile args.file; a broken connections file makes the result invalid (exit 2)."""
    from osiris.compiler.compile import compile_file
    from osiris.compiler.frontend import load_connections, schema_catalogs

    path = connections_file(args.connections, os.environ, Path(args.file))
    connections, problems = load_connections(path, validation_of(args))
    # `osiris run` has no --schema: its compile is checked as before
    catalogs = schema_catalogs(getattr(args, "schema", "off"), Path(args.file), path, os.environ)
    result = compile_file(
        Path(args.file),
        args.file,
        params=args.param,
        profile=args.profile,
        connections=connections,
        catalogs=catalogs,
    )
    code = result.exit_code
    if code == ExitCode.OK and any(d.severity.value == "error" for d in problems):
        code = ExitCode.INVALID
    return code, result, [*problems, *result.diagnostics]


def compile_command(args: argparse.Namespace) -> int:
    """`omlc FILE -o DIR` / `osiris compile`: write the manifest and/or print a stage."""
    from osiris.compiler.compile import OutputRefused, write_output

    if not args.output and not args.emit:
        raise UsageError(
            "say where to write the manifest with -o DIR (or print a stage with --emit)"
        )
    code, result, diagnostics = _compile(args)
    if diagnostics or code or args.format == "json":
        sources = {result.checked.file: result.checked.source}
        _print_diagnostics(
            diagnostics, sources, args.format, sys.stderr if args.emit else sys.stdout
        )
    if args.emit == "ast" and result.checked.document is not None:
        from osiris.oml.dump import to_data

        print(json.dumps(to_data(result.checked.document), indent=2, ensure_ascii=False))
    if code != ExitCode.OK:
        return code
    if args.emit == "ir":
        print(json.dumps(result.ir.to_dict(), indent=2, ensure_ascii=False, default=str))
    elif args.emit == "manifest":
        sys.stdout.write(result.emitted.manifest_yaml.decode("utf-8"))
    elif args.emit in ("dot", "mermaid"):
        from osiris.compiler.graph import to_dot, to_mermaid

        sys.stdout.write((to_dot if args.emit == "dot" else to_mermaid)(result.ir))
    if args.output:
        try:
            write_output(result.emitted, Path(args.output))
        except OutputRefused as err:
            raise UsageError(str(err)) from None
        if args.format == "text" and not args.emit:
            steps = len(result.ir.order)
            print(f"compiled {result.ir.name}: {steps} steps -> {args.output}/manifest.yaml")
    return ExitCode.OK


def cmd_compile(args: argparse.Namespace) -> int:
    return compile_command(args)


def compile_for_run(args: argparse.Namespace, out_dir: Path) -> int:
    """The compile half of `osiris run`: diagnostics printed only when there are any."""
    from osiris.compiler.compile import write_output

    code, result, diagnostics = _compile(args)
    if diagnostics or code:
        sources = {result.checked.file: result.checked.source}
        _print_diagnostics(diagnostics, sources, args.format, sys.stdout)
    if code == ExitCode.OK:
        write_output(result.emitted, out_dir)
    return code


def add_param_flags(p: argparse.ArgumentParser) -> None:
    """--param and --profile: shared by compile, check and `osiris run`."""
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a param (repeatable)",
    )
    p.add_argument("--profile", metavar="P", help="apply profiles.P.params")


def add_validation_flag(p: argparse.ArgumentParser) -> None:
    """--validation, as oml-run has it: how connection-schema problems and literal secrets count."""
    p.add_argument(
        "--validation",
        choices=VALIDATION_MODES,
        help="connection checks against the family schemas: strict = errors, warn = warnings, "
        f"off = skipped (default: ${VALIDATION_ENV}, else warn)",
    )


def validation_of(args: argparse.Namespace) -> ValidationMode:
    """--validation, else $OSIRIS_VALIDATION, else warn (the runtime's rule); a bad value of
    the variable is a configuration error (exit 5)."""
    try:
        return parse_validation_mode(getattr(args, "validation", None), os.environ)
    except ValueError as err:
        raise ConfigFileError(f"{VALIDATION_ENV}: {err}") from None


def add_compile_flags(p: argparse.ArgumentParser) -> None:
    add_param_flags(p)
    p.add_argument(
        "--connections",
        metavar="FILE",
        help="osiris_connections.yaml (default: $OSIRIS_CONNECTIONS, else the project's)",
    )
    add_validation_flag(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    add_schema_flag(p)


def _add_compile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a pipeline into manifest.yaml + cfg/*.json")
    p.add_argument("file", metavar="FILE", help="the OML pipeline to compile")
    p.add_argument(
        "-o", "--output", "--out", metavar="DIR", help="output directory (written atomically)"
    )
    p.add_argument(
        "--emit",
        choices=("ast", "ir", "manifest", "dot", "mermaid"),
        help="print a stage (or the DAG as Graphviz DOT / Mermaid) to stdout",
    )
    add_compile_flags(p)
    p.set_defaults(func=cmd_compile)


def cmd_fmt(args: argparse.Namespace) -> int:
    from osiris.compiler.frontend import read_source
    from osiris.oml.format import format_text
    from osiris.oml.span import SourceText

    as_json = args.format == "json"
    files: list[dict[str, str]] = []  # {"file", "status"}: formatted/unchanged/would_change/failed
    problems: list[Any] = []
    for path, display in expand_paths(args.files):
        text, problem = read_source(path, display)
        if text is None:
            assert problem is not None
            problems.append(problem)
            files.append({"file": display, "status": "failed"})
            if not as_json:
                _print_diagnostics([problem], {}, "text", sys.stderr)
            continue
        formatted, diagnostics = format_text(text, display)
        if formatted is None:
            problems.extend(diagnostics.sorted())
            files.append({"file": display, "status": "failed"})
            if not as_json:
                sources = {display: SourceText(display, text)}
                _print_diagnostics(diagnostics.sorted(), sources, "text", sys.stderr)
            continue
        if formatted == text:
            files.append({"file": display, "status": "unchanged"})
        elif args.check:
            files.append({"file": display, "status": "would_change"})
        else:
            from osiris.compiler.fixes import write_atomically

            write_atomically(path, formatted)
            files.append({"file": display, "status": "formatted"})
    changed = [f["file"] for f in files if f["status"] in ("formatted", "would_change")]
    if any(f["status"] == "failed" for f in files):
        code = ExitCode.INVALID
    else:
        code = ExitCode.INVALID if args.check and changed else ExitCode.OK
    if as_json:
        from osiris.oml.render import envelope

        def named(status: str) -> list[str]:
            return [f["file"] for f in files if f["status"] == status]

        print_json(
            envelope(
                problems,
                exit_code=int(code),
                check=bool(args.check),
                files=files,
                formatted=named("formatted"),
                unchanged=named("unchanged"),
                would_change=named("would_change"),
                failed=named("failed"),
            )
        )
    else:
        for name in changed:
            print(("would reformat " if args.check else "reformatted ") + name)
    return code


def _add_fmt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fmt", help="format OML files canonically (comments kept)")
    p.add_argument("files", nargs="+", metavar="FILE", help="OML files or directories")
    p.add_argument(
        "--check", action="store_true", help="only report files that would change (exit 2)"
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    p.set_defaults(func=cmd_fmt)


# -- entry points -----------------------------------------------------------------------------


def parse_or_report(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> argparse.Namespace | int:
    """parse_args; a usage error is printed (argparse's text, or JSON with --format json) and
    its exit code returned. --help and --version return 0."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_:  # --help / --version
        return int(exit_.code or 0) and ExitCode.INVALID
    except ParseError as err:
        if wants_json(argv):
            from osiris.oml.render import error_envelope

            print_json(
                error_envelope(
                    err.message,
                    code="usage",
                    exit_code=ExitCode.INVALID,
                    prog=err.parser.prog,
                    usage=err.usage,
                )
            )
        else:
            err.print_text()
        return ExitCode.INVALID


def _run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    args = parse_or_report(parser, argv)
    if isinstance(args, int):
        return args
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return ExitCode.INVALID
    fmt = getattr(args, "format", "text")
    try:
        return func(args)
    except UsageError as err:
        return print_error(parser.prog, str(err), fmt, code="usage", exit_code=ExitCode.INVALID)
    except ConfigFileError as err:
        return print_error(
            parser.prog, str(err), fmt, code="configuration", exit_code=ExitCode.CONFIGURATION
        )
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as err:  # never a traceback for the user; OSIRIS_DEBUG=1 shows it
        if os.environ.get("OSIRIS_DEBUG"):
            raise
        print(
            f"{parser.prog}: internal error: {type(err).__name__}: {err} "
            "(set OSIRIS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL


def _common_subcommands(sub: argparse._SubParsersAction) -> None:
    _add_check(sub)
    _add_compile(sub)
    _add_fmt(sub)


def _add_discover(sub: argparse._SubParsersAction) -> None:
    from osiris.compiler.discover_cmd import add_parser

    add_parser(sub)


OMLC_COMMANDS = ("check", "compile", "fmt", "-h", "--help", "--version")


def build_omlc_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="omlc", description="The OML compiler.")
    add_version_flag(parser)
    sub = parser.add_subparsers(metavar="COMMAND")
    _common_subcommands(sub)
    return parser


def build_osiris_parser() -> argparse.ArgumentParser:
    from osiris.compiler.components_cmd import add_parser as add_components
    from osiris.compiler.connections_cmd import add_parser as add_connections
    from osiris.compiler.llm.commands import add_parsers as add_llm
    from osiris.compiler.mcp.cli import add_parser as add_mcp
    from osiris.compiler.project_cmd import add_parsers as add_init
    from osiris.compiler.project_cmd import add_run_parsers
    from osiris.compiler.runs_cmd import add_parsers as add_runs
    from osiris.compiler.state_cmd import add_parser as add_state

    parser = Parser(prog="osiris", description="Osiris pipeline toolchain.")
    add_version_flag(parser)
    sub = parser.add_subparsers(metavar="COMMAND")
    _common_subcommands(sub)
    _add_discover(sub)
    add_components(sub)
    add_connections(sub)
    add_init(sub)
    add_run_parsers(sub)
    add_mcp(sub)
    add_runs(sub)
    add_llm(sub)
    add_state(sub)
    return parser


def omlc_main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in OMLC_COMMANDS:
        args = ["compile", *args]  # `omlc FILE -o DIR` is the compile command
    return _run(build_omlc_parser(), args)


def osiris_main(argv: Sequence[str] | None = None) -> int:
    return _run(build_osiris_parser(), list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(osiris_main())
