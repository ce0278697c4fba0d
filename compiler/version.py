"""The toolchain's name and version, as recorded in every manifest."""

from __future__ import annotations

TOOLCHAIN_NAME = "osiris-oml"
TOOLCHAIN_VERSION = "0.1.0"
