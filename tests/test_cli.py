"""The omlc/osiris command lines as a user runs them: exit codes, text and JSON output, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# -- --format json everywhere, usage errors, prefixes, help text ------------------------------

ENVELOPE = {"format_version", "valid", "error_count", "warning_count", "diagnostics"}


def osiris_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_fmt_json_reports_each_file(project: Path) -> None:
    (project / "ugly.oml").write_text(CSV_TO_CSV + "\n\n\n")
    (project / "broken.oml").write_text("name: [1,\n")
    proc = omlc(
        "fmt", "--check", "good.oml", "ugly.oml", "broken.oml", "--format", "json", cwd=project
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 2 and report["exit_code"] == 2
    assert report.keys() >= ENVELOPE and report["check"] is True
    statuses = {f["file"]: f["status"] for f in report["files"]}
    assert statuses["broken.oml"] == "failed" and report["failed"] == ["broken.oml"]
    assert report["valid"] is False and report["error_count"] >= 1
    assert all(d["severity"] in ("error", "warning") for d in report["diagnostics"])
    assert statuses["good.oml"] in ("unchanged", "would_change")
    assert report["would_change"] == [f for f, s in statuses.items() if s == "would_change"]
    assert (project / "ugly.oml").read_text().endswith("\n\n\n")  # --check writes nothing

    for name in ("good.oml", "ugly.oml"):
        omlc("fmt", name, cwd=project)
    ok = omlc("fmt", "good.oml", "ugly.oml", "--format", "json", cwd=project)
    report = json.loads(ok.stdout)
    assert ok.returncode == 0 and report["exit_code"] == 0 and report["valid"] is True
    assert report["unchanged"] == ["good.oml", "ugly.oml"] and report["formatted"] == []
    assert ok.stderr == ""


def test_fmt_json_lists_reformatted_files(project: Path) -> None:
    (project / "ugly.oml").write_text(CSV_TO_CSV + "\n\n\n")
    proc = omlc("fmt", "ugly.oml", "--format", "json", cwd=project)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["formatted"] == ["ugly.oml"]
    assert report["files"] == [{"file": "ugly.oml", "status": "formatted"}]


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["compile", "--format", "json"], "omlc compile"),
        (["check", "x.oml", "--format", "json", "--bogus"], "omlc"),
        (["fmt", "--format=json"], "omlc fmt"),
        (["check", "x.oml", "--format", "json", "--format", "xml"], "omlc check"),
    ],
)
def test_usage_error_with_format_json_is_a_json_envelope(
    project: Path, argv: list[str], prog: str
) -> None:
    proc = omlc(*argv, cwd=project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report.keys() >= ENVELOPE and report["valid"] is False
    assert report["exit_code"] == 2 and report["prog"] == prog
    assert report["usage"].startswith("usage: ") and report["error"]
    assert report["diagnostics"][0]["code"] == "usage"
    assert "usage:" not in proc.stderr


def test_usage_error_without_json_stays_argparse_text(project: Path) -> None:
    proc = omlc("check", "--format", "xml", "x.oml", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: omlc check") and "omlc check: error:" in proc.stderr


def test_errors_are_prefixed_by_the_command_typed(project: Path) -> None:
    proc = osiris_cli("compile", "good.oml", cwd=project)  # no -o, no --emit
    assert proc.returncode == 2
    assert proc.stderr.startswith("osiris: error: say where") and "omlc" not in proc.stderr
    proc = omlc("compile", "good.oml", cwd=project)
    assert proc.returncode == 2 and proc.stderr.startswith("omlc: error: say where")
    usage = osiris_cli("fmt", cwd=project)
    assert "osiris fmt: error:" in usage.stderr and "omlc" not in usage.stderr
    usage = osiris_cli("fmt", "--bogus", "x.oml", cwd=project)
    assert "osiris: error: unrecognized" in usage.stderr and "omlc" not in usage.stderr
    unknown = osiris_cli("components", "spec", "mysql.extractr", cwd=project)
    assert unknown.stderr.startswith("osiris: error: unknown component")


def test_usage_error_from_a_command_is_json_with_format_json(project: Path) -> None:
    proc = osiris_cli("compile", "good.oml", "--format", "json", cwd=project)
    report = json.loads(proc.stdout)
    assert proc.returncode == 2 and report["exit_code"] == 2 and proc.stderr == ""
    assert report["error"].startswith("say where to write the manifest")


def test_unknown_component_json_error(project: Path) -> None:
    proc = osiris_cli("components", "spec", "mysql.extractr", "--format", "json", cwd=project)
    assert proc.returncode == 2 and proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report.keys() >= ENVELOPE and report["valid"] is False
    assert report["exit_code"] == 2 and report["component"] == "mysql.extractr"
    assert report["did_you_mean"] == ["mysql.extractor"]
    assert report["diagnostics"][0]["code"] == "unknown-component"
    assert "did you mean mysql.extractor" in report["error"]


def _parsers() -> list[Any]:
    import argparse

    from osiris.compiler.cli import build_omlc_parser, build_osiris_parser
    from osiris.runtime.cli import build_parser

    def walk(parser: argparse.ArgumentParser) -> Any:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)

    return [
        p
        for root in (build_omlc_parser(), build_osiris_parser(), build_parser())
        for p in walk(root)
    ]


def test_every_option_has_help_text() -> None:
    import argparse

    parsers = _parsers()
    assert {"omlc", "osiris init", "osiris demo", "osiris components spec", "oml-run"} <= {
        p.prog for p in parsers
    }
    missing = [
        f"{p.prog} {'/'.join(a.option_strings) or a.dest}"
        for p in parsers
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction)
        and (not a.help or a.help == argparse.SUPPRESS)
    ]
    assert missing == []


def test_every_printing_command_takes_format_json() -> None:
    printing = {"check", "compile", "fmt", "init", "demo", "run", "list", "spec", "oml-run"}
    for parser in _parsers():
        if parser.prog.split()[-1] in printing:
            formats = [a for a in parser._actions if "--format" in a.option_strings]
            assert formats and "json" in formats[0].choices, parser.prog


def test_oml_run_usage_error_with_format_json_is_a_run_summary(tmp_path: Path) -> None:
    run = [
        sys.executable,
        "-c",
        "import sys; from osiris.runtime.cli import main; sys.exit(main())",
    ]
    proc = subprocess.run(
        [*run, "--format", "json", "--max-parallel", "x", "m.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and proc.stderr == ""
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 2 and summary["status"] == "failed"
    assert summary["error"].startswith("oml-run: argument --max-parallel")
    assert summary["usage"].startswith("usage: oml-run")
    text = subprocess.run([*run, "--bogus"], capture_output=True, text=True, cwd=tmp_path)
    assert text.returncode == 2 and text.stdout == "" and "oml-run: error:" in text.stderr
