"""The toolchain's name and version: one version, pyproject.toml's, read from the installed metadata."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from typing import Any

TOOLCHAIN_NAME = "osiris-oml"  # the distribution; recorded in every manifest


@functools.cache
def toolchain_version() -> str:
    """The installed distribution's version ("0+unknown" in a tree that was never installed)."""
    # importlib.metadata costs ~40 ms of start-up (it loads the email package): only on demand.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(TOOLCHAIN_NAME)
    except PackageNotFoundError:
        return "0+unknown"


class _Version(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {toolchain_version()}")
        parser.exit(0)


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """`--version`: print "<prog> <version>" and exit 0 (the version is read only then)."""
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
