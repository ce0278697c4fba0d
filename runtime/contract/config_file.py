"""Reading the small files a user points us at (connections file, secrets file, .env): one rule."""

from __future__ import annotations

import stat
from pathlib import Path

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: far more than any connections or secrets file needs


class ConfigFileError(Exception):
    """A configuration file cannot be read (exit 5); the message is one line, secret-free."""


def read_config_text(path: Path, what: str) -> str:
    """The UTF-8 text of `what` (e.g. "connections file") at path: a regular file, or a pipe
    (`--secrets-file <(vault read ...)`), of at most MAX_CONFIG_BYTES. Anything else raises
    ConfigFileError saying why (/dev/zero is not a regular file, and so is never read)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigFileError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise ConfigFileError(f"cannot read {what} {path}: {err.strerror}") from None
    if stat.S_ISDIR(mode):
        raise ConfigFileError(f"{what} {path} is a directory, not a file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise ConfigFileError(f"{what} {path} is not a regular file")
    too_large = ConfigFileError(
        f"{what} {path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; is it the right file?"
    )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigFileError(f"cannot read {what} {path}: {err.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise too_large
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigFileError(f"{what} {path} is not UTF-8 text (byte {err.start})") from None
