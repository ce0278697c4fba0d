"""Standard output whose reader may go away (`osiris run ... | head -1`) without failing the run."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import TextIO, cast


class ClosableOutput(io.TextIOBase):
    """Writes to `stream` until its reader closes the pipe; from then on output is dropped and
    the run goes on. The descriptor is pointed at /dev/null, so what is still buffered (and the
    interpreter's flush at exit) goes nowhere instead of raising BrokenPipeError again."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.reader_gone = False
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        with self._lock:
            if self.reader_gone:
                return
            self.reader_gone = True
            with contextlib.suppress(OSError, ValueError):  # no descriptor (an in-memory stream)
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, self.stream.fileno())
                finally:
                    os.close(devnull)


@contextlib.contextmanager
def closable_stdout() -> Iterator[TextIO]:
    """sys.stdout as a ClosableOutput for the duration of a command (print() included)."""
    original = sys.stdout
    out = ClosableOutput(original)
    sys.stdout = cast(TextIO, out)
    try:
        yield sys.stdout
    finally:
        out.flush()
        sys.stdout = original
