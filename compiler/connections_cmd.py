"""`osiris connections list|doctor`: the aliases of osiris_connections.yaml (never a secret), and whether each can be reached."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osiris.compiler.cli import (
    FORMAT_HELP,
    UsageError,
    add_validation_flag,
    print_error,
    print_json,
    validation_of,
)
from osiris.runtime.contract.connections import (
    DEFAULT_KEY,
    VARIABLE_REFERENCE,
    ConnectionRef,
    NoDefaultAlias,
    default_alias,
    is_secret_field,
    public_fields,
    secret_fields,
)
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import (
    CONNECTIONS_ENV,
    CONNECTIONS_FILE,
    connections_file,
    run_project_dir,
)

if TYPE_CHECKING:
    from osiris.compiler.connections import ConnectionsIndex
    from osiris.oml.diagnostics import Diagnostic
    from osiris.oml.span import SourceText

PROG = "osiris connections"
DEFAULT_TIMEOUT_S = 10.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `connections list|doctor` on the `osiris` parser."""
    parser = subparsers.add_parser(
        "connections",
        help="list the connection aliases, or check that they can be reached",
        description="The aliases of osiris_connections.yaml: list them (never a secret value), "
        "or connect to each (doctor).",
    )
    parser.set_defaults(func=_missing_command)
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("list", help="every alias by family: its fields (no secrets), variables")
    _common_flags(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "doctor",
        help="connect to each alias, authenticate, run a trivial query (exit 5 if any fails)",
    )
    p.add_argument(
        "refs", nargs="*", metavar="@family.alias", help="the aliases to check (default: all)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds each alias may take; aliases are checked at the same time "
        f"(default {DEFAULT_TIMEOUT_S:g})",
    )
    _common_flags(p)
    p.set_defaults(func=cmd_doctor)


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--connections",
        metavar="FILE",
        help="osiris_connections.yaml (default: $OSIRIS_CONNECTIONS, else the project's)",
    )
    p.add_argument(
        "--secrets-file", type=Path, metavar="FILE", help="KEY=VALUE file for ${VAR} references"
    )
    add_validation_flag(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)


def _missing_command(args: argparse.Namespace) -> int:
    raise UsageError("say what to do: `osiris connections list` or `osiris connections doctor`")


# -- finding and reading the file ---------------------------------------------------------------


def _connections_path(args: argparse.Namespace) -> Path | None:
    """The connections file, or None after printing why there is none (exit 5)."""
    path = connections_file(args.connections, os.environ, Path.cwd())
    if path is None:
        message = (
            f"no connections file: pass --connections FILE, set {CONNECTIONS_ENV}, or create "
            f"{CONNECTIONS_FILE} in the project directory (osiris init writes one)"
        )
    elif not path.exists():
        message = f"connections file {path} does not exist"
    else:
        return path
    print_error(PROG, message, args.format, code="configuration", exit_code=ExitCode.CONFIGURATION)
    return None


def _root(path: Path, args: argparse.Namespace) -> Path:
    return run_project_dir(path, os.environ, args.connections, Path.cwd()).resolve()


def _index(
    path: Path, args: argparse.Namespace
) -> tuple[ConnectionsIndex | None, list[Diagnostic], dict[str, SourceText]]:
    """The file's aliases and its diagnostics (the checker's, under --validation)."""
    from osiris.compiler.connections import index_connections
    from osiris.oml.diagnostics import DiagnosticList
    from osiris.oml.span import SourceText
    from osiris.runtime.contract.config_file import read_config_text

    diagnostics = DiagnosticList()
    source = SourceText(str(path), read_config_text(path, "connections file"))
    index = index_connections(source, diagnostics, validation=validation_of(args))
    return index, diagnostics.sorted(), {source.file: source}


