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

from osiris.runtime.contract.config_file import ConfigFileError
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import connections_file
from osiris.runtime.contract.version import add_version_flag


class UsageError(Exception):
    """Bad command-line use; exit 2 with the message."""


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
    from osiris.compiler.frontend import check_file, load_connections
    from osiris.oml.render import render_json, render_text

    diagnostics: list[Any] = []
    sources = {}
    loaded: dict[Path | None, Any] = {}  # each connections file is read (and reported) once
    for path, display in expand_paths(args.files):
        connections_path = connections_file(args.connections, os.environ, path)
        if connections_path not in loaded:
            loaded[connections_path], problems = load_connections(connections_path)
            diagnostics.extend(problems)
        result = check_file(path, display, connections=loaded[connections_path])
        diagnostics.extend(result.diagnostics)
        sources[result.file] = result.source
    errors = sum(1 for d in diagnostics if d.severity.value == "error")
    if args.format == "json":
        print(json.dumps(render_json(diagnostics), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(diagnostics, sources, color=_color(sys.stdout)))
    return ExitCode.INVALID if errors else ExitCode.OK


def _add_check(sub: argparse._SubParsersAction, name: str = "check") -> None:
    p = sub.add_parser(name, help="check OML files against the component specs")
    p.add_argument("files", nargs="+", metavar="FILE", help="OML files or directories")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--connections",
        metavar="FILE",
        help="osiris_connections.yaml to check aliases against (default: $OSIRIS_CONNECTIONS, "
        "else the project's)",
    )
    p.set_defaults(func=cmd_check)


# -- compile and fmt --------------------------------------------------------------------------


def _print_diagnostics(
    diagnostics: Sequence[Any], sources: dict[str, Any], fmt: str, stream: Any
) -> None:
    from osiris.oml.render import render_json, render_text

    if fmt == "json":
        print(json.dumps(render_json(diagnostics), indent=2, ensure_ascii=False), file=stream)
    else:
        stream.write(render_text(diagnostics, sources, color=_color(stream)))


def _compile(args: argparse.Namespace) -> tuple[int, Any, list[Any]]:
    """Compile args.file; a broken connections file makes the result invalid (exit 2)."""
    from osiris.compiler.compile import compile_file
    from osiris.compiler.frontend import load_connections

    path = connections_file(args.connections, os.environ, Path(args.file))
    connections, problems = load_connections(path)
    result = compile_file(
        Path(args.file), args.file, params=args.param, profile=args.profile, connections=connections
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


def add_compile_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a param (repeatable)",
    )
    p.add_argument("--profile", metavar="P", help="apply profiles.P.params")
    p.add_argument(
        "--connections",
        metavar="FILE",
        help="osiris_connections.yaml (default: $OSIRIS_CONNECTIONS, else the project's)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")


def _add_compile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a pipeline into manifest.yaml + cfg/*.json")
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "-o", "--output", "--out", metavar="DIR", help="output directory (written atomically)"
    )
    p.add_argument("--emit", choices=("ast", "ir", "manifest"), help="print a stage to stdout")
    add_compile_flags(p)
    p.set_defaults(func=cmd_compile)


def cmd_fmt(args: argparse.Namespace) -> int:
    from osiris.compiler.frontend import read_source
    from osiris.oml.format import format_text

    changed, failed = [], False
    for path, display in expand_paths(args.files):
        text, problem = read_source(path, display)
        if text is None:
            assert problem is not None
            _print_diagnostics([problem], {}, "text", sys.stderr)
            failed = True
            continue
        formatted, diagnostics = format_text(text, display)
        if formatted is None:
            from osiris.oml.span import SourceText

            _print_diagnostics(
                diagnostics.sorted(), {display: SourceText(display, text)}, "text", sys.stderr
            )
            failed = True
            continue
        if formatted != text:
            changed.append(display)
            if not args.check:
                tmp = path.with_name(f".{path.name}.fmt.tmp")
                tmp.write_text(formatted, encoding="utf-8")
                os.replace(tmp, path)
    for name in changed:
        print(("would reformat " if args.check else "reformatted ") + name)
    if failed:
        return ExitCode.INVALID
    return ExitCode.INVALID if args.check and changed else ExitCode.OK


def _add_fmt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fmt", help="format OML files canonically (comments kept)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--check", action="store_true", help="only report files that would change (exit 1)"
    )
    p.set_defaults(func=cmd_fmt)


# -- entry points -----------------------------------------------------------------------------


def _run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed the usage error
        return int(exit_.code or 0) and ExitCode.INVALID
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return ExitCode.INVALID
    try:
        return func(args)
    except UsageError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return ExitCode.INVALID
    except ConfigFileError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return ExitCode.CONFIGURATION
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


OMLC_COMMANDS = ("check", "compile", "fmt", "-h", "--help", "--version")


def omlc_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omlc", description="The OML compiler.")
    add_version_flag(parser)
    sub = parser.add_subparsers(metavar="COMMAND")
    _common_subcommands(sub)
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in OMLC_COMMANDS:
        args = ["compile", *args]  # `omlc FILE -o DIR` is the compile command
    return _run(parser, args)


def osiris_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osiris", description="Osiris pipeline toolchain.")
    add_version_flag(parser)
    sub = parser.add_subparsers(metavar="COMMAND")
    _common_subcommands(sub)
    from osiris.compiler.components_cmd import add_parser as add_components
    from osiris.compiler.project_cmd import add_parsers as add_init
    from osiris.compiler.project_cmd import add_run_parsers

    add_components(sub)
    add_init(sub)
    add_run_parsers(sub)
    return _run(parser, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(osiris_main())
