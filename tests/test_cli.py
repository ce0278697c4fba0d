"""The omlc/osiris command lines as a user runs them: exit codes, text and JSON output, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from oml_cases import CSV_TO_CSV, WITH_UNUSED_PARAM

ROOT = Path(__file__).resolve().parent.parent


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
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
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
    assert omlc("fmt", "--check", "messy.oml", cwd=project).returncode == 1
    assert omlc("fmt", "messy.oml", cwd=project).returncode == 0
    text = messy.read_text()
    assert text.startswith('name: t  # keep me\noml_version: "0.1.0"\n')
    assert "  - id: src\n    mode: read\n    component: filesystem.csv_extractor\n" in text
    assert omlc("fmt", "--check", "messy.oml", cwd=project).returncode == 0


def test_components_list_and_spec() -> None:
    from osiris.compiler.cli import osiris_main

    assert osiris_main(["components", "list", "--format", "json"]) == 0
    assert osiris_main(["components", "spec", "mysql.extractr"]) == 2
