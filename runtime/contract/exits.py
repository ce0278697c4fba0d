"""Exit codes: the same numbers and meanings for every command (omlc, osiris, oml-run, oml-lsp)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1  # a bug: a one-line message, the traceback in the log (OSIRIS_DEBUG=1 shows it)
    INVALID = 2  # invalid OML or invalid use of a command (usage, unformatted with fmt --check)
    COMPILE = 3  # compile error; for oml-run: the manifest is invalid or was modified
    RUN_FAILED = 4  # a step failed
    CONFIGURATION = 5  # connections, secrets, environment, credentials
    INTERRUPTED = 130  # SIGINT (Ctrl-C)
    TERMINATED = 143  # SIGTERM
