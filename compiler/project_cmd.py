"""`osiris init` scaffolds a working project; `osiris demo` scaffolds one and runs its pipeline."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from importlib import resources
from pathlib import Path

from osiris.compiler.cli import FORMAT_HELP
from osiris.runtime.contract.exits import ExitCode

# template file -> path in the new project
TEMPLATE_FILES = {
    "pipeline.oml": "pipeline.oml",
    "osiris_connections.yaml": "osiris_connections.yaml",
    "env.example": ".env.example",
    "gitignore": ".gitignore",
}
SAMPLE_DATA = ("orders.csv", "customers.csv")


def scaffold(target: Path) -> tuple[list[str], list[str]]:
    """Write the project files that are missing; returns (created, kept) relative paths."""
    template = resources.files("osiris.compiler").joinpath("templates", "project")
    files = {dest: template.joinpath(src).read_bytes() for src, dest in TEMPLATE_FILES.items()}
    files.update(
        {f"data/{name}": template.joinpath("data", name).read_bytes() for name in SAMPLE_DATA}
    )
    created, kept = [], []
    for rel, content in files.items():
        path = target / rel
        if path.exists():
            kept.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        created.append(rel)
    return created, kept


def cmd_init(args: argparse.Namespace) -> int:
    from osiris.compiler.cli import print_error, print_json

    target = Path(args.dir)
    if target.exists() and not target.is_dir():
        return print_error(
            "osiris init",
            f"{args.dir} exists and is not a directory",
            args.format,
            code="usage",
            exit_code=ExitCode.INVALID,
        )
    created, kept = scaffold(target)
    where = "" if target.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(args.dir)} && "
    next_command = f"{where}osiris run pipeline.oml"
    if args.format == "json":
        from osiris.oml.render import envelope

        print_json(
            envelope(
                exit_code=int(ExitCode.OK),
                dir=str(target),
                created=[str(target / rel) for rel in created],
                kept=[str(target / rel) for rel in kept],
                next=next_command,
            )
        )
        return ExitCode.OK
    for rel in created:
        print(f"  created {target / rel}")
    for rel in kept:
        print(f"  kept    {target / rel} (already exists)")
    print(f"\nNext: {next_command}")
    return ExitCode.OK


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="scaffold a project: sample data, a pipeline, connections")
    p.add_argument(
        "dir", nargs="?", default=".", metavar="DIR", help="the project directory (default: .)"
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    p.set_defaults(func=cmd_init)


def cmd_run(args: argparse.Namespace) -> int:
    """Compile a pipeline into a scratch directory and run the manifest."""
    import secrets

    from osiris.compiler.cli import compile_for_run
    from osiris.runtime.cli import closable_stdout, execute
    from osiris.runtime.contract.project import run_project_dir
    from osiris.runtime.contract.scratch import ScratchDir

    # relative paths resolve against the pipeline's project, wherever the command runs
    pipeline = Path(args.file)
    args.project_dir = args.project_dir or run_project_dir(
        pipeline, os.environ, args.connections, pipeline.absolute().parent
    )
    # locked like a run's own scratch directory, so a killed `osiris run` leaves nothing the
    # next run does not sweep
    with ScratchDir(f"run-{secrets.token_hex(6)}") as scratch, closable_stdout() as out:
        code = compile_for_run(args, scratch.path / "build")
        if code != ExitCode.OK:
            return code
        return execute(args, scratch.path / "build", out, sys.stderr, prog="osiris")


def cmd_demo(args: argparse.Namespace) -> int:
    import os
    import shutil

    target = Path(args.dir)
    created, _ = scaffold(target)
    if args.format == "json":  # the run summary, as `oml-run --format json` prints it
        print(f"demo project: {target.resolve()} ({len(created)} files created)", file=sys.stderr)
    else:
        print(f"demo project: {target.resolve()} ({len(created)} files created)")
    run_args = argparse.Namespace(
        file=str(target / "pipeline.oml"),
        param=[],
        profile=None,
        connections=target / "osiris_connections.yaml",
        secrets_file=None,
        project_dir=target,
        run_dir=None,
        engine="local",
        format=args.format,
        allow_modified=False,
        no_keep_intermediate=False,
        max_parallel=None,
        validation=None,
        materialize=None,
        atomic=False,
    )
    code = cmd_run(run_args)
    if code == 0 and args.format != "json":
        _preview(target / "output" / "revenue.parquet")
        outputs = sorted(p for p in (target / "output").iterdir() if p.is_file())
        print("outputs:\n" + "\n".join(f"  {os.path.relpath(p)}" for p in outputs))
        osiris = "osiris" if shutil.which("osiris") else str(Path(sys.argv[0]).resolve())
        into = f"cd {shlex.quote(os.path.relpath(target))} && {shlex.quote(osiris)}"
        print(f"next: {into} run pipeline.oml --param since=2024-03-01")
        print(f"report: {into} runs report last --open  (the run as one HTML page)")
    return code


def _preview(path: Path) -> None:
    import duckdb
    from rich.console import Console
    from rich.table import Table

    with duckdb.connect() as con:
        rel = con.execute(
            "SELECT * FROM read_parquet(?) ORDER BY revenue DESC LIMIT 5", [str(path)]
        )
        columns = [d[0] for d in rel.description]
        rows = rel.fetchall()
    table = Table(title="top 5 country/month groups by revenue (output/revenue.parquet)")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console().print(table)


def add_run_parsers(sub: argparse._SubParsersAction) -> None:
    from osiris.compiler.cli import add_param_flags
    from osiris.runtime.cli import add_run_arguments

    p = sub.add_parser("run", help="compile a pipeline and run it")
    p.add_argument("file", metavar="PIPELINE.oml", help="the OML pipeline to compile and run")
    add_param_flags(p)
    add_run_arguments(p)
    p.set_defaults(func=cmd_run)
    d = sub.add_parser("demo", help="scaffold the demo project and run its pipeline")
    d.add_argument("--dir", default="osiris-demo", help="where to put the demo project")
    d.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    d.set_defaults(func=cmd_demo)
