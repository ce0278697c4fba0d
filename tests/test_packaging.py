"""The wheel carries grammar, specs, templates and sample data, and works outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("osiris_oml-*.whl")
    return built


def test_wheel_contains_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "grammar/oml.lark" in names
    assert "specs/spec.schema.json" in names and "specs/manifest.schema.json" in names
    specs = {n for n in names if n.startswith("specs/components/") and n.endswith("/spec.yaml")}
    assert len(specs) == 13
    assert {
        f"specs/connections/{f}.json" for f in ("mysql", "postgres", "supabase", "duckdb")
    } <= names
    assert "compiler/templates/project/pipeline.oml" in names
    assert "runtime/data/orders.csv" in names
    assert not any(n.startswith(("tests/", "golden/", "bench/")) for n in names)


def test_installed_wheel_checks_and_compiles_outside_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    pipeline = (ROOT / "compiler" / "templates" / "project" / "pipeline.oml").read_text()
    (work / "p.oml").write_text(pipeline)
    (work / "osiris_connections.yaml").write_text(
        (ROOT / "compiler" / "templates" / "project" / "osiris_connections.yaml").read_text()
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import sys, compiler, grammar, specs; "
        f"assert compiler.__file__.startswith({str(target)!r}), compiler.__file__; "
        "from compiler.cli import omlc_main; sys.exit(omlc_main(sys.argv[1:]))"
    )
    check = subprocess.run(
        [sys.executable, "-c", code, "check", "p.oml"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    build = subprocess.run(
        [sys.executable, "-c", code, "p.oml", "-o", "build"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert (work / "build" / "manifest.yaml").is_file()
