#!/usr/bin/env python3
"""Developer entry point: sets up .venv on first use, then runs the demo, tests, lint or benches.

Only the standard library is used here so that `python3 dev.py demo` works on a fresh machine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".osiris-install-stamp"


def _stamp(extras: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(extras.encode())
    return digest.hexdigest()


def ensure_env(extras: str = "dev") -> None:
    """Create .venv and (re)install the project when pyproject.toml or the extras changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"Osiris needs Python >= 3.11 (this is {sys.version.split()[0]})")
    if not PY.exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    # A dev install is a superset of every other, so it satisfies any request.
    current = STAMP.read_text().strip() if STAMP.exists() else ""
    if current in (_stamp(extras), _stamp("dev")):
        return
    log = VENV / "install.log"
    print(f"[dev] installing osiris-oml[{extras}] (editable) into .venv (log: {log})", flush=True)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    with log.open("w", encoding="utf-8") as out:
        for command in (
            [*pip, "--upgrade", "pip", "setuptools", "wheel"],
            [*pip, "-e", f"{ROOT}[{extras}]"],
        ):
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                out.close()
                sys.stderr.write(log.read_text(encoding="utf-8", errors="replace")[-4000:])
                sys.exit(f"[dev] installing failed; the whole log is in {log}")
    STAMP.write_text(_stamp(extras) + "\n")


def typecheck_args() -> list[str]:
    """mypy cannot follow the editable install's import hook, so it reads the osiris.* packages
    through a tree of links named as installed: .venv/typecheck/osiris/<pkg> -> <pkg>/."""
    tree = VENV / "typecheck" / "osiris"
    tree.mkdir(parents=True, exist_ok=True)
    for name in ("oml", "grammar", "specs", "compiler", "runtime"):
        link = tree / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    os.environ["MYPYPATH"] = str(tree.parent)
    return ["-p", "osiris.oml", "-p", "osiris.compiler", "-p", "osiris.runtime"]


def run(*cmd: str) -> int:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONHASHSEED", "random")
    return subprocess.run(list(cmd), cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    task, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if task == "demo":
        ensure_env("all")
        code = run(str(BIN / "osiris"), "demo", *rest)
        print(
            f"[dev] the osiris, omlc, oml-run and oml-lsp commands are in {BIN.relative_to(ROOT)}/"
        )
        return code
    if task == "test":
        ensure_env("dev")
        return run(str(PY), "-m", "pytest", *rest)
    if task == "lint":
        ensure_env("dev")
        code = run(str(BIN / "ruff"), "check", ".")
        code |= run(str(BIN / "ruff"), "format", "--check", ".")
        return code | run(str(BIN / "mypy"), *typecheck_args())
    if task == "fmt":
        ensure_env("dev")
        run(str(BIN / "ruff"), "check", "--fix", ".")
        return run(str(BIN / "ruff"), "format", ".")
    if task == "golden":
        ensure_env("dev")
        return run(str(PY), "-m", "pytest", "tests/test_golden.py", "--snapshot-update", *rest)
    if task == "bench":
        ensure_env("dev")
        code = 0
        for script in sorted((ROOT / "bench").glob("*_bench.py")):
            if not rest or script.stem in rest:
                code |= run(str(PY), str(script))
        return code
    if task == "env":
        ensure_env("dev")
        return 0
    print("usage: python3 dev.py demo|test|lint|fmt|golden|bench|env [args...]")
    return 0 if task == "help" else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
