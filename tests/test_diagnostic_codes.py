"""Every emitted diagnostic code is documented in docs/diagnostics.md, and every documented one is
produced by a case whose diagnostics a test compares exactly (CHECK_CASES, COMPILE_CASES,
FILE_CASES, SCHEMA_CASES, golden)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from oml_cases import CHECK_CASES
from test_check import FILE_CASES
from test_check_schema import SCHEMA_CASES
from test_compile import COMPILE_CASES

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"\bOML\d{3}\b")


def documented() -> set[str]:
    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    return set(re.findall(r"^### (OML\d{3}) — ", text, flags=re.MULTILINE))


def emitted_in_source() -> set[str]:
    found: set[str] = set()
    for folder in ("oml", "compiler"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(CODE.findall(path.read_text(encoding="utf-8")))
    return found


def codes_under_test() -> set[str]:
    """Codes in the expected diagnostics of run cases, never mere mentions in test code."""
    cases = set().union(
        *(c[2] for c in CHECK_CASES),
        *(c[5] for c in COMPILE_CASES),
        *(c[2] for c in FILE_CASES),
        *(c[2] for c in SCHEMA_CASES),
    )
    golden: set[str] = set()
    for path in (ROOT / "golden").glob("*/diagnostics.json"):
        report = json.loads(path.read_text(encoding="utf-8"))
        golden |= {d["code"] for d in report["diagnostics"]}
    return cases | golden


def test_every_emitted_code_is_documented() -> None:
    missing = emitted_in_source() - documented()
    assert not missing, f"undocumented diagnostic codes: {sorted(missing)}"


def test_every_documented_code_is_emitted_and_tested() -> None:
    docs = documented()
    assert not docs - emitted_in_source(), (
        f"documented but never emitted: {sorted(docs - emitted_in_source())}"
    )
    assert not docs - codes_under_test(), (
        f"documented but never tested: {sorted(docs - codes_under_test())}"
    )
