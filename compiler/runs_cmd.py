"""`osiris runs list|show|report|gc|diff` over a project's run records, and `osiris graph`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import run_project_dir
from osiris.runtime.records.store import (
    RunNotFound,
    delete_runs,
    find_run,
    list_runs,
    plan_gc,
    runs_dir,
)
from osiris.runtime.records.summary import RunSummary, StepSummary, diff_runs, read_run
from osiris.runtime.records.svg import human

FORMAT_HELP = "output format: text for people, json for programs (one JSON object on stdout)"
STATUSES = ("ok", "failed", "cancelled", "running", "interrupted")
GRAPH_FORMATS = {".svg": "svg", ".html": "html", ".htm": "html", ".dot": "dot", ".gv": "dot"}
GRAPH_FORMATS |= {".mmd": "mermaid", ".mermaid": "mermaid"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `runs …` and `graph` on the osiris command's subparsers."""
    runs = sub.add_parser("runs", help="list, show, report, compare and clean up runs")
    runs.set_defaults(func=lambda args: _usage(runs))
    commands = runs.add_subparsers(metavar="COMMAND")

    p = commands.add_parser("list", help="the project's runs, newest first")
    p.add_argument("--limit", type=int, metavar="N", help="at most N runs")
    p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    _common(p, cmd_list)

    p = commands.add_parser("show", help="one run: its steps, failure, params, fingerprint")
    p.add_argument("run", metavar="RUN_ID|last", help="a run id (or a unique prefix), or last")
    _common(p, cmd_show)

    p = commands.add_parser("report", help="write a run's self-contained HTML report")
    p.add_argument("run", metavar="RUN_ID|last", help="a run id (or a unique prefix), or last")
    p.add_argument("-o", "--output", metavar="FILE", help="default: report.html in the run folder")
    p.add_argument("--open", action="store_true", help="open the report in a browser")
    _common(p, cmd_report)

    p = commands.add_parser("diff", help="two runs side by side: rows and time per step")
    p.add_argument("a", metavar="RUN_A", help="a run id, a unique prefix, or last")
    p.add_argument("b", metavar="RUN_B", help="a run id, a unique prefix, or last")
    _common(p, cmd_diff)

    p = commands.add_parser("gc", help="delete old run folders (never a running run)")
    p.add_argument("--keep", type=int, metavar="N", help="keep the newest N runs")
    p.add_argument(
        "--older-than", type=float, metavar="DAYS", help="delete runs started over DAYS days ago"
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    _common(p, cmd_gc)

    g = sub.add_parser("graph", help="draw a pipeline's DAG (SVG, HTML, DOT or Mermaid)")
    g.add_argument("file", metavar="PIPELINE.oml", help="the pipeline to draw")
    g.add_argument("-o", "--output", metavar="FILE", help="write FILE (.svg .html .dot .mmd)")
    g.add_argument(
        "--emit",
        choices=("svg", "html", "dot", "mermaid"),
        help="the picture's format (default: from -o's suffix, else dot on stdout)",
    )
    from osiris.compiler.cli import add_compile_flags

    add_compile_flags(g)
    g.set_defaults(func=cmd_graph)


def _common(p: argparse.ArgumentParser, func: Any) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    p.add_argument("--project-dir", metavar="DIR", help="the project whose runs/ to read")
    p.set_defaults(func=func)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return ExitCode.INVALID


def _runs(args: argparse.Namespace) -> Path:
    if args.project_dir:
        return runs_dir(Path(args.project_dir).absolute())
    cwd = Path.cwd()
    return runs_dir(run_project_dir(cwd, os.environ, None, cwd))


def _find(args: argparse.Namespace, ref: str) -> RunSummary | None:
    from osiris.compiler.cli import print_error

    try:
        return read_run(find_run(_runs(args), ref))
    except RunNotFound as err:
        print_error(
            "osiris runs", str(err), args.format, code="unknown-run", exit_code=ExitCode.INVALID
        )
        return None


def _json(data: Any) -> None:
    from osiris.compiler.cli import print_json

    print_json(data)


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)]) + "\n"


def _seconds(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 1000:.2f}s"


