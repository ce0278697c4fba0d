"""`osiris chat` through the real SDK and the Messages API stand-in: scripted on plain stdin/stdout,
and interactive on a terminal (Rich) driven through tmux."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_standin import StandIn, tool_answer
from test_llm import CANARY, CONNECTIONS, GOOD, KEY, extract, pipeline, writer

PARQUET = {
    "id": "write-parquet",
    "component": "filesystem.parquet_writer",
    "mode": "write",
    "needs": ["extract-orders"],
    "config": {"path": "out/orders.parquet"},
}
STARTING = """oml_version: "0.1.0"
name: orders-to-supabase
steps:
  - id: extract-orders
    component: mysql.extractor
    mode: read
    config:
      connection: @mysql.shop
      table: orders
  - id: load-orders
    component: supabase.writer
    mode: write
    needs: [extract-orders]
    config:
      connection: @supabase.main
      table: orders
"""


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "osiris_connections.yaml").write_text(CONNECTIONS)
    return tmp_path


def chat_env(standin: StandIn) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OSIRIS_"))}
    env.update(ANTHROPIC_BASE_URL=standin.url, ANTHROPIC_API_KEY=KEY, NO_COLOR="1")
    return env


def chat(project: Path, standin: StandIn, lines: list[str], *args: str) -> Any:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            "chat",
            *args,
        ],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=project,
        env=chat_env(standin),
        timeout=120,
    )


def test_plain_chat_edits_one_pipeline_turn_by_turn(project: Path, standin: StandIn) -> None:
    (project / "p.oml").write_text(STARTING)
    extended = pipeline(extract(), writer(["extract-orders"]), PARQUET)
    standin.script = [tool_answer(extended)]
    done = chat(
        project,
        standin,
        ["/check", "now also write the orders to Parquet", "/show", "/save", "/quit"],
        "p.oml",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # the unquoted @ refs were fixed by rule when the file was loaded: no model call for that
    assert "fixed OML" in out and out.count("fixed OML") == 2
    [request] = standin.messages_requests
    turn = request.body["messages"][0]["content"]
    assert "Request: now also write the orders to Parquet" in turn
    assert "The current pipeline" in turn and 'connection: "@mysql.shop"' in turn
    assert CANARY not in request.raw.decode()
    assert "write-parquet" in out and "valid; model calls 1" in out
    saved = (project / "p.oml").read_text()
    assert "write-parquet" in saved and '"@supabase.main"' in saved


def test_plain_chat_undo_and_commands_without_a_pipeline(project: Path, standin: StandIn) -> None:
    standin.script = [tool_answer(GOOD), tool_answer(pipeline(extract(), writer()))]
    done = chat(
        project,
        standin,
        ["/show", "copy orders to supabase", "drop the needs", "/undo", "/save out.oml", "/bogus"],
        "--max-attempts",
        "1",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "no pipeline yet" in out and "OML035" in out and "1 error(s) left" in out
    assert "unknown command /bogus" in out
    assert "needs:" in (project / "out.oml").read_text()  # the undone turn is not what was saved
    assert len(standin.messages_requests) == 2
    second = standin.messages_requests[1].body["messages"][0]["content"]
    assert "extract-orders" in second  # the turn carried the pipeline of the first


def test_chat_without_key_exits_5(project: Path, standin: StandIn) -> None:
    env = chat_env(standin)
    del env["ANTHROPIC_API_KEY"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            "chat",
        ],
        input="",
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=60,
    )
    assert done.returncode == 5 and "ANTHROPIC_API_KEY" in done.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_chat_on_a_terminal_uses_rich(project: Path, standin: StandIn) -> None:
    standin.script = [tool_answer(GOOD)]
    session = f"osiris-llm-chat-{os.getpid()}"
    env = chat_env(standin)
    exports = " ".join(
        f"{k}={_q(v)}"
        for k, v in env.items()
        if k in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "PATH", "HOME", "NO_COLOR")
    )
    osiris = Path(sys.executable).parent / "osiris"
    command = f"cd {_q(str(project))} && env {exports} {_q(str(osiris))} chat; sleep 30"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "60", command], check=True
    )
    try:
        screen = _wait(session, "Commands: /show")
        subprocess.run(
            ["tmux", "send-keys", "-t", session, "copy orders to supabase", "Enter"], check=True
        )
        screen = _wait(session, "model calls 1")
        assert "╭" in screen and "pipeline" in screen  # Rich's panel around the pipeline
        assert "extract-orders" in screen and "valid;" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "/quit", "Enter"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert len(standin.messages_requests) == 1


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _wait(session: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout
        if text in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never appeared:\n{screen}")