def _print_diagnostics(diagnostics: list[Diagnostic], sources: dict[str, SourceText]) -> None:
    """On stderr, with excerpts of the file only where no secret can stand (a literal secret's
    value is masked; a file with an error is shown without excerpts)."""
    from osiris.oml.render import render_text

    if diagnostics:
        shown = {} if _has_errors(diagnostics) else sources
        sys.stderr.write(render_text(diagnostics, shown))


def _has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity.value == "error" for d in diagnostics)


# -- list -------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    path = _connections_path(args)
    if path is None:
        return ExitCode.CONFIGURATION
    index, diagnostics, sources = _index(path, args)
    families, unreadable = (
        describe_connections(
            index, _root(path, args), secrets_file=args.secrets_file, environ=os.environ
        )
        if index
        else ([], [])
    )
    failed = index is None or _has_errors(diagnostics) or bool(unreadable)
    code = ExitCode.CONFIGURATION if failed else ExitCode.OK
    if args.format == "json":
        from osiris.oml.render import envelope

        print_json(
            envelope(
                diagnostics,
                exit_code=int(code),
                connections_file=str(path),
                validation=validation_of(args),
                families=families,
                variable_files_unreadable=unreadable,
            )
        )
        return code
    _print_diagnostics(diagnostics, sources)
    for problem in unreadable:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
    if index is None:
        print(f"{PROG}: error: {path} is not a valid connections file", file=sys.stderr)
        return code
    print(f"connections file: {path}")
    if not families:
        print("no connections defined")
    for family in families:
        print(f"{family['family']}:")
        for alias in family["aliases"]:
            print("  " + _alias_line(alias))
    return code