def cmd_list(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        from osiris.compiler.cli import UsageError

        raise UsageError("--limit must be at least 1")
    runs = list_runs(_runs(args), limit=args.limit, status=args.status)
    if args.format == "json":
        _json({"runs_dir": str(_runs(args)), "runs": [r.to_dict(steps=False) for r in runs]})
        return ExitCode.OK
    if not runs:
        print(f"no runs in {_runs(args)}")
        return ExitCode.OK
    rows = [
        [
            r.run_id,
            r.pipeline or "?",
            r.status,
            (r.started_at or "")[:19].replace("T", " "),
            _seconds(r.duration_ms),
            f"{r.rows_moved:,}",
            r.failed_step or "",
        ]
        for r in runs
    ]
    headers = ["run id", "pipeline", "status", "started (UTC)", "time", "rows", "failed step"]
    sys.stdout.write(_table(headers, rows, {4, 5}))
    return ExitCode.OK


def _step_row(s: StepSummary) -> list[str]:
    return [
        s.id,
        s.driver,
        s.status,
        f"{s.rows_in:,}",
        f"{s.rows_out:,}",
        f"{s.bytes:,}" if s.bytes else "",
        _seconds(s.duration_ms) if s.start is not None else "",
        human(s.rows_per_s) if s.status == "ok" else "",
    ]


def cmd_show(args: argparse.Namespace) -> int:
    summary = _find(args, args.run)
    if summary is None:
        return ExitCode.INVALID
    if args.format == "json":
        _json(summary.to_dict())
        return ExitCode.OK
    out = [
        f"run {summary.run_id}: {summary.pipeline or '?'} — {summary.status}"
        + (f" (exit {summary.exit_code})" if summary.exit_code is not None else ""),
        f"started {summary.started_at or '?'}, took {_seconds(summary.duration_ms) or '?'}, "
        f"{summary.rows_moved:,} rows written, up to {summary.max_parallel_seen} steps at once",
        f"manifest {summary.manifest_fingerprint or '?'}",
        "params: " + (", ".join(f"{k}={v!r}" for k, v in sorted(summary.params.items())) or "none"),
        f"records: {summary.folder}",
    ]
    if summary.error:
        where = f" at step {summary.failed_step}" if summary.failed_step else ""
        out.append(f"error{where}: {summary.error}")
    failed = next((s for s in summary.steps if s.id == summary.failed_step), None)
    detail = summary.error_detail or (failed.detail if failed else None)
    if detail:
        out.append(f"  detail: {detail}")
    if summary.note:
        out.append(f"note: {summary.note}")
    for warning in summary.warnings:
        out.append(f"warning: {warning}")
    sys.stdout.write("\n".join(out) + "\n\n")
    headers = ["step", "driver", "status", "rows in", "rows out", "bytes", "time", "rows/s"]
    sys.stdout.write(_table(headers, [_step_row(s) for s in summary.steps], {3, 4, 5, 6, 7}))
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from osiris.runtime.records.report import render_report

    summary = _find(args, args.run)
    if summary is None:
        return ExitCode.INVALID
    target = Path(args.output) if args.output else summary.folder / "report.html"
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(render_report(summary), encoding="utf-8")
        tmp.replace(target)
    except OSError as err:
        from osiris.compiler.cli import print_error

        message = f"cannot write {target}: {err.strerror or err}"
        return print_error(
            "osiris runs",
            message,
            args.format,
            code="cannot-write",
            exit_code=ExitCode.CONFIGURATION,
        )
    if args.format == "json":
        _json({"run_id": summary.run_id, "status": summary.status, "report": str(target)})
    else:
        print(f"report of run {summary.run_id} ({summary.status}): {target}")
    if args.open:
        import webbrowser

        webbrowser.open(target.absolute().as_uri())
    return ExitCode.OK


def cmd_diff(args: argparse.Namespace) -> int:
    a = _find(args, args.a)
    b = _find(args, args.b) if a is not None else None
    if a is None or b is None:
        return ExitCode.INVALID
    changes = diff_runs(a, b)
    if args.format == "json":
        _json(
            {
                "a": a.to_dict(steps=False),
                "b": b.to_dict(steps=False),
                "steps": [c.to_dict() for c in changes],
            }
        )
        return ExitCode.OK
    if a.pipeline != b.pipeline:
        print(f"note: different pipelines ({a.pipeline} and {b.pipeline})")
    print(f"A {a.run_id} ({a.status}, {_seconds(a.duration_ms)})")
    print(f"B {b.run_id} ({b.status}, {_seconds(b.duration_ms)})\n")

    def num(value: int | None) -> str:
        return "—" if value is None else f"{value:,}"

    def ms(value: int | None) -> str:
        return "—" if value is None else _seconds(value)

    def change(x: int | None, y: int | None) -> str:
        if x is None or y is None or x == 0:
            return ""
        return f"{(y - x) / x * 100:+.0f}%"

    rows = [
        [
            c.id,
            f"{c.status[0] or '—'} → {c.status[1] or '—'}",
            num(c.rows_out[0]),
            num(c.rows_out[1]),
            change(*c.rows_out),
            ms(c.duration_ms[0]),
            ms(c.duration_ms[1]),
            change(*c.duration_ms),
        ]
        for c in changes
    ]
    headers = ["step", "status", "rows A", "rows B", "Δ rows", "time A", "time B", "Δ time"]
    sys.stdout.write(_table(headers, rows, {2, 3, 4, 5, 6, 7}))
    return ExitCode.OK


def cmd_gc(args: argparse.Namespace) -> int:
    from osiris.compiler.cli import UsageError

    if args.keep is None and args.older_than is None:
        raise UsageError("say which runs to delete: --keep N and/or --older-than DAYS")
    if (args.keep is not None and args.keep < 0) or (
        args.older_than is not None and args.older_than < 0
    ):
        raise UsageError("--keep and --older-than must not be negative")
    plan = plan_gc(_runs(args), keep=args.keep, older_than_days=args.older_than)
    deleted = plan if args.dry_run else None
    done = [e for e in plan if e.delete] if args.dry_run else delete_runs(plan)
    freed = sum(e.bytes for e in done)
    kept = [e for e in plan if e not in done]
    if args.format == "json":
        _json(
            {
                "dry_run": bool(args.dry_run),
                "deleted": [e.to_dict() for e in done],
                "kept": [e.to_dict() for e in kept],
                "freed_bytes": freed,
            }
        )
        return ExitCode.OK
    verb = "would delete" if deleted is not None else "deleted"
    for entry in done:
        print(f"{verb} {entry.run_id} ({entry.bytes:,} bytes; {entry.reason})")
    for entry in kept:
        if entry.reason in ("running",) or "leftovers" in entry.reason:
            print(f"kept {entry.run_id}: {entry.reason}")
    freed_text = "would free" if deleted is not None else "freed"
    print(f"{verb} {len(done)} run(s), kept {len(kept)}; {freed_text} {freed:,} bytes")
    return ExitCode.OK


def cmd_graph(args: argparse.Namespace) -> int:
    from osiris.compiler.cli import UsageError, _compile, _print_diagnostics
    from osiris.compiler.graph import pipeline_graph, to_dot, to_mermaid
    from osiris.runtime.records.report import graph_page
    from osiris.runtime.records.svg import dag_svg

    chosen = args.emit
    if chosen is None and args.output:
        chosen = GRAPH_FORMATS.get(Path(args.output).suffix.lower())
        if chosen is None:
            raise UsageError(
                f"cannot tell the format from {args.output!r}: name a .svg, .html, .dot or "
                ".mmd file, or pass --emit"
            )
    chosen = chosen or "dot"
    code, result, diagnostics = _compile(args)
    if diagnostics or code:
        _print_diagnostics(
            diagnostics, {result.checked.file: result.checked.source}, args.format, sys.stderr
        )
    if code != ExitCode.OK:
        return code
    ir = result.ir
    if chosen == "dot":
        text = to_dot(ir)
    elif chosen == "mermaid":
        text = to_mermaid(ir)
    elif chosen == "svg":
        text = dag_svg(pipeline_graph(ir)) + "\n"
    else:
        subtitle = f"{len(ir.order)} steps · {args.file}"
        text = graph_page(pipeline_graph(ir), ir.name, subtitle)
    if not args.output:
        sys.stdout.write(text)
        return ExitCode.OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {args.output}: {err.strerror or err}") from None
    if args.format == "json":
        _json({"pipeline": ir.name, "format": chosen, "output": args.output})
    else:
        print(f"{chosen} graph of {ir.name} ({len(ir.order)} steps) -> {args.output}")
    return ExitCode.OK
