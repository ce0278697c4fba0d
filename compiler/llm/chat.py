"""`osiris chat`: one pipeline edited turn by turn; Rich on a terminal, plain lines otherwise."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from osiris.runtime.contract.exits import ExitCode

HELP = (
    "Type what the pipeline should do (or change). Commands: /show, /check, /save [FILE], "
    "/compile DIR, /run, /load FILE, /undo, /help, /quit"
)


@dataclass(slots=True)
class ChatState:
    """The pipeline being edited and where it is saved."""

    text: str | None = None
    path: Path | None = None
    history: list[str] = field(default_factory=list)  # earlier texts, for /undo


class Ui:
    """Plain lines: stdout for the pipeline and answers, prompts only on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def pipeline(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def diagnostics(self, result: Any) -> None:
        from osiris.oml.render import render_text

        self.out.write(render_text(result.diagnostics, {result.file: result.source}))
        self.out.flush()

    def ask(self) -> str | None:
        line = sys.stdin.readline()
        return None if line == "" else line.rstrip("\n")


class RichUi(Ui):
    """The same conversation with Rich: a prompt, the pipeline highlighted, diagnostics in colour."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console

        super().__init__(out)
        self.console = Console(file=out, highlight=False)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def pipeline(self, text: str) -> None:
        from rich.panel import Panel
        from rich.syntax import Syntax

        self.console.print(Panel(Syntax(text, "yaml", line_numbers=True), title="pipeline"))

    def diagnostics(self, result: Any) -> None:
        from rich.text import Text

        from osiris.oml.render import render_text

        rendered = render_text(result.diagnostics, {result.file: result.source}, color=True)
        self.console.print(Text.from_ansi(rendered))

    def ask(self) -> str | None:
        from rich.prompt import Prompt

        try:
            return Prompt.ask("[bold cyan]osiris[/]", console=self.console)
        except EOFError:
            return None


def run_chat(args: argparse.Namespace) -> int:
    from osiris.compiler.llm.client import LlmError, has_key
    from osiris.compiler.llm.session import open_session
    from osiris.runtime.contract.project import connections_file, project_dir

    tty = sys.stdin.isatty() and sys.stdout.isatty() and not args.plain
    ui: Ui = RichUi(sys.stdout) if tty else Ui(sys.stdout)
    state = ChatState(path=Path(args.file) if args.file else None)
    anchor = state.path.absolute().parent if state.path else Path.cwd()
    session = open_session(
        project_root=project_dir(anchor),
        connections_path=connections_file(args.connections, os.environ, anchor),
        environ=os.environ,
        model=args.model,
    )
    if not has_key(os.environ):
        print(
            "osiris: error: no API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a "
            "gateway)",
            file=sys.stderr,
        )
        return ExitCode.CONFIGURATION
    if state.path is not None and state.path.is_file():
        _load(ui, session, state, state.path)
    if tty:
        ui.say(HELP)
    while True:
        line = ui.ask()
        if line is None:
            return ExitCode.OK
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                if _command(ui, session, state, line, args) == "quit":
                    return ExitCode.OK
            else:
                _turn(ui, session, state, line, args)
        except LlmError as err:
            ui.say(f"error: {err}")
            if err.exit_code == ExitCode.CONFIGURATION and not tty:
                return err.exit_code


def _check(session: Any, state: ChatState) -> Any:
    return session.check(str(state.path or "pipeline.oml"))(state.text or "")


def _load(ui: Ui, session: Any, state: ChatState, path: Path) -> None:
    """Read a pipeline; its safe fixes are applied at once (no model call)."""
    from osiris.compiler.fixes import fix_text

    text = path.read_text(encoding="utf-8")
    outcome = fix_text(text, session.check(str(path)))
    state.text = outcome.text
    for f in outcome.applied:
        ui.say(f"fixed {f.code} on line {f.line}: {f.title}")
    ui.pipeline(state.text)
    ui.diagnostics(outcome.result)


def _turn(ui: Ui, session: Any, state: ChatState, line: str, args: argparse.Namespace) -> None:
    session.discover(args.discover, line, args.schema_budget)  # ranked for each turn
    current = _masked(state.text, _check(session, state)) if state.text else None
    outcome = session.generate(
        line,
        file=str(state.path or "pipeline.oml"),
        max_attempts=args.max_attempts,
        current=current,
    )
    best = outcome.best
    if not best.text:
        ui.say(f"no pipeline from the model: {best.note}")
        return
    if state.text is not None:
        state.history.append(state.text)
    state.text = best.text
    ui.pipeline(state.text)
    result = _check(session, state)
    ui.diagnostics(result)
    u = outcome.usage
    verdict = "valid" if outcome.ok else f"{best.errors} error(s) left"
    ui.say(
        f"{verdict}; model calls {len(outcome.attempts)}, fixed by rule "
        f"{sum(len(a.fixed_by_rule) for a in outcome.attempts)}, tokens in {u.input} out "
        f"{u.output} cached {u.cache_read}, {outcome.seconds:.1f} s"
    )


def _masked(text: str, result: Any) -> str:
    """The pipeline with every span a diagnostic masks (an inline secret) replaced by ***."""
    spans = sorted(
        {(s.start.byte, s.end.byte) for d in result.diagnostics for s in d.masked}, reverse=True
    )
    data = text.encode("utf-8")
    for start, end in spans:
        data = data[:start] + b"***" + data[end:]
    return data.decode("utf-8", "replace")


def _command(
    ui: Ui, session: Any, state: ChatState, line: str, args: argparse.Namespace
) -> str | None:
    from osiris.compiler.cli import osiris_main
    from osiris.compiler.fixes import write_atomically

    name, _, rest = line.partition(" ")
    rest = rest.strip()
    if name in ("/quit", "/exit", "/q"):
        return "quit"
    if name == "/help":
        ui.say(HELP)
    elif name == "/load":
        if not rest:
            ui.say("usage: /load FILE")
        elif not Path(rest).is_file():
            ui.say(f"no such file: {rest}")
        else:
            state.path = Path(rest)
            _load(ui, session, state, state.path)
    elif state.text is None:
        ui.say("no pipeline yet: describe one first")
    elif name == "/show":
        ui.pipeline(state.text)
    elif name == "/check":
        result = _check(session, state)
        ui.diagnostics(result)
        ui.say("valid" if result.ok else "not valid")
    elif name == "/undo":
        if state.history:
            state.text = state.history.pop()
            ui.pipeline(state.text)
        else:
            ui.say("nothing to undo")
    elif name == "/save":
        target = Path(rest) if rest else state.path
        if target is None:
            ui.say("usage: /save FILE")
        else:
            write_atomically(target, state.text)
            state.path = target
            ui.say(f"saved {target}")
    elif name in ("/compile", "/run"):
        if state.path is None:
            ui.say(f"save the pipeline first (/save FILE), then {name}")
            return None
        write_atomically(state.path, state.text)
        connections = ["--connections", args.connections] if args.connections else []
        if name == "/compile":
            argv = ["compile", str(state.path), "-o", rest or "build", *connections]
        else:
            argv = ["run", str(state.path), *connections]
        code = osiris_main(argv)
        sys.stdout.flush()
        ui.say(f"{name[1:]} exited {code}")
    else:
        ui.say(f"unknown command {name}; {HELP}")
    return None