def describe_connections(
    index: ConnectionsIndex,
    root: Path,
    *,
    secrets_file: Path | None,
    environ: Mapping[str, str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per family: its default alias and its aliases, each with public fields, secret fields
    (by name and where their value comes from, never the value) and the variables used. Also
    the problems reading the --secrets-file or .env (a run would stop on them)."""
    from osiris.compiler.registry import load_registry
    from osiris.runtime.catalog.doctor import variable_sources

    registry = load_registry()
    described: list[dict[str, Any]] = []
    used: dict[str, None] = {}
    for family in index.families():
        marked = secret_fields(registry.connection_schema(family))
        entries = index.aliases[family]
        try:
            default: str | None = default_alias(family, {a: e.fields for a, e in entries.items()})
        except NoDefaultAlias:
            default = None
        aliases = []
        for alias, entry in entries.items():
            fields = {k: v for k, v in entry.fields.items() if k != DEFAULT_KEY}
            variables = _variables(fields, marked)
            used.update(dict.fromkeys(v["name"] for v in variables))
            aliases.append(
                {
                    "ref": f"@{family}.{alias}",
                    "alias": alias,
                    "default": alias == default,
                    "fields": public_fields(fields, marked),
                    "secret_fields": {
                        name: "variable" if _references(value) else "literal"
                        for name, value in fields.items()
                        if is_secret_field(name, marked) and value not in (None, "")
                    },
                    "variables": variables,
                }
            )
        described.append({"family": family, "default_alias": default, "aliases": aliases})
    sources, unreadable = variable_sources(
        list(used), root=root, secrets_file=secrets_file, environ=environ
    )
    for described_family in described:
        for shown in described_family["aliases"]:
            for variable in shown["variables"]:
                variable["set"] = sources.get(variable["name"]) is not None
                variable["source"] = sources.get(variable["name"])
    return described, unreadable


def _references(value: Any) -> list[tuple[str, bool]]:
    """(name, has a default) of each ${VAR} inside value."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    if not isinstance(value, str):
        return []
    return [
        (m.group(1), m.group(2) is not None)
        for m in VARIABLE_REFERENCE.finditer(value)
        if m.group(1)
    ]


def _variables(fields: dict[str, Any], marked: frozenset[str]) -> list[dict[str, Any]]:
    """The variables an alias references, in order: in which fields, whether they have a
    default (a secret field's default is never shown, here or anywhere)."""
    found: dict[str, dict[str, Any]] = {}
    for name, value in fields.items():
        for variable, has_default in _references(value):
            item = found.setdefault(
                variable, {"name": variable, "fields": [], "has_default": False, "secret": False}
            )
            item["fields"].append(name)
            item["has_default"] = item["has_default"] or has_default
            item["secret"] = item["secret"] or is_secret_field(name, marked)
    return list(found.values())


def _alias_line(alias: dict[str, Any]) -> str:
    parts = [alias["ref"] + (" (default)" if alias["default"] else "")]
    parts += [f"{k}={_scalar(v)}" for k, v in alias["fields"].items()]
    parts += [f"{k}=<secret: {how}>" for k, how in alias["secret_fields"].items()]
    line = "  ".join(parts)
    if alias["variables"]:
        states = [
            f"{v['name']} {'set (' + v['source'] + ')' if v['set'] else 'NOT SET'}"
            + (" (has a default)" if v["has_default"] and not v["set"] else "")
            for v in alias["variables"]
        ]
        line += "\n      variables: " + ", ".join(states)
    return line


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- doctor -----------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError("--timeout must be a positive number of seconds")
    path = _connections_path(args)
    if path is None:
        return ExitCode.CONFIGURATION
    index, diagnostics, sources = _index(path, args)
    if index is None:
        if args.format == "json":
            from osiris.oml.render import envelope

            print_json(envelope(diagnostics, exit_code=int(ExitCode.CONFIGURATION), aliases=[]))
        else:
            _print_diagnostics(diagnostics, sources)
        return ExitCode.CONFIGURATION
    refs = _refs(args.refs, index)
    from osiris.runtime.catalog.doctor import doctor

    reports = doctor(
        refs,
        connections=path,
        root=_root(path, args),
        secrets_file=args.secrets_file,
        environ=os.environ,
        validation=validation_of(args),
        timeout=args.timeout,
    )
    failed = [r for r in reports if r.status == "failed"]
    code = ExitCode.CONFIGURATION if failed else ExitCode.OK
    if args.format == "json":
        from osiris.oml.render import envelope

        print_json(
            envelope(
                diagnostics,
                exit_code=int(code),
                connections_file=str(path),
                validation=validation_of(args),
                aliases=[report_to_json(r) for r in reports],
            )
        )
        return code
    _print_diagnostics([d for d in diagnostics if d.severity.value == "error"], sources)
    if not reports:
        print("no connections defined")
    width = max((len(r.ref) for r in reports), default=0)
    for report in reports:
        mark = {"ok": "ok  ", "failed": "FAIL", "skipped": "skip"}[report.status]
        text = report.message if report.status != "ok" else report.message.removeprefix("ok: ")
        reason = f"[{report.reason}] " if report.reason else ""
        print(f"{mark} {report.ref.ljust(width)}  {reason}{text}")
        for warning in report.warnings:
            print(f"     warning: {warning}")
    if failed:
        print(f"{len(failed)} of {len(reports)} connections failed", file=sys.stderr)
    return code


def _refs(given: list[str], index: ConnectionsIndex) -> list[str]:
    if not given:
        return [
            f"@{family}.{alias}" for family in index.families() for alias in index.aliases[family]
        ]
    for ref in given:
        if ConnectionRef.parse(ref) is None:
            raise UsageError(f"{ref!r} is not a connection reference (write @family.alias)")
    return list(dict.fromkeys(given))


def report_to_json(report: Any) -> dict[str, Any]:
    result = report.result
    return {
        "ref": report.ref,
        "status": report.status,
        "reason": report.reason,
        "message": report.message,
        "server_version": result.server_version if result else None,
        "latency_ms": result.latency_ms if result else None,
        "connect_ms": result.connect_ms if result else None,
        "elapsed_ms": report.elapsed_ms,
        "note": result.note if result else None,
        "warnings": list(report.warnings),
    }
