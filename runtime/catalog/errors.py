"""Why a catalog could not be read: one error type the compiler can catch, with its exit code."""

from __future__ import annotations

from osiris.runtime.contract.exits import ExitCode

# ConnectionFailure reasons that mean "no server answered": a cached entry may still be used.
UNREACHABLE_REASONS = frozenset({"refused", "unreachable"})


class CatalogError(Exception):
    """Discovery failed; the message is one secret-free line. exit_code: 5 for connection and
    configuration problems, 4 for a failed query. unreachable: no server answered (a cached
    entry may then be used within its TTL)."""

    def __init__(
        self, message: str, exit_code: int = ExitCode.RUN_FAILED, *, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.exit_code = int(exit_code)
        self.unreachable = unreachable


def classified(err: BaseException) -> CatalogError:
    """A runtime error (ConnectionFailure, DriverError, ConfigurationError) as a CatalogError."""
    from osiris.runtime.drivers.base import ConnectionFailure, DriverError
    from osiris.runtime.errors import ConfigurationError

    if isinstance(err, CatalogError):
        return err
    if isinstance(err, ConnectionFailure):
        return CatalogError(
            str(err), ExitCode.CONFIGURATION, unreachable=err.reason in UNREACHABLE_REASONS
        )
    if isinstance(err, ConfigurationError):
        return CatalogError(str(err), ExitCode.CONFIGURATION)
    if isinstance(err, DriverError):
        return CatalogError(str(err), ExitCode.RUN_FAILED)
    return CatalogError(f"{type(err).__name__}: {err}", ExitCode.RUN_FAILED)
