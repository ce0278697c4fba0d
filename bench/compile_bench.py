"""Benchmark the full compile (check -> params -> lower -> emit), in process and as `omlc`.

Targets: 10 steps ≤ 10 ms, 1,000 steps ≤ 1 s (in process, p50); whole-process `omlc FILE -o DIR`
of a 3-step pipeline ≤ 350 ms (p50 of 10). Baseline, measured in the same run: the previous
Osiris (PyPI osiris-pipeline==0.5.7) `osiris compile` of the same pipeline.

The 0.5.7 baseline lives in /tmp/osiris057-venv (created and installed on first use; the
comparison is skipped with a note when that is not possible, e.g. offline). What 0.5.7 needs:
no project files at all: `osiris compile PIPELINE --compile force` in any directory writes
./build/pipelines/<profile>/<name>/<hash>/{manifest.yaml,cfg/,plan.json,...} and ./.osiris/index
(its --out flag is ignored), so every run gets a fresh scratch directory.

Usage: python bench/compile_bench.py [--repeat N] [--profile] [--no-baseline]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import (
    ROOT,
    clean_env,
    generate_pipeline,
    ms,
    omlc_cmd,
    p50,
    row,
    time_calls,
    time_process,
)

TARGETS = {10: 0.010, 1000: 1.0}
PROCESS_TARGET = 0.350
OLD_VENV = Path("/tmp/osiris057-venv")
OLD_PACKAGE = "osiris-pipeline==0.5.7"
THREE_STEPS = ROOT / "golden" / "mysql_duckdb_supabase" / "pipeline.oml"


def ensure_old_osiris() -> tuple[Path | None, str]:
    """The 0.5.7 `osiris` executable, installing it once; (None, why) when it is unavailable."""
    exe = OLD_VENV / "bin" / "osiris"
    if exe.exists():
        return exe, "cached venv"
    try:
        if not (OLD_VENV / "bin" / "python").exists():
            subprocess.run(
                [sys.executable, "-m", "venv", "--clear", str(OLD_VENV)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        subprocess.run(
            [
                str(OLD_VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                OLD_PACKAGE,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as err:
        detail = getattr(err, "stderr", b"") or b""
        return None, f"could not install {OLD_PACKAGE}: {err} {detail.decode()[-300:]}"
    return (exe, "installed now") if exe.exists() else (None, "no osiris script after install")


def time_old_compile(exe: Path, pipeline: Path, repeat: int) -> list[float]:
    samples = []
    env = clean_env()
    for i in range(repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            shutil.copy(pipeline, work / "pipeline.oml")
            start = time.perf_counter()
            proc = subprocess.run(
                [str(exe), "compile", "pipeline.oml", "--compile", "force"],
                cwd=work,
                env=env,
                capture_output=True,
                check=False,
            )
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"osiris 0.5.7 compile failed: {proc.stdout.decode()[-500:]}")
            if not list(work.glob("build/pipelines/*/*/*/manifest.yaml")):
                raise RuntimeError("osiris 0.5.7 compile wrote no manifest.yaml")
            if i:
                samples.append(elapsed)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile the 1,000-step compile")
    parser.add_argument("--no-baseline", action="store_true", help="skip osiris 0.5.7")
    args = parser.parse_args()

    from osiris.compiler.compile import compile_text

    print(f"compile benchmark (python {sys.version.split()[0]}, p50)")
    missed = []
    print("in process (warm, environ={}, first call excluded):")
    for steps, target in TARGETS.items():
        text = generate_pipeline(steps)
        result = compile_text(text, "bench.oml", environ={})
        assert result.exit_code == 0, [d.summary for d in result.diagnostics]
        repeat = args.repeat or (100 if steps <= 10 else 7)
        t = p50(time_calls(lambda x=text: compile_text(x, "bench.oml", environ={}), repeat=repeat))
        row(f"compile {steps:>5} steps", t, target)
        if t > target:
            missed.append(f"compile {steps} steps")

    print("whole process, 3-step pipeline (10 runs, 1 warm-up):")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(THREE_STEPS, work / "pipeline.oml")
        new = p50(
            time_process(
                [*omlc_cmd(), "pipeline.oml", "-o", "build"], repeat=10, cwd=work, env=clean_env()
            )
        )
    row("omlc pipeline.oml -o build", new, PROCESS_TARGET)
    if new > PROCESS_TARGET:
        missed.append("omlc whole process")

    if args.no_baseline:
        print("  baseline osiris 0.5.7: skipped (--no-baseline)")
    else:
        exe, how = ensure_old_osiris()
        if exe is None:
            print(f"  baseline osiris 0.5.7: SKIPPED - {how}")
        else:
            try:
                old = p50(time_old_compile(exe, THREE_STEPS, 10))
            except RuntimeError as err:
                print(f"  baseline osiris 0.5.7: SKIPPED - {err}")
            else:
                row(f"  baseline: osiris 0.5.7 compile ({how})", old)
                print(f"  ratio omlc / osiris 0.5.7: {new / old:.2f}x  ({ms(new)} vs {ms(old)})")

    if args.profile:
        text = generate_pipeline(1000)
        profiler = cProfile.Profile()
        profiler.enable()
        compile_text(text, "bench.oml", environ={})
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)

    print("targets missed: " + (", ".join(missed) if missed else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
