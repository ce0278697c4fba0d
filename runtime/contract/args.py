"""Command-line parsing shared by every entry point: a usage error raised, not printed, so a
command run with `--format json` can report it as JSON (exit 2) instead of argparse's text."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from typing import NoReturn


class ParseError(Exception):
    """An argparse usage error: the parser that raised it (its prog and usage) and the message."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message

    @property
    def usage(self) -> str:
        return self.parser.format_usage().strip()

    def print_text(self) -> None:
        """What argparse itself prints: the usage, then `prog: error: message`, on stderr."""
        self.parser.print_usage(sys.stderr)
        print(f"{self.parser.prog}: error: {self.message}", file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises ParseError (subparsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        raise ParseError(self, message)


def wants_json(argv: Sequence[str]) -> bool:
    """`--format json` (or `--format=json`) among the arguments, even ones argparse rejects."""
    argv = list(argv)
    return "--format=json" in argv or any(
        a == "--format" and b == "json" for a, b in itertools.pairwise(argv)
    )
