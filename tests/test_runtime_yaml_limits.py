"""The runtime's own YAML readers (connections file, manifest) bound alias expansion like the
compiler's: a "billion laughs" file fails at once with a clear message, not after minutes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from runtime_helpers import run_cli, step, write_connections, write_manifest

from osiris.oml import yamltree
from osiris.runtime.connections import read_connection_aliases
from osiris.runtime.contract import yaml_limits
from osiris.runtime.errors import ConfigurationError


def bomb_lines(levels: int = 9, width: int = 9) -> str:
    """Nine levels of nine aliases (387 million nodes written out) as top-level x- keys."""
    lines = ['x-l0: &l0 ["lol"]']
    for level in range(1, levels + 1):
        lines.append(f"x-l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


CONNECTIONS = "connections:\n  duckdb:\n    wh: {path: w.duckdb}\n"


def test_one_bound_for_compiler_and_runtime() -> None:
    assert yaml_limits.MAX_ALIAS_NODES == yamltree.MAX_ALIAS_NODES


def test_oml_run_refuses_an_alias_bomb_in_the_connections_file(tmp_path: Path) -> None:
    write_connections(tmp_path, "version: 1\n" + bomb_lines() + CONNECTIONS)
    write_manifest(
        tmp_path / "build",
        [step("e", "duckdb.extractor", "extractor", {"table": "t"}, connection="@duckdb.wh")],
    )
    started = time.monotonic()
    result = run_cli(
        ["build", "--connections", "osiris_connections.yaml"], cwd=tmp_path, timeout=60
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 5, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "YAML alias *l4" in result.stderr and "100,000" in result.stderr, result.stderr
    assert "osiris_connections.yaml:7:" in result.stderr  # the line of x-l5, where *l4 tips it
    assert elapsed < 30  # the process start included; the read itself is timed below


def test_the_bounded_read_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\n" + bomb_lines() + CONNECTIONS, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=r"YAML alias \*l4 expands"):
        read_connection_aliases(path)
    assert time.monotonic() - started < 0.5


def test_normal_anchors_still_work_in_the_connections_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\n" + bomb_lines(levels=3) + "x-base: &base {path: w.duckdb}\n"
        "connections:\n  duckdb:\n    a: *base\n    b: {<<: *base, read_only: true}\n",
        encoding="utf-8",
    )
    aliases = read_connection_aliases(path)
    assert aliases["duckdb"] == {
        "a": {"path": "w.duckdb"},
        "b": {"path": "w.duckdb", "read_only": True},
    }


def test_oml_run_refuses_an_alias_bomb_in_the_manifest(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "build", [step("e", "duckdb.extractor", "extractor", {})])
    file = manifest / "manifest.yaml" if manifest.is_dir() else manifest
    file.write_text(bomb_lines() + file.read_text(encoding="utf-8"), encoding="utf-8")
    result = run_cli(["build"], cwd=tmp_path, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "YAML alias *l4" in result.stderr and "Traceback" not in result.stderr
