"""The omlc/osiris command lines as a user runs them: exit codes, text and JSON output, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from oml_cases import CSV_TO_CSV, WITH_UNUSED_PARAM


def omlc(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import omlc_main; sys.exit(omlc_main())",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "good.oml").write_text(CSV_TO_CSV)
    (tmp_path / "warn.oml").write_text(WITH_UNUSED_PARAM)
    (tmp_path / "bad.oml").write_text(CSV_TO_CSV.replace("needs: [src]", "needs: [srcc]"))
    return tmp_path


def test_check_exit_codes_and_text(project: Path) -> None:
    ok = omlc("check", "good.oml", cwd=project)
    assert ok.returncode == 0 and "no problems" in ok.stdout
    warn = omlc("check", "warn.oml", cwd=project)
    assert warn.returncode == 0 and "warning[OML031]" in warn.stdout
    bad = omlc("check", "bad.oml", cwd=project)
    assert bad.returncode == 2
    assert "bad.oml:11:13: error[OML032]: unknown step 'srcc'" in bad.stdout
    assert "^^^^" in bad.stdout and "Did you mean 'src'" in bad.stdout


def test_check_json_envelope(project: Path) -> None:
    proc = omlc("check", ".", "--format", "json", cwd=project)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["valid"] is False and report["error_count"] == 1 and report["warning_count"] == 1
    (error,) = [d for d in report["diagnostics"] if d["severity"] == "error"]
    assert error["code"] == "OML032"
    assert error["range"]["start"] == {
        "line": 11,
        "column": 13,
        "byte": error["range"]["start"]["byte"],
    }
    assert error["suggestions"][0]["replacement"] == "src"


def test_compile_writes_manifest_and_emits_stages(project: Path) -> None:
    proc = omlc("good.oml", "-o", "build", cwd=project)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (project / "build" / "manifest.yaml").is_file()
    assert (project / "build" / "cfg" / "src.json").is_file()
    for stage, probe in (
        ("ast", '"kind": "Document"'),
        ("ir", '"order"'),
        ("manifest", "manifest_version"),
    ):
        out = omlc("good.oml", "--emit", stage, cwd=project)
        assert out.returncode == 0 and probe in out.stdout


def test_failed_compile_leaves_output_untouched(project: Path) -> None:
    assert omlc("good.oml", "-o", "build", cwd=project).returncode == 0
    before = {p: p.read_bytes() for p in (project / "build").rglob("*") if p.is_file()}
    bad = omlc("bad.oml", "-o", "build", cwd=project)
    assert bad.returncode == 2
    assert {p: p.read_bytes() for p in (project / "build").rglob("*") if p.is_file()} == before
    missing = omlc("warn.oml", "-o", "build", "--param", "nope=1", cwd=project)
    assert missing.returncode == 3 and "OML062" in missing.stdout


def test_usage_errors(project: Path) -> None:
    no_output = omlc("good.oml", cwd=project)
    assert no_output.returncode == 2 and "-o DIR" in no_output.stderr
    assert omlc("check", cwd=project).returncode == 2
    assert "Traceback" not in no_output.stderr


def test_fmt_check_and_rewrite(project: Path) -> None:
    messy = project / "messy.oml"
    messy.write_text(
        "name: t  # keep me\noml_version: '0.1.0'\nsteps:\n- id: src\n  mode: read\n  component: filesystem.csv_extractor\n  config: {path: x}\n"
    )
    assert omlc("fmt", "--check", "messy.oml", cwd=project).returncode == 2
    assert omlc("fmt", "messy.oml", cwd=project).returncode == 0
    text = messy.read_text()
    assert text.startswith('name: t  # keep me\noml_version: "0.1.0"\n')
    assert "  - id: src\n    mode: read\n    component: filesystem.csv_extractor\n" in text
    assert omlc("fmt", "--check", "messy.oml", cwd=project).returncode == 0


def test_components_list_and_spec() -> None:
    from osiris.compiler.cli import osiris_main

    assert osiris_main(["components", "list", "--format", "json"]) == 0
    assert osiris_main(["components", "spec", "mysql.extractr"]) == 2


def test_every_command_reports_usage_errors_with_exit_2(tmp_path: Path) -> None:
    commands = {
        "omlc": "from osiris.compiler.cli import omlc_main as main",
        "osiris": "from osiris.compiler.cli import osiris_main as main",
        "oml-run": "from osiris.runtime.cli import main",
        "oml-lsp": "from osiris.compiler.lsp.server import main",
    }
    for name, entry in commands.items():
        for args in (["--no-such-flag"], ["--version=3"]):
            proc = subprocess.run(
                [sys.executable, "-c", f"import sys; {entry}; sys.exit(main())", *args],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                check=False,
            )
            assert proc.returncode == 2, (name, args, proc.stderr)
            assert "usage:" in proc.stderr and "Traceback" not in proc.stderr
    bad_value = subprocess.run(
        [sys.executable, "-m", "osiris.runtime.cli", str(tmp_path), "--max-parallel", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad_value.returncode == 2 and "--max-parallel" in bad_value.stderr


def test_readme_exit_code_table_is_the_contracts() -> None:
    """README's table lists exactly the contract's codes."""
    import re

    from osiris.runtime.contract.exits import ExitCode

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("Exit codes, for every command:"))
    documented = {int(n) for n in re.findall(r"(?<![\w/])(\d+)(?:/(\d+))? ", line) for n in n if n}
    assert documented == {int(code) for code in ExitCode}


def test_check_finds_the_connections_file_like_run(tmp_path: Path) -> None:
    """--connections, else $OSIRIS_CONNECTIONS, else the project's file found walking up from
    the pipeline: the same rule as oml-run and the editor."""
    project = tmp_path / "proj"
    (project / "pipelines").mkdir(parents=True)
    pipeline = CSV_TO_CSV.replace(
        "component: filesystem.csv_extractor", "component: mysql.extractor"
    )
    pipeline = pipeline.replace(
        "config: {path: data/in.csv}", 'config: {connection: "@mysql.shop", table: t}'
    )
    (project / "pipelines" / "p.oml").write_text(pipeline)
    (project / "osiris_connections.yaml").write_text(
        "connections:\n  mysql:\n    other: {host: h, user: u, database: d}\n"
    )
    found = omlc("check", "pipelines/p.oml", cwd=project)
    assert found.returncode == 2 and "has no mysql connection 'shop'" in found.stdout
    nested = omlc("check", "p.oml", cwd=project / "pipelines")
    assert nested.returncode == 2 and "has no mysql connection 'shop'" in nested.stdout
    env_file = tmp_path / "env_connections.yaml"
    env_file.write_text("connections:\n  mysql:\n    shop: {host: h, user: u, database: d}\n")
    by_env = omlc(
        "check", "pipelines/p.oml", cwd=project, env={"OSIRIS_CONNECTIONS": str(env_file)}
    )
    assert by_env.returncode == 0, by_env.stdout
