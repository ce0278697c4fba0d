"""`osiris components`: list the component specs, or print one of them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from osiris.compiler.modes import MODE_NAMES, spec_mode_of
from osiris.runtime.contract.exits import ExitCode

if TYPE_CHECKING:
    from osiris.compiler.registry import ComponentSpec, Registry


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `components list|spec` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "components",
        help="list component specs or show one",
        description="Component specs: what each component does, its modes and its config.",
    )
    parser.add_argument(
        "--specs-root",
        type=Path,
        metavar="DIR",
        help="load specs from DIR (a copy of the specs package) instead of the installed ones",
    )
    parser.set_defaults(func=cmd_list)  # `osiris components` alone lists them
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("list", help="list components, optionally only those with a mode")
    p.add_argument(
        "--mode",
        choices=MODE_NAMES,
        help="only components with this mode (OML read/write/transform or spec extract/discover)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="output format: a table (text) or a JSON list",
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("spec", help="print one component's spec")
    p.add_argument("name", metavar="NAME", help="component name, e.g. mysql.extractor")
    p.add_argument(
        "--format",
        choices=("yaml", "json"),
        default="yaml",
        help="the spec as its YAML source or as JSON (errors too are JSON then)",
    )
    p.set_defaults(func=cmd_spec)


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if registry is None:
        return ExitCode.INVALID
    wanted = spec_mode_of(getattr(args, "mode", None) or "")
    specs = [s for s in registry if wanted is None or wanted in s.modes]
    if getattr(args, "format", "text") == "json":
        _write(sys.stdout, json.dumps([_summary(s) for s in specs], indent=2) + "\n")
    else:
        _write(sys.stdout, _table(specs))
    return _report_problems(registry)


def cmd_spec(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if registry is None:
        return ExitCode.INVALID
    name: str = args.name
    spec = registry.get(name)
    if spec is None:
        broken = [p for p in registry.problems if p.file.split("/")[1:2] == [name]]
        if broken:
            print(f"error: the spec of component '{name}' failed to load:", file=sys.stderr)
            for problem in broken:
                print(f"  {problem}", file=sys.stderr)
            return ExitCode.INTERNAL
        matches = registry.suggest(name)
        hint = ""
        if len(matches) == 1:
            hint = f"; did you mean {matches[0]}?"
        elif matches:
            hint = f"; did you mean one of: {', '.join(matches)}?"
        if args.format == "json":
            from osiris.compiler.cli import print_error

            return print_error(
                "osiris",
                f"unknown component '{name}'{hint}",
                "json",
                code="unknown-component",
                exit_code=ExitCode.INVALID,
                component=name,
                did_you_mean=list(matches),
                hint="run 'osiris components list' to see every component",
            )
        print(f"osiris: error: unknown component '{name}'{hint}", file=sys.stderr)
        print("run 'osiris components list' to see every component", file=sys.stderr)
        return ExitCode.INVALID
    if args.format == "json":
        _write(sys.stdout, json.dumps(spec.document, indent=2, ensure_ascii=False) + "\n")
    else:
        text = registry.source(spec.name)
        _write(sys.stdout, text if text.endswith("\n") else text + "\n")
    return ExitCode.OK


# -- helpers ----------------------------------------------------------------------------------


def _registry(args: argparse.Namespace) -> Registry | None:
    from osiris.compiler.registry import load_registry

    root: Path | None = getattr(args, "specs_root", None)
    if root is not None and not root.is_dir():
        print(f"error: --specs-root {root}: not a directory", file=sys.stderr)
        return None
    return load_registry(root)


def _summary(spec: ComponentSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "version": spec.version,
        "title": spec.title,
        "role": spec.role,
        "modes": list(spec.modes),
        "oml_modes": sorted(spec.oml_modes),
        "connection_family": spec.connection_family,
        "capabilities": dict(spec.capabilities),
        "description": spec.description,
    }


def _table(specs: list[ComponentSpec]) -> str:
    rows = [("NAME", "MODES", "TITLE")]
    rows += [(s.name, ", ".join(s.modes), s.title) for s in specs]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
    if not specs:
        lines.append("(no components match)")
    return "\n".join(lines) + "\n"


def _report_problems(registry: Registry) -> int:
    if not registry.problems:
        return ExitCode.OK
    print(f"error: {len(registry.problems)} spec problem(s):", file=sys.stderr)
    for problem in registry.problems:
        print(f"  {problem}", file=sys.stderr)
    return ExitCode.INTERNAL


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:  # `osiris components list | head`
        pass
