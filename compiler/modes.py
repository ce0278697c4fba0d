"""Modes, one table: a spec's modes, the role each gives a component, the OML step modes that select it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class SpecMode:
    role: str | None  # extractor | writer | processor; None: not a step mode (discover)
    oml_modes: tuple[str, ...]  # the OML step modes that select it, the usual one first


SPEC_MODES = MappingProxyType(
    {
        "extract": SpecMode("extractor", ("read", "extract")),
        "write": SpecMode("writer", ("write",)),
        "transform": SpecMode("processor", ("transform",)),
        "discover": SpecMode(None, ()),
    }
)

# every name `osiris components list --mode` accepts: the OML step modes, then the spec modes
MODE_NAMES = tuple(
    dict.fromkeys([*(m for s in SPEC_MODES.values() for m in s.oml_modes), *SPEC_MODES])
)


def role_of(spec_modes: Iterable[str]) -> str | None:
    """The role a component's spec modes give it (the meta-schema allows exactly one)."""
    for mode in spec_modes:
        found = SPEC_MODES.get(mode)
        if found is not None and found.role is not None:
            return found.role
    return None


def oml_modes_of(spec_modes: Iterable[str]) -> tuple[str, ...]:
    """The OML step modes that select a component with these spec modes, the usual one first."""
    out: list[str] = []
    for mode in spec_modes:
        found = SPEC_MODES.get(mode)
        out += found.oml_modes if found is not None else ()
    return tuple(dict.fromkeys(out))


def spec_mode_of(oml_mode: str) -> str | None:
    """The spec mode an OML step mode (or a spec mode's own name) selects: read -> extract."""
    if oml_mode in SPEC_MODES:
        return oml_mode
    return next((m for m, s in SPEC_MODES.items() if oml_mode in s.oml_modes), None)
