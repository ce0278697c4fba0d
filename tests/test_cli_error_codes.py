"""Every code a command-line error envelope carries (`error_envelope(..., code="usage")`,
`print_error(..., code=...)`) is documented in docs/diagnostics.md, and every documented one is used."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The functions that put a command-line error code into a JSON envelope.
ENVELOPE_FUNCTIONS = {"error_envelope", "print_error"}


def used_codes() -> dict[str, list[str]]:
    """code -> where it is passed as a literal (file:line), over oml/, compiler/ and runtime/."""
    found: dict[str, list[str]] = {}
    for folder in ("oml", "compiler", "runtime"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name not in ENVELOPE_FUNCTIONS:
                    continue
                for keyword in node.keywords:
                    if keyword.arg != "code":
                        continue
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    if isinstance(keyword.value, ast.Name) and keyword.value.id == "code":
                        continue  # print_error handing its own code on to error_envelope
                    assert isinstance(keyword.value, ast.Constant), (
                        f"{where}: code= must be a string literal so that it can be checked"
                    )
                    found.setdefault(str(keyword.value.value), []).append(where)
    return found


def documented_codes() -> dict[str, str]:
    """code -> exit code, from the table of docs/diagnostics.md's "Command-line errors"."""
    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    section = re.search(r"^## Command-line errors\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/diagnostics.md has no 'Command-line errors' section"
    rows = re.findall(r"^\| `([a-z][a-z-]*)` \| .+ \| (\d+) \|$", section.group(1), re.M)
    return dict(rows)


def test_the_scan_finds_the_envelope_calls() -> None:
    # guards the scan itself: the usage error every command can give is among them
    assert "usage" in used_codes()


def test_every_command_line_error_code_is_documented() -> None:
    missing = {c: w for c, w in used_codes().items() if c not in documented_codes()}
    assert not missing, f"undocumented command-line error codes: {missing}"


def test_every_documented_command_line_error_code_is_used() -> None:
    unused = set(documented_codes()) - set(used_codes())
    assert not unused, f"documented but never used: {sorted(unused)}"


def test_documented_exit_codes_are_the_ones_passed() -> None:
    from osiris.runtime.contract.exits import ExitCode

    expected = {"usage": ExitCode.INVALID, "unknown-component": ExitCode.INVALID}
    expected["configuration"] = ExitCode.CONFIGURATION
    for code, exit_code in documented_codes().items():
        if code in expected:
            assert int(exit_code) == int(expected[code]), code
