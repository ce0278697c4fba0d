"""The local SandboxPort: a fresh temp directory, a separate venv with the runtime wheel (cached
by wheel hash), a scrubbed environment holding only the run's secrets, resource limits."""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from osiris.runtime.contract.cache import cache_dir
from osiris.runtime.engines.port import Limits, OutputListener, SandboxError
from osiris.runtime.engines.wheel import wheel_tag

PIP_TIMEOUT_SECONDS = 1800


def venv_root() -> Path:
    base = cache_dir()
    return (
        (base if base is not None else Path(tempfile.gettempdir()) / "osiris-cache")
        / "sandbox"
        / "venvs"
    )


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


Started = Callable[[subprocess.Popen[str]], None]


def ensure_venv(
    wheel: Path,
    extras: tuple[str, ...],
    root: Path | None = None,
    started: Started | None = None,
) -> Path:
    """A venv with the wheel and its extras installed, one per wheel hash (under the user cache
    directory, or root): built once, reused afterwards, extras added when a run needs more;
    concurrent builders wait for one another. started: told each pip process (to stop it)."""
    root = root or venv_root()
    root.mkdir(parents=True, exist_ok=True)
    name = wheel_tag(wheel)
    venv = root / name
    _prune(root, keep=name)
    if _has(extras_installed(venv), extras):
        os.utime(venv / EXTRAS_FILE)  # in use: not pruned
        return venv
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = extras_installed(venv)
        if _has(installed, extras):
            return venv
        wanted = tuple(sorted((installed - {"runtime"}) | set(extras)))
        target = f"{wheel}[{','.join(wanted)}]" if wanted else str(wheel)
        # pip's own temp files (certifi's cacert.pem, build dirs) go here, so a pip killed by a
        # cancel leaves nothing in $TMPDIR: this folder is removed whatever happens
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-tmp-", dir=root))
        try:
            if installed:  # a complete venv that lacks an extra: add it in place
                _pip(
                    [str(venv_python(venv)), "-m", "pip", "install", *_PIP_FLAGS, target],
                    started,
                    scratch,
                )
            else:
                building = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
                try:
                    _pip([sys.executable, "-m", "venv", str(building)], started, scratch)
                    _pip(
                        [str(venv_python(building)), "-m", "pip", "install", *_PIP_FLAGS, target],
                        started,
                        scratch,
                    )
                    shutil.rmtree(venv, ignore_errors=True)
                    os.replace(building, venv)
                finally:
                    shutil.rmtree(building, ignore_errors=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        (venv / EXTRAS_FILE).write_text("\n".join(("runtime", *wanted)) + "\n")
    return venv


EXTRAS_FILE = ".osiris-extras"  # written last: the venv is complete, with these extras
_PIP_FLAGS = ("--quiet", "--disable-pip-version-check", "--no-input")


def extras_installed(venv: Path) -> set[str]:
    """The extras of a complete venv ('runtime' for the base); empty when it is not complete."""
    try:
        return set((venv / EXTRAS_FILE).read_text().split())
    except OSError:
        return set()


UNUSED_DAYS = 30  # a venv of another runtime version unused this long is removed


def _prune(root: Path, keep: str) -> None:
    """Remove the venvs of other runtime versions not used for UNUSED_DAYS (best effort)."""
    cutoff = time.time() - UNUSED_DAYS * 86400
    for marker in root.glob(f"*/{EXTRAS_FILE}"):
        venv = marker.parent
        with contextlib.suppress(OSError):
            if venv.name != keep and marker.stat().st_mtime < cutoff:
                marker.unlink()  # first: a half-removed venv is never taken for complete
                shutil.rmtree(venv, ignore_errors=True)
                (root / f"{venv.name}.lock").unlink(missing_ok=True)


def _has(installed: set[str], extras: tuple[str, ...]) -> bool:
    return "runtime" in installed and installed >= set(extras)


def _pip(command: list[str], started: Started | None, scratch: Path) -> None:
    env = {**os.environ, "TMPDIR": str(scratch), "TEMP": str(scratch), "TMP": str(scratch)}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        if started is not None:
            started(proc)
        try:
            _, stderr = proc.communicate(timeout=PIP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SandboxError("installing the runtime into a venv timed out") from None
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxError(f"could not install the runtime into a venv: {last}")


class _LocalProcess:
    def __init__(self, popen: subprocess.Popen[bytes], readers: list[threading.Thread]) -> None:
        self.popen = popen
        self.readers = readers

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self.readers:
            reader.join()
        return code

    def interrupt(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGINT)


class LocalSandbox:
    """SandboxPort on this machine. keep: leave the sandbox directory after kill (tests inspect it)."""

    name = "local-sandbox"
    remote = False
    secrets: tuple[str, ...] = ()

    def __init__(
        self, limits: Limits | None = None, *, keep: bool = False, venvs: Path | None = None
    ) -> None:
        self.limits = limits or Limits()
        self.keep = keep
        self.venvs = venvs
        self.root: Path | None = None
        self.workdir = ""
        self.process: _LocalProcess | None = None
        self.installer: subprocess.Popen[str] | None = None
        self.killed = False

    def create(self, metadata: Mapping[str, str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="osiris-sandbox-"))
        for part in ("project", "home", "tmp"):
            (self.root / part).mkdir()
        self.workdir = str(self.root / "project")

    def _path(self, path: str) -> Path:
        if self.root is None:
            raise SandboxError("the sandbox was not created")
        return Path(path) if os.path.isabs(path) else Path(self.workdir) / path

    def put(self, path: str, data: bytes) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def get(self, path: str) -> bytes:
        try:
            return self._path(path).read_bytes()
        except OSError as err:
            raise SandboxError(f"could not read {path} from the sandbox: {err.strerror}") from None

    def install(self, wheel: Path, extras: tuple[str, ...]) -> str:
        return str(venv_python(ensure_venv(wheel, extras, self.venvs, self._installing)))

    def _installing(self, proc: subprocess.Popen[str]) -> None:
        self.installer = proc
        if self.killed:  # killed while the previous step ran
            proc.kill()

    def environment(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """Nothing of this process's environment but a PATH, a locale and the sandbox's own
        home and temp directories; the secrets the run references; no cache writes."""
        assert self.root is not None
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OSIRIS_CACHE_DIR": "",
            **secrets,
        }

    def start(
        self,
        argv: list[str],
        env: Mapping[str, str],
        on_stdout: OutputListener,
        on_stderr: OutputListener,
    ) -> _LocalProcess:
        memory = self.limits.memory_mib

        def limit() -> None:  # in the child, before exec
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if memory:
                with contextlib.suppress(ValueError, OSError):
                    size = memory * 1024 * 1024
                    resource.setrlimit(resource.RLIMIT_AS, (size, size))

        popen = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=self.environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limit,
            start_new_session=True,  # Ctrl-C reaches the engine, which passes it on
        )
        readers = [
            threading.Thread(target=_pump, args=(stream, listener), daemon=True)
            for stream, listener in ((popen.stdout, on_stdout), (popen.stderr, on_stderr))
        ]
        for reader in readers:
            reader.start()
        self.process = _LocalProcess(popen, readers)
        return self.process

    def kill(self) -> None:
        """End the run (or the install under way) and remove the sandbox directory."""
        self.killed = True
        if self.installer is not None and self.installer.poll() is None:
            self.installer.kill()
        process, self.process = self.process, None
        if process is not None and process.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait()
        if process is not None:
            for reader in process.readers:
                reader.join(5)
        if self.root is not None and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def _pump(stream: IO[bytes] | None, listener: OutputListener) -> None:
    assert stream is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            listener(decoder.decode(b"", final=True))
            return
        listener(decoder.decode(chunk))
