"""SandboxPort: the few things a sandboxed engine needs of a sandbox (e2b, or a local one)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

OutputListener = Callable[[str], None]


class SandboxError(Exception):
    """The sandbox could not be created or used; the message is one line without secrets.
    configuration: the user can fix it (a key, a template, a quota) -> exit 5."""

    def __init__(self, message: str, *, configuration: bool = False) -> None:
        super().__init__(message)
        self.configuration = configuration


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of the sandbox: None leaves the adapter's default."""

    timeout_s: int = (
        3000  # + the e2b sandbox's 600 s to install and fetch: 1 h, a Hobby plan's most
    )
    cpu: int | None = None
    memory_mib: int | None = None
    template: str | None = None


class Process(Protocol):
    """A command running in the sandbox."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code once it ended (its output was delivered before), None while it still
        runs after timeout seconds."""
        ...

    def interrupt(self) -> None:
        """Send it SIGINT (the runtime cancels and rolls back, then records 'cancelled')."""
        ...


class SandboxPort(Protocol):
    """One sandbox's life: create, put files, install the runtime, run, get files, kill."""

    name: str  # the engine's name: e2b | local-sandbox
    remote: bool  # on another machine: connections to this machine's localhost cannot work
    workdir: str  # the project directory inside the sandbox (absolute, POSIX)
    secrets: tuple[str, ...]  # what the port itself holds (an API key): masked in messages

    def create(self, metadata: Mapping[str, str]) -> None: ...

    def put(self, path: str, data: bytes) -> None:
        """Write a file (path relative to workdir, or absolute in the sandbox)."""
        ...

    def get(self, path: str) -> bytes: ...

    def install(self, wheel: Path, extras: tuple[str, ...]) -> str:
        """Install the runtime wheel with its extras; the sandbox's Python that has it."""
        ...

    def start(
        self,
        argv: list[str],
        env: Mapping[str, str],
        on_stdout: OutputListener,
        on_stderr: OutputListener,
    ) -> Process:
        """Start argv in workdir with exactly env added (the secrets); output is streamed as
        lines to the listeners, from another thread."""
        ...

    def kill(self) -> None:
        """End the sandbox and everything in it; safe to call twice or before create."""
        ...
