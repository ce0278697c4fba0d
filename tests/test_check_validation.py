"""`--validation warn|strict|off` on check and compile: the runtime's switch and schemas, and the `off` rollback path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from oml_cases import CSV_TO_CSV

from osiris.compiler.connections import index_connections
from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import SourceText
from osiris.runtime.connections import ConnectionResolver
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.secrets import Redactor

SECRET = "Literal-Secret-4b1d-conns"
# Each alias breaks its family's schema one way; `fine` does not.
CONNECTIONS = textwrap.dedent(
    f"""\
    version: 1
    connections:
      mysql:
        nouser: {{host: h, database: d}}
        badport: {{host: h, database: d, user: u, port: "three"}}
        literal: {{host: h, database: d, user: u, password: {SECRET}}}
        typo: {{host: h, database: d, user: u, pasword: "${{PW}}"}}
        fine: {{host: h, database: d, user: u, port: "${{PORT}}", password: "${{PW}}"}}
      postgres:
        neither: {{sslmode: disable}}
        sslvar: {{host: h, database: d, user: u, sslmode: "${{PGSSL}}"}}
        badssl: {{host: h, database: d, user: u, sslmode: secure}}
      filesystem:
        nodir: {{default: true}}
    """
)
BROKEN = {
    "@mysql.nouser": "OML105",
    "@mysql.badport": "OML105",
    "@mysql.literal": "OML101",
    "@mysql.typo": "OML104",
    "@postgres.neither": "OML105",
    "@postgres.badssl": "OML105",
    "@filesystem.nodir": "OML105",
}


def _index(validation: str) -> list[tuple[str, str, str]]:
    diagnostics = DiagnosticList()
    index_connections(
        SourceText("osiris_connections.yaml", CONNECTIONS),
        diagnostics,
        validation=validation,  # type: ignore[arg-type]
    )
    return [(d.code, d.severity.value, d.summary) for d in diagnostics.sorted()]


def test_schema_problems_follow_the_validation_mode() -> None:
    warn, strict, off = _index("warn"), _index("strict"), _index("off")
    assert sorted(code for code, _, _ in warn) == sorted(BROKEN.values())
    assert {severity for _, severity, _ in warn} == {"warning"}
    assert [(c, s) for c, s, _ in strict] == [(c, "error") for c, _, _ in warn]
    assert off == []
    summaries = "\n".join(summary for _, _, summary in warn)
    assert (
        "connections.mysql.nouser does not match the mysql connection schema: missing "
        "required field(s): user" in summaries
    )
    assert "needs dsn or host, database, user" in summaries
    assert "field port" in summaries and "field sslmode" in summaries
    assert "three" not in summaries and "secure" not in summaries.replace("enum", "")
    assert SECRET not in summaries
    assert "sslvar" not in summaries and "fine" not in summaries  # ${VAR}: known at run time


def test_check_and_run_agree_on_each_mode(tmp_path: Path) -> None:
    """What check calls an error under strict, the runtime refuses under strict; under off both
    accept every alias (the rollback path)."""
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(CONNECTIONS)
    env = {"PW": "secret-from-env", "PORT": "3306", "PGSSL": "disable"}
    for mode in ("strict", "warn", "off"):
        resolver = ConnectionResolver(path, redactor=Redactor(), environ=env, validation=mode)
        for ref in [*BROKEN, "@mysql.fine", "@postgres.sslvar"]:
            if mode == "strict" and ref in BROKEN:
                with pytest.raises(ConfigurationError):
                    resolver.resolve(ref)
                continue
            resolved = resolver.resolve(ref)
            assert bool(resolved.warnings) == (mode == "warn" and ref in BROKEN), (mode, ref)


def omlc(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    clean["OSIRIS_CACHE_DIR"] = os.environ.get("OSIRIS_CACHE_DIR", "")
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import omlc_main; sys.exit(omlc_main())",
            *args,
        ],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
    )


def test_the_off_rollback_path_on_the_command_line(tmp_path: Path) -> None:
    """A connections file with a schema problem: strict fails check and compile, warn passes
    with warnings, off (flag or $OSIRIS_VALIDATION) passes without them."""
    (tmp_path / "osiris_connections.yaml").write_text(CONNECTIONS)
    (tmp_path / "p.oml").write_text(CSV_TO_CSV)
    strict = omlc("check", "p.oml", "--validation", "strict", "--format", "json", cwd=tmp_path)
    assert strict.returncode == 2
    report = json.loads(strict.stdout)
    assert report["error_count"] == len(BROKEN)
    assert {d["code"] for d in report["diagnostics"]} == {"OML101", "OML104", "OML105"}
    by_env = omlc("check", "p.oml", cwd=tmp_path, env={"OSIRIS_VALIDATION": "strict"})
    assert by_env.returncode == 2 and "error[OML105]" in by_env.stdout
    warn = omlc("check", "p.oml", cwd=tmp_path)
    assert warn.returncode == 0 and "warning[OML105]" in warn.stdout
    off = omlc("check", "p.oml", "--validation", "off", cwd=tmp_path)
    assert off.returncode == 0 and "OML10" not in off.stdout
    off_env = omlc("check", "p.oml", cwd=tmp_path, env={"OSIRIS_VALIDATION": "off"})
    assert off_env.returncode == 0 and "OML10" not in off_env.stdout
    compiled = omlc("p.oml", "-o", "build", "--validation", "strict", cwd=tmp_path)
    assert compiled.returncode == 2 and not (tmp_path / "build").exists()
    compiled = omlc("p.oml", "-o", "build", "--validation", "off", cwd=tmp_path)
    assert compiled.returncode == 0 and (tmp_path / "build" / "manifest.yaml").exists()
    bad = omlc("check", "p.oml", cwd=tmp_path, env={"OSIRIS_VALIDATION": "loud"})
    assert bad.returncode == 5 and "OSIRIS_VALIDATION" in bad.stderr
    for proc in (strict, by_env, warn, off, bad):
        assert SECRET not in proc.stdout + proc.stderr
