"""The import rules between the layers (DESIGN.md), checked on every module's source.

oml imports nothing of ours; the runtime imports nothing from oml or the compiler (it is installed
alone in sandboxes and on workers); the compiler imports from the runtime only its contract and
its public run entry (`osiris.runtime.cli`), catalogs (`osiris.runtime.catalog`) and run
records (`osiris.runtime.records`). Nothing anywhere imports the old top-level names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("oml", "compiler", "runtime", "grammar", "specs")
OLD_NAMES = set(LAYERS)
COMPILER_MAY_USE = (
    "osiris.runtime.contract",
    "osiris.runtime.cli",
    "osiris.runtime.catalog",
    "osiris.runtime.records",
)


def imported_modules(source: Path) -> list[tuple[int, str]]:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "osiris" or node.module.count(".") == 1:
                # `from osiris.runtime import engine` imports osiris.runtime.engine
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__", "files")
            and node.args
            and isinstance(node.args[0], ast.Constant | ast.JoinedStr)
        ):
            first = node.args[0]
            text = (
                first.value
                if isinstance(first, ast.Constant)
                else "".join(str(v.value) for v in first.values if isinstance(v, ast.Constant))
            )
            if isinstance(text, str):
                found.append((node.lineno, text))
    return sorted(found)


def violations(layer: str, allowed: callable[[str], bool]) -> list[str]:  # type: ignore[valid-type]
    sources = sorted((ROOT / layer).rglob("*.py"))
    assert sources, layer
    return [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sources
        for line, module in imported_modules(path)
        if not allowed(module)
    ]


def _ours(module: str) -> str | None:
    """The layer a module belongs to ('oml', 'runtime', ...), or None for third-party code."""
    parts = module.split(".")
    if parts[0] == "osiris" and len(parts) > 1:
        return parts[1]
    return parts[0] if parts[0] in OLD_NAMES else None


def test_oml_imports_nothing_of_ours_but_itself_and_the_grammar() -> None:
    assert violations("oml", lambda m: _ours(m) in (None, "oml", "grammar")) == []


def test_runtime_imports_nothing_from_oml_or_the_compiler() -> None:
    assert violations("runtime", lambda m: _ours(m) in (None, "runtime", "specs")) == []


def test_compiler_uses_only_the_runtime_contract_and_run_entry() -> None:
    def allowed(module: str) -> bool:
        if _ours(module) != "runtime":
            return True
        return any(module == m or module.startswith(m + ".") for m in COMPILER_MAY_USE)

    assert violations("compiler", allowed) == []


@pytest.mark.parametrize("folder", [*LAYERS, "tests", "bench", "scripts"])
def test_nothing_imports_the_old_top_level_names(folder: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in OLD_NAMES and path.name != "test_layering.py"
    ]
    assert bad == []


def test_the_runtime_runs_exactly_the_contracts_drivers() -> None:
    from osiris.runtime.contract.drivers import DRIVER_IDS
    from osiris.runtime.drivers.registry import DRIVERS, driver_class

    assert set(DRIVERS) == DRIVER_IDS
    for driver_id in DRIVERS:
        assert isinstance(driver_class(driver_id), type)


def test_the_check_sees_violations(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text(
        "import oml.ast\nfrom osiris.compiler import lower\nimport importlib\n"
        "importlib.import_module('compiler.x')\nfrom osiris.runtime.engine import X\n"
        "resources.files('osiris.runtime')\n"
    )
    assert [m for _, m in imported_modules(sample)] == [
        "oml.ast",
        "osiris.compiler.lower",
        "importlib",
        "compiler.x",
        "osiris.runtime.engine",
        "osiris.runtime",
    ]
    assert _ours("osiris.runtime.engine") == "runtime" and _ours("yaml") is None


def test_run_records_use_only_the_contract_and_the_run_folder_names() -> None:
    """The compiler imports osiris.runtime.records, so it stays as light as the contract."""

    def allowed(module: str) -> bool:
        if _ours(module) != "runtime":
            return _ours(module) is None
        return (
            module.startswith(("osiris.runtime.contract", "osiris.runtime.records"))
            or module == "osiris.runtime.rundir"
        )

    assert violations("runtime/records", allowed) == []
