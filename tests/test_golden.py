"""Golden cases: golden/<case>/pipeline.oml compiled and compared with the files beside it.

A case may carry args.json: {"params": ["k=v", ...], "profile": "p", "environ": {...},
"connections": "osiris_connections.yaml"} (the connections path is relative to the case).
The case name says the expected exit code: invalid_* -> 2 (invalid OML), compile_* -> 3
(compile-stage error), anything else -> 0. Expected files:

- manifest.yaml and cfg/<id>.json when the compile succeeds;
- diagnostics.json (the `omlc --format json` envelope) whenever there are diagnostics.

`python3 dev.py golden` (pytest tests/test_golden.py --snapshot-update) rewrites exactly these
files and removes expected files a case no longer produces. Without --snapshot-update a missing,
different or stale file fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from golden_ext import GOLDEN_DIR, ROOT, GoldenFileExtension
from invariants import (
    CANARY_VALUE,
    CANARY_VAR,
    check_compiled,
    check_diagnostics_output,
)

from osiris.compiler.compile import compile_text
from osiris.compiler.connections import load_connections_index
from osiris.oml.render import render_json

INPUT_FILES = {"pipeline.oml", "args.json", "osiris_connections.yaml"}
ARG_KEYS = {"params", "profile", "environ", "connections"}
CASES = sorted(p.parent.name for p in GOLDEN_DIR.glob("*/pipeline.oml"))
OMLC = [
    sys.executable,
    "-c",
    "import sys; from osiris.compiler.cli import omlc_main; sys.exit(omlc_main())",
]
COMPONENTS = sorted(p.parent.name for p in (ROOT / "specs" / "components").glob("*/spec.yaml"))


def expected_exit(case: str) -> int:
    if case.startswith("invalid_"):
        return 2
    if case.startswith("compile_"):
        return 3
    return 0


@dataclass(frozen=True)
class Outcome:
    case: str
    source: str
    exit_code: int
    files: dict[str, bytes]  # what the golden folder must hold besides its inputs
    compiled: dict[str, bytes] | None  # manifest.yaml + cfg/*.json when the compile succeeded
    params: dict[str, Any]


def case_args(case: str) -> dict[str, Any]:
    path = GOLDEN_DIR / case / "args.json"
    args = json.loads(path.read_text("utf-8")) if path.exists() else {}
    unknown = set(args) - ARG_KEYS
    assert not unknown, f"{case}/args.json: unknown keys {sorted(unknown)}"
    return args


def diagnostics_bytes(diagnostics: Any) -> bytes:
    """Exactly what `omlc --format json` prints."""
    return (json.dumps(render_json(diagnostics), indent=2, ensure_ascii=False) + "\n").encode()


@cache
def run_case(case: str) -> Outcome:
    """Compile one case the way `omlc golden/<case>/pipeline.oml` does, from the repo root.

    The environment is explicit: only the case's environ plus the canary secret, so a developer's
    OSIRIS_PARAM_* variables cannot change the result.
    """
    args = case_args(case)
    display = f"golden/{case}/pipeline.oml"
    source = (ROOT / display).read_text("utf-8")
    diagnostics: list[Any] = []
    connections = None
    if "connections" in args:
        from osiris.oml.diagnostics import DiagnosticList

        problems = DiagnosticList()
        cwd = os.getcwd()
        os.chdir(ROOT)  # relative path: diagnostics name the file as golden/<case>/...
        try:
            connections = load_connections_index(
                Path("golden", case, args["connections"]), problems
            )
        finally:
            os.chdir(cwd)
        diagnostics.extend(problems.sorted())
    environ = {CANARY_VAR: CANARY_VALUE, **args.get("environ", {})}
    result = compile_text(
        source,
        display,
        params=args.get("params", []),
        profile=args.get("profile"),
        environ=environ,
        connections=connections,
    )
    diagnostics.extend(result.diagnostics)
    files: dict[str, bytes] = {}
    compiled = None
    params: dict[str, Any] = {}
    if result.emitted is not None:
        compiled = dict(result.emitted.files)
        files.update(compiled)
        params = dict(result.emitted.manifest["params"])
    if diagnostics:
        files["diagnostics.json"] = diagnostics_bytes(diagnostics)
    return Outcome(case, source, result.exit_code, files, compiled, params)


def is_output(rel: str) -> bool:
    return rel in ("manifest.yaml", "diagnostics.json") or (
        rel.startswith("cfg/") and rel.endswith(".json") and rel.count("/") == 1
    )


def existing_files(case: str) -> set[str]:
    folder = GOLDEN_DIR / case
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(autouse=True)
def _canary_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CANARY_VAR, CANARY_VALUE)


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, snapshot: Any) -> None:
    outcome = run_case(case)
    golden = snapshot.use_extension(GoldenFileExtension)
    for rel in ["manifest.yaml", *sorted(r for r in outcome.files if r != "manifest.yaml")]:
        if rel in outcome.files:
            assert golden(name=f"golden/{case}/{rel}") == outcome.files[rel]
    stale = sorted(r for r in existing_files(case) - set(outcome.files) if is_output(r))
    if stale and snapshot.update_snapshots:
        for rel in stale:
            (GOLDEN_DIR / case / rel).unlink()
        cfg_dir = GOLDEN_DIR / case / "cfg"
        if cfg_dir.is_dir() and not any(cfg_dir.iterdir()):
            cfg_dir.rmdir()
    else:
        assert not stale, f"golden/{case} holds files the compiler no longer produces: {stale}"
    assert outcome.exit_code == expected_exit(case), (
        f"{case}: exit code {outcome.exit_code}, expected {expected_exit(case)} "
        f"(see the case-name convention in {Path(__file__).name})"
    )


@pytest.mark.parametrize("case", CASES)
def test_golden_invariants(case: str) -> None:
    outcome = run_case(case)
    if outcome.compiled is not None:
        check_compiled(outcome.compiled, source=outcome.source, params=outcome.params)
    else:
        assert "diagnostics.json" in outcome.files, f"{case}: failed without diagnostics"
    if "diagnostics.json" in outcome.files:
        data = outcome.files["diagnostics.json"]
        envelope = json.loads(data)
        check_diagnostics_output(envelope, data, source=outcome.source)
        if outcome.exit_code == 0:
            assert envelope["valid"], f"{case}: exit 0 with errors"
        else:
            assert not envelope["valid"], f"{case}: exit {outcome.exit_code} without errors"


@pytest.mark.parametrize("case", CASES)
def test_golden_folder_is_tidy(case: str) -> None:
    """A case folder holds its inputs and expected outputs, nothing else."""
    odd = sorted(r for r in existing_files(case) if r not in INPUT_FILES and not is_output(r))
    assert not odd, f"golden/{case}: unexpected files {odd}"


def test_golden_coverage() -> None:
    """Enough cases; every component compiles somewhere; every diagnostic family is covered."""
    assert len(CASES) >= 15
    used: set[str] = set()
    codes: set[str] = set()
    for case in CASES:
        outcome = run_case(case)
        if outcome.compiled is not None:
            manifest = yaml.safe_load(outcome.compiled["manifest.yaml"])
            used |= {s["component"] for s in manifest["steps"]}
        if "diagnostics.json" in outcome.files:
            codes |= {
                d["code"] for d in json.loads(outcome.files["diagnostics.json"])["diagnostics"]
            }
    assert sorted(used) == COMPONENTS, f"components never compiled: {set(COMPONENTS) - used}"
    families = {
        "yaml": {"OML001", "OML002"},
        "structure/legacy": {"OML004", "OML005", "OML006", "OML007", "OML008", "OML010"},
        "steps": {"OML011", "OML012", "OML013"},
        "components/config": {"OML014", "OML015", "OML016", "OML017", "OML018", "OML019"},
        "config rules": {"OML020", "OML021"},
        # OML023: no built-in spec lets a step override a connection field with a warning
        # (tests/test_check.py FILE_CASES covers it with a spec that does)
        "connections": {"OML022", "OML024", "OML025", "OML026", "OML027"},
        "connections file": {"OML101", "OML104"},
        "expressions/params": {"OML028", "OML029", "OML030", "OML031"},
        "data flow": {"OML032", "OML033", "OML034", "OML035", "OML036", "OML043", "OML044"},
        "processor SQL": {"OML037", "OML038"},
        "compile stage": {"OML060", "OML061", "OML062", "OML063", "OML064", "OML065"},
    }
    for family, wanted in families.items():
        assert wanted <= codes, f"{family}: no golden case covers {sorted(wanted - codes)}"


def test_cli_matches_golden(tmp_path: Path) -> None:
    """The command line produces the same bytes and exit codes as the API the goldens use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_PARAM_")}
    env[CANARY_VAR] = CANARY_VALUE
    for case in ("postgres_marts_fanout", "invalid_processor_sql", "compile_param_ill_typed"):
        args = case_args(case)
        out = tmp_path / case
        cmd = [*OMLC, f"golden/{case}/pipeline.oml"]
        cmd += ["-o", str(out), "--format", "json"]
        for p in args.get("params", []):
            cmd += ["--param", p]
        if args.get("profile"):
            cmd += ["--profile", args["profile"]]
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env={**env, **args.get("environ", {})},
            capture_output=True,
            check=False,
        )
        outcome = run_case(case)
        assert proc.returncode == outcome.exit_code, proc.stderr.decode()
        if outcome.compiled is not None:
            written = {
                p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
            }
            assert written == outcome.compiled
        else:
            assert proc.stdout == outcome.files["diagnostics.json"]
            assert not out.exists()
