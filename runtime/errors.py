"""Runtime error types, each carrying the process exit code it maps to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_MANIFEST = 3
EXIT_RUN_FAILED = 4
EXIT_CONFIGURATION = 5


class RuntimeFailure(Exception):
    """Base of the errors the runtime reports to the user; messages are secret-free."""

    exit_code = EXIT_INTERNAL


class ManifestError(RuntimeFailure):
    """The manifest is invalid, incomplete, or does not match its fingerprints (exit 3)."""

    exit_code = EXIT_MANIFEST


class ConfigurationError(RuntimeFailure):
    """Connections, secrets or the environment are missing or wrong (exit 5)."""

    exit_code = EXIT_CONFIGURATION
