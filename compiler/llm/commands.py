"""`osiris prompts build-context`, `osiris generate` and `osiris chat`: thin wiring over the session."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from osiris.compiler.cli import FORMAT_HELP, print_error, print_json
from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.contract.project import connections_file, project_dir

PROG = "osiris"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompts", help="the LLM context built from the component registry")
    p.set_defaults(func=lambda _args: _usage(p))
    psub = p.add_subparsers(metavar="COMMAND")
    b = psub.add_parser(
        "build-context",
        help="build (or read from .osiris/prompts/) the compact registry context and count it",
    )
    b.add_argument("--out", metavar="FILE", help="also write the context JSON to FILE")
    b.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)
    b.add_argument("--model", metavar="M", help="model for the exact token count (with a key)")
    b.set_defaults(func=cmd_build_context)

    g = sub.add_parser("generate", help="write a pipeline from a request in words (Anthropic API)")
    g.add_argument("request", metavar="REQUEST", help="what the pipeline should do")
    g.add_argument("-o", "--output", "--out", required=True, metavar="FILE", help="pipeline file")
    _shared_flags(g)
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("chat", help="edit one pipeline turn by turn with the model")
    c.add_argument("file", nargs="?", metavar="FILE", help="pipeline to start from and save to")
    _shared_flags(c)
    c.add_argument(
        "--plain", action="store_true", help="plain lines on stdin/stdout even on a terminal"
    )
    c.set_defaults(func=cmd_chat)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return ExitCode.INVALID


def _shared_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connections", metavar="FILE", help="osiris_connections.yaml (its aliases)")
    p.add_argument(
        "--discover",
        action="append",
        default=[],
        metavar="@FAMILY.ALIAS",
        help="send this connection's discovered schema (relevant tables, masked samples)",
    )
    p.add_argument(
        "--max-attempts",
        type=_positive,
        default=3,
        metavar="N",
        help="model calls in all, repairs included (default 3)",
    )
    p.add_argument(
        "--schema-budget",
        type=_positive,
        default=1000,
        metavar="TOKENS",
        help="tokens of discovered schema per request (default 1000)",
    )
    p.add_argument(
        "--model", metavar="M", help="model (default: $OSIRIS_LLM_MODEL, else the built-in default)"
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help=FORMAT_HELP)


def _open(args: argparse.Namespace, anchor: Path) -> Any:
    from osiris.compiler.llm.session import open_session

    root = project_dir(anchor)
    path = connections_file(getattr(args, "connections", None), os.environ, anchor)
    return open_session(
        project_root=root,
        connections_path=path,
        environ=os.environ,
        model=getattr(args, "model", None),
    )


# -- prompts build-context ----------------------------------------------------------------------


def cmd_build_context(args: argparse.Namespace) -> int:
    from osiris.compiler.llm import client as llm
    from osiris.compiler.llm.context import cache_file

    session = _open(args, Path.cwd())
    ctx = session.context
    exact = None
    if llm.has_key(os.environ):
        try:
            messages = [{"role": "user", "content": "."}]
            exact = llm.count_tokens(session.ensure_client(), session.params(messages), os.environ)
        except llm.LlmError as err:
            return print_error(
                PROG, str(err), args.format, code="llm", exit_code=err.exit_code, ok=False
            )
    if args.out:
        from osiris.compiler.fixes import write_atomically

        write_atomically(Path(args.out), ctx.text + "\n")
    cached = cache_file(session.project_root, ctx.fingerprint)
    if args.format == "json":
        print_json(
            {
                "ok": True,
                "fingerprint": ctx.fingerprint,
                "components": len(ctx.data["components"]),
                "chars": len(ctx.text),
                "tokens_estimate": ctx.tokens,
                "tokens_exact": exact,
                "cached": ctx.cached,
                "cache_file": str(cached),
                "context": ctx.data,
            }
        )
    else:
        if not args.out:
            print(ctx.text)
        count = (
            f"{exact} tokens (API count, with the tool and a one-token turn)"
            if exact
            else (f"~{ctx.tokens} tokens (estimate; set ANTHROPIC_API_KEY for the exact count)")
        )
        print(
            f"context: {len(ctx.data['components'])} components, {len(ctx.text)} chars, {count}; "
            f"{'read from' if ctx.cached else 'written to'} {cached}",
            file=sys.stderr,
        )
    return ExitCode.OK


# -- generate -----------------------------------------------------------------------------------


def draft_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.draft.oml")


def cmd_generate(args: argparse.Namespace) -> int:
    from osiris.compiler.fixes import write_atomically
    from osiris.compiler.llm.client import LlmError, has_key

    output = Path(args.output)
    if output.is_dir():
        return print_error(
            PROG,
            f"{args.output} is a directory",
            args.format,
            code="usage",
            exit_code=ExitCode.INVALID,
        )
    if not has_key(os.environ):  # before any other work: say what to set
        err = LlmError("no API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a gateway)")
        return print_error(
            PROG, str(err), args.format, code="llm", exit_code=err.exit_code, ok=False
        )
    session = _open(args, output.absolute().parent)
    text_mode = args.format != "json"

    def progress(attempt: Any) -> None:
        if text_mode:
            state = "valid" if attempt.ok else f"{attempt.errors} error(s)"
            rules = f", {len(attempt.fixed_by_rule)} fixed by rule" if attempt.fixed_by_rule else ""
            print(f"attempt {attempt.number}: {state}{rules}", file=sys.stderr)

    try:
        session.discover(args.discover, args.request, args.schema_budget)
        outcome = session.generate(
            args.request, file=args.output, max_attempts=args.max_attempts, on_attempt=progress
        )
    except LlmError as err:
        return print_error(
            PROG, str(err), args.format, code="llm", exit_code=err.exit_code, ok=False
        )
    best = outcome.best
    draft = draft_path(output)
    if outcome.ok:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(output, best.text)
        code = ExitCode.OK
    else:
        if best.text:
            draft.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(draft, best.text)
        code = ExitCode.INVALID
    tables = session.selection.to_dict() if session.selection else []
    if args.format == "json":
        print_json(
            {
                "ok": outcome.ok,
                "path": str(output) if outcome.ok else None,
                "draft_path": str(draft) if not outcome.ok and best.text else None,
                "model": session.model,
                "attempts": [a.to_dict() for a in outcome.attempts],
                "usage": {**outcome.usage.to_dict(), "model_calls": len(outcome.attempts)},
                "seconds": round(outcome.seconds, 3),
                "tables_sent": tables,
                "exit_code": int(code),
            }
        )
        return code
    _summary(session, outcome, output, draft, tables)
    return code


def _summary(session: Any, outcome: Any, output: Path, draft: Path, tables: list[Any]) -> None:
    from osiris.oml.render import render_text

    best = outcome.best
    by_rule = sum(len(a.fixed_by_rule) for a in outcome.attempts)
    by_model = sum(len(a.fixed_by_model) for a in outcome.attempts)
    u = outcome.usage
    if tables:
        names = ", ".join(f"{t['source']}:{t['table']}" for t in tables)
        print(f"tables sent: {names}", file=sys.stderr)
    if outcome.ok:
        from osiris.compiler.llm.pipeline import parse_pipeline

        steps = len((parse_pipeline(best.text) or {}).get("steps") or [])
        print(f"wrote {output}: {steps} steps")
    else:
        if best.text:
            result = session.check(str(draft))(best.text)
            sys.stdout.write(render_text(result.diagnostics, {result.file: result.source}))
            print(
                f"gave up after {len(outcome.attempts)} model calls; nothing written at "
                f"{output}; the best attempt ({best.errors} errors) is in {draft}"
            )
        else:
            print(
                f"gave up after {len(outcome.attempts)} model calls: {best.note} "
                f"Nothing written at {output}."
            )
    print(
        f"fixed by rule: {by_rule}, by model: {by_model}; model calls: {len(outcome.attempts)}; "
        f"tokens in {u.input} out {u.output} cached {u.cache_read}; {outcome.seconds:.1f} s",
        file=sys.stderr,
    )


def cmd_chat(args: argparse.Namespace) -> int:
    from osiris.compiler.llm.chat import run_chat

    return run_chat(args)
