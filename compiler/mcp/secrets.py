"""The last line of defence: every secret value the connections file can reach, masked in any result."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from osiris.runtime.contract.connections import (
    VARIABLE_REFERENCE,
    embedded_passwords,
    is_secret_field,
)

MASK = "***"
_SHORT = 6  # a shorter secret is masked only where it stands alone, not inside a word


class SecretGuard:
    """Masks known secret values (secret fields written literally, and the values of the
    variables secret fields reference) in every string of a tool result or error message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        needles = sorted({s for s in secrets if s}, key=lambda s: (-len(s), s))
        self._pattern = (
            re.compile(
                "|".join(
                    re.escape(s) if len(s) >= _SHORT else rf"(?<!\w){re.escape(s)}(?!\w)"
                    for s in needles
                )
            )
            if needles
            else None
        )

    @classmethod
    def from_aliases(
        cls, aliases: Mapping[str, Mapping[str, Mapping[str, Any]]], environ: Mapping[str, str]
    ) -> SecretGuard:
        """aliases: family -> alias -> raw fields (as written, ${VAR} unexpanded)."""
        found: list[str] = []
        for entries in aliases.values():
            for fields in entries.values():
                for name, value in fields.items():
                    if isinstance(value, str):
                        found.extend(_values(value, environ, secret=is_secret_field(str(name))))
        return cls(found)

    def text(self, value: str) -> str:
        return self._pattern.sub(MASK, value) if self._pattern is not None else value

    def data(self, value: Any) -> Any:
        """value with every string (keys included) masked."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def _values(raw: str, environ: Mapping[str, str], *, secret: bool) -> list[str]:
    """The secret values raw can turn into: of a secret field, its literal text or the values
    (and defaults) of the variables it references; of any field, the passwords inside it as a
    URL/DSN, before and after its variables are expanded."""
    references = [m for m in VARIABLE_REFERENCE.finditer(raw) if m.group(1)]

    def expand(match: re.Match[str]) -> str:
        if match.group(1):
            return environ.get(match.group(1)) or match.group(2) or ""
        return "$" if match.group(0) == "$$" else match.group(0)

    expanded = VARIABLE_REFERENCE.sub(expand, raw)
    out: list[str] = []
    if secret:
        out.append(expanded)
        if not references:
            out.append(raw)
        for match in references:
            out += [environ.get(match.group(1)) or "", match.group(2) or ""]
    out += embedded_passwords(raw) + embedded_passwords(expanded)
    return [v for v in out if v]
