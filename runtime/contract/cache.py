"""The on-disk cache directory shared by the spec registry and manifest validation."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path | None:
    """$OSIRIS_CACHE_DIR, else $XDG_CACHE_HOME/osiris or ~/.cache/osiris; None when
    OSIRIS_CACHE_DIR is set to the empty string (caching off)."""
    configured = os.environ.get("OSIRIS_CACHE_DIR")
    if configured == "":
        return None
    if configured is not None:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "osiris"
