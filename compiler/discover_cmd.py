"""`osiris discover @family.alias | --path DIR`: tables, columns, keys, estimates and samples, cached."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from osiris.runtime.contract.connections import ConnectionRef
from osiris.runtime.contract.exits import ExitCode


def add_parser(sub: argparse._SubParsersAction) -> None:
    from osiris.compiler.cli import FORMAT_HELP, add_validation_flag

    p = sub.add_parser(
        "discover",
        help="list a connection's tables and columns (cached, checked against the live catalog)",
        description="Discover the tables, columns (database and Arrow types), keys and row "
        "estimates of a connection or a folder of CSV/Parquet files. Results are cached under "
        ".osiris/cache/discovery/ and reused only while the live catalog digest matches "
        "(docs/discovery.md).",
        epilog="exit codes: 0 ok, 2 bad arguments, 4 a failed query, 5 connection or "
        "configuration problem",
    )
    p.add_argument("ref", nargs="?", metavar="@FAMILY.ALIAS", help="the connection to discover")
    p.add_argument("--path", type=Path, metavar="DIR", help="a folder of CSV/Parquet files instead")
    p.add_argument("--tables", metavar="T1,T2", help="only these tables (comma-separated)")
    p.add_argument("--schema", metavar="S", help="database schema (default: the connection's)")
    p.add_argument(
        "--samples", type=_count, default=0, metavar="N", help="up to N sample rows per table"
    )
    p.add_argument(
        "--show-samples", action="store_true", help="show sample values unmasked (default: masked)"
    )
    p.add_argument("--refresh", action="store_true", help="ignore the cache and read anew")
    p.add_argument(
        "--max-age",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="use a cached entry this old at most when the server is unreachable (default 3600)",
    )
    p.add_argument(
        "--connections", type=Path, help="osiris_connections.yaml (default: in the project dir)"
    )
    add_validation_flag(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    p.set_defaults(func=cmd_discover)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds ≥ 0")
    return value


def cmd_discover(args: argparse.Namespace) -> int:
    from osiris.compiler.cli import UsageError, print_error, validation_of
    from osiris.compiler.discovery.service import DiscoveryError, discover
    from osiris.runtime.contract.project import connections_file, run_project_dir

    if args.ref is None and args.path is None:
        raise UsageError("name a connection (@family.alias) or a folder (--path DIR)")
    if args.ref is not None and args.path is not None:
        raise UsageError("name a connection (@family.alias) or a folder (--path DIR), not both")
    if args.ref is not None and ConnectionRef.parse(args.ref) is None:
        raise UsageError(f"{args.ref!r} is not a connection reference like @mysql.main")
    tables = [t.strip() for t in (args.tables or "").split(",") if t.strip()] or None
    environ = dict(os.environ)
    here = Path.cwd()
    root = run_project_dir(here, environ, args.connections, here)
    try:
        result = discover(
            args.ref,
            project_root=root,
            connections_path=connections_file(args.connections, environ, root),
            environ=environ,
            tables=tables,
            schema=args.schema,
            samples=args.samples,
            refresh=args.refresh,
            max_age=args.max_age,
            validation=validation_of(args),
            folder=args.path.absolute() if args.path else None,  # as typed: from the cwd
        )
    except DiscoveryError as err:
        extra = {"cache": err.cache_status.to_json()} if err.cache_status else {}
        if err.exit_code == ExitCode.CONFIGURATION:
            return print_error(
                "osiris discover", str(err), args.format, code="configuration",
                exit_code=err.exit_code, **extra,
            )  # fmt: skip
        return print_error(
            "osiris discover", str(err), args.format, code="discovery", exit_code=err.exit_code,
            **extra,
        )  # fmt: skip
    if args.format == "json":
        from osiris.compiler.cli import print_json
        from osiris.compiler.discovery.service import result_fields
        from osiris.oml.render import envelope

        print_json(envelope(**result_fields(result, show_samples=args.show_samples)))
    else:
        from osiris.compiler.discovery.service import shown_tables

        _print_text(result, shown_tables(result, show_samples=args.show_samples))
    return ExitCode.OK


def _print_text(result: Any, tables: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    for warning in result.warnings:
        print(f"osiris discover: warning: {warning}", file=sys.stderr)
    cache = result.cache_status
    said = f"cache {cache.status}" + (f" ({cache.reason})" if cache.reason else "")
    said += ", verified" if cache.verified else ", unverified"
    if cache.age_s:
        said += f", age {cache.age_s:.0f} s"
    console.print(
        escape(f"{result.connection}: {len(tables)} table(s); {said}; key {cache.key[:19]}…")
    )
    for t in tables:
        name = f"{t.schema}.{t.name}" if t.schema else t.name
        estimate = "" if t.row_estimate is None else f", ~{t.row_estimate} rows"
        grid = Table(title=escape(f"{name} ({t.kind}{estimate})"), title_justify="left")
        for header in ("column", "type", "arrow", "null", "default", "pk"):
            grid.add_column(header)
        for c in t.columns:
            grid.add_row(
                escape(c.name),
                escape(c.db_type),
                escape(c.arrow_type),
                "yes" if c.nullable else "no",
                escape(c.default or ""),
                str(c.primary_key_position or ""),
            )
        console.print(grid)
        for label, keys in (("unique", t.unique_keys),):
            for key in keys:
                console.print(escape(f"  {label}: ({', '.join(key)})"))
        for fk in t.foreign_keys:
            target = f"{fk.ref_schema}.{fk.ref_table}" if fk.ref_schema else fk.ref_table
            console.print(
                escape(
                    f"  foreign key: ({', '.join(fk.columns)}) -> "
                    f"{target} ({', '.join(fk.ref_columns)})"
                )
            )
        if t.samples:
            rows = Table(
                title=escape(f"{name}: {len(t.samples)} sample row(s)"), title_justify="left"
            )
            names = list(t.samples[0])
            for column in names:
                rows.add_column(escape(column))
            for sample in t.samples:
                rows.add_row(
                    *(escape("" if sample.get(n) is None else str(sample.get(n))) for n in names)
                )
            console.print(rows)
