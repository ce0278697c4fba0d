"""The runtime depends only on the manifest contract: no module under runtime/ imports oml or compiler."""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
FORBIDDEN = ("oml", "compiler")


def imported_modules(source: Path) -> list[tuple[int, str]]:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def test_runtime_imports_nothing_from_oml_or_compiler() -> None:
    sources = sorted(RUNTIME.rglob("*.py"))
    assert len(sources) > 10
    violations = [
        f"{path.relative_to(RUNTIME.parent)}:{line}: imports {module}"
        for path in sources
        for line, module in imported_modules(path)
        if module.split(".")[0] in FORBIDDEN
    ]
    assert violations == []


def test_the_check_sees_violations(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text(
        "import oml.ast\nfrom compiler import lower\nimport importlib\nimportlib.import_module('compiler.x')\n"
    )
    assert [m for _, m in imported_modules(sample)] == [
        "oml.ast",
        "compiler",
        "importlib",
        "compiler.x",
    ]
