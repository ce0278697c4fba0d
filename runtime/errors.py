"""Runtime error types, each carrying the process exit code it maps to."""

from __future__ import annotations

from osiris.runtime.contract.exits import ExitCode


class RuntimeFailure(Exception):
    """Base of the errors the runtime reports to the user; messages are secret-free."""

    exit_code = ExitCode.INTERNAL


class ManifestError(RuntimeFailure):
    """The manifest is invalid, incomplete, or does not match its fingerprints (exit 3)."""

    exit_code = ExitCode.COMPILE


class ConfigurationError(RuntimeFailure):
    """Connections, secrets or the environment are missing or wrong (exit 5)."""

    exit_code = ExitCode.CONFIGURATION
