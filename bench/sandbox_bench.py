"""Benchmark: the demo pipeline with --engine local against --engine local-sandbox, cold (no
wheel, no venv: a fresh cache directory) and warm (the cached venv).

Usage: python bench/sandbox_bench.py [--repeat N]   (default 3; the cold run is measured once)
Each run is its own `oml-run` process; the figures are wall-clock seconds (median of the repeats)
and the overhead of local-sandbox over local. Needs network or a pip cache for the cold venv.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = "from osiris.compiler.cli import osiris_main; osiris_main()"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osiris-sandbox-bench-") as tmp:
        root = Path(tmp)
        project = root / "demo"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
        env["OSIRIS_CACHE_DIR"] = str(root / "cache")  # cold: no wheel, no venv yet
        subprocess.run([sys.executable, "-c", CLI, "init", str(project)], check=True, env=env,
                       capture_output=True)  # fmt: skip
        subprocess.run([sys.executable, "-c", CLI, "compile", "pipeline.oml", "-o", "build"],
                       cwd=project, check=True, env=env, capture_output=True)  # fmt: skip

        def run(engine: str) -> float:
            shutil.rmtree(project / "runs", ignore_errors=True)
            cmd = [sys.executable, "-m", "osiris.runtime.cli", "build", "--engine", engine]
            return timed([*cmd, "--format", "json"], project, env)

        cold = run("local-sandbox")
        pairs = [(run("local"), run("local-sandbox")) for _ in range(args.repeat)]  # alternating
        local = statistics.median(p[0] for p in pairs)
        warm = statistics.median(p[1] for p in pairs)
    print(f"demo pipeline, {args.repeat} repeats (median), wall-clock seconds")
    print(f"  local                       {local:7.2f}")
    print(f"  local-sandbox, warm venv    {warm:7.2f}   overhead {warm - local:+.2f} s")
    print(f"  local-sandbox, cold (build) {cold:7.2f}   overhead {cold - local:+.2f} s")


if __name__ == "__main__":
    main()
