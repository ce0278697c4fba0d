"""Cancelling a run: a thread-safe token, the hooks steps register on it, and the CLI's signals."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from osiris.runtime.contract.exits import ExitCode

CALLBACK_JOIN_SECONDS = 10.0


class RunCancelled(Exception):
    """The run was cancelled: raised where a step checks for it (between batches, before a commit)."""


def signal_name(signum: int | None) -> str:
    if signum is None:
        return "a cancel request"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class CancelToken:
    """Cancelled once, from any thread (or a signal handler). Steps register callbacks that stop
    their in-flight work (cancel a server statement, interrupt DuckDB); on cancel they fire once,
    on a helper thread, never inside the signal handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._firing = threading.Lock()  # held while a callback runs: leaving on_cancel waits
        self._cancelled = threading.Event()
        self._signum: int | None = None
        self._callbacks: dict[int, Callable[[], Any]] = {}
        self._next_key = 0
        self._helper: threading.Thread | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def signum(self) -> int | None:
        return self._signum

    @property
    def exit_code(self) -> int:
        """143 for SIGTERM, 130 otherwise (SIGINT, or a cancel from the Python API)."""
        return ExitCode.TERMINATED if self._signum == signal.SIGTERM else ExitCode.INTERRUPTED

    def describe(self) -> str:
        return f"run cancelled ({signal_name(self._signum)})"

    def cancel(self, signum: int | None = None) -> bool:
        """Cancel the run; False when it already was. Safe to call from a signal handler."""
        with self._lock:
            if self._cancelled.is_set():
                return False
            self._signum = signum
            self._cancelled.set()
            keys = list(self._callbacks)
            self._helper = threading.Thread(
                target=self._fire, args=(keys,), name="osiris-cancel", daemon=True
            )
        self._helper.start()
        return True

    def _fire(self, keys: list[int]) -> None:
        for key in keys:
            with self._firing:
                callback = self._callbacks.get(key)
                if callback is not None:
                    with contextlib.suppress(Exception):  # best effort: the step unwinds anyway
                        callback()

    @contextlib.contextmanager
    def on_cancel(self, callback: Callable[[], Any]) -> Iterator[None]:
        """Run callback once if the run is cancelled while inside the block: on a helper thread,
        or at once, on this thread, when it already was."""
        with self._lock:
            already = self._cancelled.is_set()
            key = self._next_key
            self._next_key += 1
            if not already:
                self._callbacks[key] = callback
        if already:
            with contextlib.suppress(Exception):
                callback()
        try:
            yield
        finally:
            with self._firing:  # a callback under way finishes before its resource goes away
                self._callbacks.pop(key, None)

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise RunCancelled(self.describe())

    def join(self, timeout: float = CALLBACK_JOIN_SECONDS) -> None:
        """Wait for the callbacks fired on cancel to return (no thread left behind at exit)."""
        helper = self._helper
        if helper is not None:
            helper.join(timeout)


@contextlib.contextmanager
def cancel_on_signals(token: CancelToken, notify: Callable[[int, bool], None]) -> Iterator[None]:
    """SIGINT and SIGTERM cancel the run instead of interrupting the main thread, and call
    notify(signum, repeated); a repeated signal does nothing else. A signal the process ignores
    stays ignored. The previous handlers come back afterwards; after a cancel, both stay ignored."""

    def handler(signum: int, _frame: Any) -> None:
        notify(signum, not token.cancel(signum))

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; the caller cancels the token itself
        return
    previous = {
        sig: signal.signal(sig, handler)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(sig) is not signal.SIG_IGN  # e.g. SIGINT of a background job
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            # A cancelled process is on its way out: a late signal must not kill it while it
            # finishes its records (Python puts its own handlers back to the default at exit,
            # ignored ones it leaves alone).
            signal.signal(sig, signal.SIG_IGN if token.cancelled else old)
