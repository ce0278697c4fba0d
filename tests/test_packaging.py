"""The wheel installs one namespace, osiris.*, and its commands work from a fresh venv."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
FOLDERS = PROJECT["tool"]["setuptools"]["package-dir"]  # osiris.<name> -> <folder>


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


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding only the wheel; the dependencies come from this test's environment
    through a path entry (a plain path: its .pth files, among them our editable install's
    finder, are not run)."""
    home = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    return home


def test_every_package_folder_is_installed() -> None:
    """A package folder missing from [tool.setuptools] packages would silently drop out of the wheel."""
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for name, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_wheel_holds_only_the_osiris_namespace(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"osiris"}
    assert "osiris/__init__.py" not in names  # a namespace package
    assert "osiris/grammar/oml.lark" in names
    assert {"osiris/specs/spec.schema.json", "osiris/specs/manifest.schema.json"} <= names
    specs = {
        n for n in names if n.startswith("osiris/specs/components/") and n.endswith("/spec.yaml")
    }
    assert len(specs) == len(list((ROOT / "specs" / "components").glob("*/spec.yaml")))
    assert {
        f"osiris/specs/connections/{f}.json" for f in ("mysql", "postgres", "supabase", "duckdb")
    } <= names
    assert "osiris/compiler/templates/project/pipeline.oml" in names
    assert "osiris/compiler/templates/project/data/orders.csv" in names
    assert not any("make_sample_data" in n for n in names)
    assert not any(n.startswith(("tests/", "golden/", "bench/", "scripts/")) for n in names)


def _run(env_home: Path, command: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(env_home / "bin" / command), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_commands_work_outside_the_checkout(fresh_venv: Path, tmp_path: Path) -> None:
    template = ROOT / "compiler" / "templates" / "project"
    (tmp_path / "p.oml").write_text((template / "pipeline.oml").read_text())
    (tmp_path / "osiris_connections.yaml").write_text(
        (template / "osiris_connections.yaml").read_text()
    )
    (tmp_path / "data").mkdir()
    for name in ("orders.csv", "customers.csv"):
        (tmp_path / "data" / name).write_bytes((template / "data" / name).read_bytes())
    version = PROJECT["project"]["version"]
    for command in ("omlc", "osiris", "oml-run", "oml-lsp"):
        shown = _run(fresh_venv, command, "--version", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.split() == [command, version]

    where = _run(
        fresh_venv,
        "python",
        "-c",
        "import osiris.compiler; print(osiris.compiler.__file__)",
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(fresh_venv)), where.stdout + where.stderr

    check = _run(fresh_venv, "omlc", "check", "p.oml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    build = _run(fresh_venv, "omlc", "p.oml", "-o", "build", cwd=tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (tmp_path / "build" / "manifest.yaml").is_file()
    ran = _run(fresh_venv, "oml-run", "build", "--format", "json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    listed = _run(fresh_venv, "osiris", "components", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "mysql.extractor" in listed.stdout


def test_old_top_level_names_are_not_importable(fresh_venv: Path, tmp_path: Path) -> None:
    for name in ("compiler", "runtime", "oml", "grammar", "specs"):
        found = _run(fresh_venv, "python", "-c", f"import {name}", cwd=tmp_path)
        assert found.returncode == 1, name
        assert f"No module named '{name}'" in found.stderr
