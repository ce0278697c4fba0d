"""Every emitted diagnostic code is documented in docs/diagnostics.md, and every documented one is tested."""

from __future__ import annotations

import re
from pathlib import Path

from oml_cases import CHECK_CASES
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
    cases = set().union(*(c[2] for c in CHECK_CASES), *(c[5] for c in COMPILE_CASES))
    explicit: set[str] = set()
    for name in ("test_check.py", "test_compile.py"):
        explicit |= set(CODE.findall((ROOT / "tests" / name).read_text(encoding="utf-8")))
    return cases | explicit


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
