"""Secret handling: dotenv files, ${VAR} interpolation and the redactor that masks resolved secrets."""

from __future__ import annotations

import json
import re
import threading
import traceback as traceback_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from osiris.runtime.contract.config_file import ConfigFileError, read_config_text
from osiris.runtime.contract.connections import VARIABLE_REFERENCE, embedded_passwords
from osiris.runtime.errors import ConfigurationError

MASK = "***"

_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines: '#' comments, optional 'export ', single or double quotes."""
    try:
        text = read_config_text(path, "secrets file")
    except ConfigFileError as err:
        raise ConfigurationError(str(err)) from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if match is None:
            raise ConfigurationError(f"{path}:{number}: expected KEY=VALUE")
        key, value = match.group(1), match.group(2)
        values[key] = _dotenv_value(value)
    return values


def _dotenv_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        if value[0] == '"':
            inner = inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        return inner
    # An unquoted value may carry a trailing ' # comment'.
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


@dataclass(frozen=True, slots=True)
class VariableSource:
    """Where ${VAR} values come from, highest precedence first."""

    layers: tuple[Mapping[str, str], ...]

    def lookup(self, name: str) -> str | None:
        for layer in self.layers:
            if name in layer:
                return layer[name]
        return None


def interpolate(value: Any, source: VariableSource, where: str, field: str = "") -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string inside value ('$$' is a literal '$')."""
    if isinstance(value, str):
        return _interpolate_text(value, source, f"{where} (field {field})" if field else where)
    if isinstance(value, Mapping):
        return {
            k: interpolate(v, source, where, f"{field}.{k}" if field else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, source, where, f"{field}[{i}]") for i, v in enumerate(value)]
    return value


def _interpolate_text(text: str, source: VariableSource, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(0) == "${":  # never used literally: a secret would go out half-written
            raise ConfigurationError(
                f"{where}: '${{' without a closing '}}' or a valid name (write ${{VAR}}, or "
                f"$${{ for a literal '${{')"
            )
        name, default = match.group(1), match.group(2)
        found = source.lookup(name)
        if found is not None and (found != "" or default is None):
            return found
        if default is not None:
            return default
        raise ConfigurationError(
            f"{where}: variable {name} is not set (set it in the environment, "
            f"a --secrets-file or the project root's .env)"
        )

    return VARIABLE_REFERENCE.sub(replace, text)


def referenced_variables(value: Any) -> set[str]:
    """Names of the ${VAR} references anywhere inside value."""
    if isinstance(value, str):
        return {m.group(1) for m in VARIABLE_REFERENCE.finditer(value) if m.group(1)}
    if isinstance(value, Mapping):
        return set().union(*(referenced_variables(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(referenced_variables(v) for v in value))
    return set()


MIN_SECRET_LENGTH = 8  # shorter secrets are masked only as whole words (docs/runtime.md)


def is_short_secret(secret: str) -> bool:
    return len(secret) < MIN_SECRET_LENGTH


class Redactor:
    """Masks registered secrets (and their URL- and JSON-escaped forms) with '***' in free text:
    error messages, log lines, warnings. Never applied to serialised records or their keys.

    A secret of MIN_SECRET_LENGTH characters or more is masked wherever it occurs; a shorter one
    only where it stands alone, not inside a word (password 'ok' leaves 'token' alone)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._needles: dict[str, bool] = {}  # form -> whole words only
        self._pattern: re.Pattern[str] | None = None

    def register(self, secret: str) -> None:
        if not secret:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
        forms.update(embedded_passwords(secret))
        with self._lock:
            for form in forms:
                if form:
                    whole_word = is_short_secret(form) or is_short_secret(secret)
                    self._needles[form] = self._needles.get(form, True) and whole_word
            ordered = sorted(self._needles, key=lambda s: (-len(s), s))
            self._pattern = re.compile(
                "|".join(
                    rf"(?<!\w){re.escape(n)}(?!\w)" if self._needles[n] else re.escape(n)
                    for n in ordered
                )
            )

    def register_all(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            self.register(secret)

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def traceback(self, err: BaseException) -> str:
        """err's traceback with its messages redacted; the frames (our code's lines) as they are."""
        return "".join(
            part if part.startswith(("  File ", "Traceback (most recent")) else self.redact(part)
            for part in traceback_module.format_exception(err)
        )
