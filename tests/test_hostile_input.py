"""Files written to hurt: alias bombs, huge files, control characters and inline secrets, through
the checker, every renderer, `omlc check`, `osiris run` and the editor's diagnostics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from oml_cases import CSV_TO_CSV, HEADER, alias_bomb, extract, pipeline

from osiris.compiler.frontend import check_text
from osiris.compiler.lsp.features import diagnose
from osiris.oml.render import render_json, render_text

# Raw control characters a terminal acts on (tab and newline excepted), C1 included.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def cli(entry: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """omlc or osiris as a user runs it, bounded: a hang fails the test instead of the suite."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; from osiris.compiler.cli import {entry}; sys.exit({entry}())",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=30,
    )


def rendered(text: str) -> tuple[str, str, str]:
    """The text, JSON and LSP renderings of a document's diagnostics."""
    result = check_text(text, "p.oml")
    as_text = render_text(result.diagnostics, {"p.oml": result.source})
    as_json = json.dumps(render_json(result.diagnostics), ensure_ascii=False)
    as_lsp = "\n".join(d.message for d in diagnose(text, "file:///tmp/p.oml"))
    return as_text, as_json, as_lsp


# -- alias bombs and size ---------------------------------------------------------------------


def test_alias_bomb_is_reported_at_the_alias() -> None:
    text = alias_bomb()
    result = check_text(text, "p.oml")
    (d,) = result.diagnostics
    assert d.code == "OML120" and d.span is not None
    # The aliases add 18, 171, 1,548 and 13,941 nodes per level: the 7th *l4 passes 100,000.
    line = text.splitlines()[d.span.start.line - 1]
    assert line.startswith("x-l5: &l5 [")
    assert text.encode()[d.span.start.byte : d.span.end.byte] == b"*l4"
    assert line[: d.span.start.column - 1].count("*l4") == 6
    assert "*l4" in d.summary and "100,000" in d.summary


def test_alias_bomb_stops_omlc_check_and_osiris_run(tmp_path: Path) -> None:
    (tmp_path / "bomb.oml").write_text(alias_bomb(), encoding="utf-8")
    check = cli("omlc_main", "check", "bomb.oml", cwd=tmp_path)
    assert check.returncode == 2 and "error[OML120]" in check.stdout, check.stdout + check.stderr
    run = cli("osiris_main", "run", "bomb.oml", cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "OML120" in run.stdout + run.stderr and "Traceback" not in run.stderr


def test_aliases_below_the_limit_expand_fully() -> None:
    # Four levels of nine: 7,380 nodes from aliases, every one of them in the tree.
    text = alias_bomb(levels=4) + "x-use: *l4\n"
    result = check_text(text, "p.oml")
    assert result.ok and result.document is not None
    (use,) = [e for e in result.document.extensions if e.key.value == "x-use"]
    assert use.value.to_python() == [[[[["lol"]] * 9] * 9] * 9] * 9


def test_a_huge_file_is_refused_before_parsing() -> None:
    result = check_text(CSV_TO_CSV + "x-pad: " + "a" * (4 * 1024 * 1024) + "\n", "p.oml")
    assert [d.code for d in result.diagnostics] == ["OML121"]


# -- inline secrets ---------------------------------------------------------------------------

SECRET = "hunter2-Secret"


def test_inline_secret_is_masked_in_every_renderer() -> None:
    # The secret shares its line with another diagnostic's excerpt (the 'tabel' typo).
    text = pipeline(
        extract()
        + "- id: load\n  component: mysql.writer\n  mode: write\n  needs: [src]\n"
        + f"  config: {{table: t, password: {SECRET}, tabel: x}}\n"
    )
    as_text, as_json, as_lsp = rendered(text)
    assert "OML024" in as_text and "OML017" in as_text
    assert as_text.count("password: ********, tabel: x") >= 2  # OML024's excerpt and OML017's
    for shown in (as_text, as_json, as_lsp):
        assert SECRET not in shown


def test_masked_secret_keeps_the_caret_under_the_right_text() -> None:
    text = pipeline(
        extract()
        + "- id: load\n  component: mysql.writer\n  mode: write\n  needs: [src]\n"
        + f"  config: {{password: {SECRET}, tabel: x}}\n"
    )
    as_text, _, _ = rendered(text)
    lines = as_text.splitlines()
    at = next(i for i, line in enumerate(lines) if "OML017" in line)
    source, caret = lines[at + 2], lines[at + 3]
    start = caret.index("^")
    assert source[start : start + caret.count("^")] == "tabel"


# -- control characters -----------------------------------------------------------------------


def test_control_characters_are_escaped_in_every_renderer() -> None:
    # A raw BEL + ESC sequence in the file (a YAML error), and ESC/CSI through quoted escapes in
    # a key and a component name that the diagnostics quote.
    raw = CSV_TO_CSV + "x-raw: \a\x1b[2J\n"
    quoted = CSV_TO_CSV.replace("filesystem.csv_writer", '"csv\\e]0;pwned\\a\\x9b"').replace(
        "needs: [src]", 'needs: [src]\n    "\\e[31mkey": 1'
    )
    for text in (raw, quoted):
        for shown in rendered(text):
            assert not RAW_CONTROL.search(shown), repr(shown)
    as_text, _, _ = rendered(raw)
    assert "x-raw: \\x07\\x1b[2J" in as_text  # the excerpt
    as_text, as_json, as_lsp = rendered(quoted)
    for shown in (as_text, as_lsp, json.loads(as_json)["diagnostics"][0]["summary"]):
        assert "unknown component 'csv\\x1b]0;pwned\\x07\\x9b'" in shown
    assert "unknown key '\\x1b[31mkey'" in as_text


def test_omlc_check_does_not_echo_control_characters(tmp_path: Path) -> None:
    (tmp_path / "p.oml").write_text(CSV_TO_CSV + "x-raw: \x1b[2J\a\n", encoding="utf-8")
    proc = cli("omlc_main", "check", "p.oml", cwd=tmp_path)
    assert proc.returncode == 2 and "\\x1b[2J\\x07" in proc.stdout
    assert not RAW_CONTROL.search(proc.stdout + proc.stderr)


def test_control_characters_in_names_are_errors() -> None:
    cases = {
        'name: "t\\0"': "the pipeline name contains the control character \\x00",
        'name: "t\\e[2J"': "the pipeline name contains the control character \\x1b",
        'name: "a\\u202Eb"': "the pipeline name contains the control character \\u202e",
    }
    for name, summary in cases.items():
        result = check_text(CSV_TO_CSV.replace("name: t", name), "p.oml")
        assert [(d.code, d.summary) for d in result.diagnostics] == [("OML122", summary)]
    text = HEADER + 'params: {"a\\tb": 1}\nprofiles: {"p\\0": {}}\n' + CSV_TO_CSV[len(HEADER) :]
    found = [d for d in check_text(text, "p.oml").diagnostics if d.code == "OML122"]
    assert [d.summary for d in found] == [
        "a param name contains the control character \\t",
        "a profile name contains the control character \\x00",
    ]
    inputs = CSV_TO_CSV.replace("needs: [src]", 'inputs: {"d\\0f": "${src.df}"}')
    assert "OML122" in {d.code for d in check_text(inputs, "p.oml").diagnostics}
    # A step id allows letters, digits, '-' and '_' only: a trailing newline is not "only".
    step = pipeline(extract(step_id='"src\\n"'))
    assert "OML012" in {d.code for d in check_text(step, "p.oml").diagnostics}
