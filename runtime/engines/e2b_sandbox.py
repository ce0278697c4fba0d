"""The e2b SandboxPort: a cloud sandbox through the e2b SDK (2.x); requests go where the SDK's
E2B_API_URL / E2B_DOMAIN / E2B_DEBUG say."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from osiris.runtime.engines.port import Limits, OutputListener, SandboxError

WORKDIR = "/home/user/osiris"
WHEEL_DIR = "/tmp/osiris-wheel"
VENV_DIR = "/home/user/.osiris-venv"  # the runtime's own venv: never the template's packages
INSTALL_TIMEOUT_SECONDS = 900
SIGNAL_TIMEOUT_SECONDS = 30


def sdk() -> Any:
    """The e2b module; SandboxError (exit 5) when the extra is not installed."""
    try:
        import e2b
    except ImportError:
        raise SandboxError(
            "the e2b engine needs the e2b SDK: pip install 'osiris-oml[e2b]'", configuration=True
        ) from None
    return e2b


def _problem(err: BaseException, doing: str) -> SandboxError:
    """One line for an SDK error, without the key; configuration for what the user can fix."""
    e2b = sdk()
    if isinstance(err, e2b.AuthenticationException):
        return SandboxError(
            "the e2b API rejected E2B_API_KEY (check the key at https://e2b.dev/dashboard)",
            configuration=True,
        )
    configuration = isinstance(
        err, (e2b.NotFoundException, e2b.InvalidArgumentException, e2b.RateLimitException)
    )
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    return SandboxError(f"{doing}: {first}", configuration=configuration)


class _E2BProcess:
    """A background command; its output reaches the listeners through handle.wait (the sync
    SDK delivers a background command's output only to wait's callbacks)."""

    def __init__(
        self, sandbox: Any, handle: Any, on_stdout: OutputListener, on_stderr: OutputListener
    ) -> None:
        self.sandbox = sandbox
        self.handle = handle
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.code: int | None = None
        self.failure: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._wait, daemon=True, name="osiris-e2b-wait").start()

    def _wait(self) -> None:
        e2b = sdk()
        try:
            result = self.handle.wait(on_stdout=self.on_stdout, on_stderr=self.on_stderr)
            self.code = int(result.exit_code)
        except e2b.CommandExitException as exit_:
            self.code = int(exit_.exit_code)
        except BaseException as err:
            self.failure = err
        finally:
            self.done.set()

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.done.wait(timeout):
            return None
        if self.failure is not None:
            raise _problem(self.failure, "the sandboxed run lost its connection")
        return self.code

    def interrupt(self) -> None:
        """SIGINT to the run in the sandbox (a separate command: the SDK only kills)."""
        try:
            self.sandbox.commands.run(
                f"kill -INT {int(self.handle.pid)}", timeout=SIGNAL_TIMEOUT_SECONDS
            )
        except Exception as err:
            raise _problem(err, "could not interrupt the sandboxed run") from None


class E2BSandbox:
    """SandboxPort on e2b. api_key: from E2B_API_KEY or --secrets-file (never logged)."""

    name = "e2b"
    remote = True

    def __init__(
        self,
        api_key: str,
        limits: Limits | None = None,
        *,
        workdir: str = WORKDIR,
        wheel_dir: str = WHEEL_DIR,
        venv_dir: str = VENV_DIR,
    ) -> None:
        self.api_key = api_key
        self.secrets: tuple[str, ...] = (api_key,)
        self.limits = limits or Limits()
        self.workdir = workdir
        self.wheel_dir = wheel_dir
        self.venv_dir = venv_dir
        self.sandbox: Any = None

    def create(self, metadata: Mapping[str, str]) -> None:
        e2b = sdk()
        try:
            self.sandbox = e2b.Sandbox.create(
                template=self.limits.template,
                timeout=self.limits.timeout_s + 600,  # room to install, fetch and clean up
                metadata=dict(metadata),
                api_key=self.api_key,
            )
        except Exception as err:
            raise _problem(err, "could not create an e2b sandbox") from None

    def _path(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.workdir}/{path}"

    def put(self, path: str, data: bytes) -> None:
        try:
            self.sandbox.files.write(self._path(path), data, use_octet_stream=True)
        except Exception as err:
            raise _problem(err, f"could not write {path} into the sandbox") from None

    def get(self, path: str) -> bytes:
        try:
            return bytes(self.sandbox.files.read(self._path(path), format="bytes"))
        except Exception as err:
            raise _problem(err, f"could not read {path} from the sandbox") from None

    def install(self, wheel: Path, extras: tuple[str, ...]) -> str:
        target = f"{self.wheel_dir}/{wheel.name}"
        self.put(target, wheel.read_bytes())
        spec = f"{target}[{','.join(extras)}]" if extras else target
        venv = shlex.quote(self.venv_dir)
        command = (
            f"(test -x {venv}/bin/python || python3 -m venv {venv}) && {venv}/bin/python -m pip "
            f"install --quiet --disable-pip-version-check --no-input {shlex.quote(spec)}"
        )
        e2b = sdk()
        try:
            self.sandbox.commands.run(command, timeout=INSTALL_TIMEOUT_SECONDS)
        except e2b.CommandExitException as exit_:
            last = (str(exit_.stderr or "").strip().splitlines() or ["no output"])[-1][:300]
            raise SandboxError(f"installing the runtime in the sandbox failed: {last}") from None
        except Exception as err:
            raise _problem(err, "installing the runtime in the sandbox failed") from None
        return f"{self.venv_dir}/bin/python"

    def start(
        self,
        argv: list[str],
        env: Mapping[str, str],
        on_stdout: OutputListener,
        on_stderr: OutputListener,
    ) -> _E2BProcess:
        # exec: the command's pid is the run's own, so interrupt() signals the runtime itself
        command = f"exec {shlex.join(argv)}"
        if self.limits.memory_mib:
            command = f"ulimit -v {self.limits.memory_mib * 1024} && {command}"
        try:
            handle = self.sandbox.commands.run(
                command,
                background=True,
                envs=dict(env),
                cwd=self.workdir,
                timeout=0,  # the engine enforces --e2b-timeout (and SIGINTs first)
                retain_output=False,
            )
        except Exception as err:
            raise _problem(err, "could not start the run in the sandbox") from None
        return _E2BProcess(self.sandbox, handle, on_stdout, on_stderr)

    def kill(self) -> None:
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is None:
            return
        try:
            sandbox.kill()
        except Exception as err:
            raise _problem(err, "could not kill the sandbox") from None
