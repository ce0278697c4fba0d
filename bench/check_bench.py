"""Benchmark `omlc check`: in process (10 and 1,000 generated steps) and whole-process cold start.

Targets: 10 steps ≤ 5 ms, 1,000 steps ≤ 500 ms, `omlc check` cold start ≤ 300 ms (p50).
Baselines measured in the same run, to read the numbers against this machine's speed:
PyYAML safe_load of the same text (in process) and a bare `python -c pass` / `import yaml`
process (cold start).

Usage: python bench/check_bench.py [--repeat N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import (
    ROOT,
    clean_env,
    generate_pipeline,
    omlc_cmd,
    p50,
    row,
    time_calls,
    time_process,
)

TARGETS = {10: 0.005, 1000: 0.500}
COLD_TARGET = 0.300


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=0, help="repeats (default: by size)")
    parser.add_argument("--profile", action="store_true", help="cProfile the 1,000-step check")
    args = parser.parse_args()

    import yaml

    from osiris.compiler.check_sql import query_tables
    from osiris.compiler.frontend import check_text

    print(f"check benchmark (python {sys.version.split()[0]}, p50)")
    missed = []
    print("in process (warm: registry loaded, first call excluded):")
    for steps, target in TARGETS.items():
        text = generate_pipeline(steps)
        result = check_text(text, "bench.oml")
        errors = [d for d in result.diagnostics if d.severity.value == "error"]
        assert not errors, [d.summary for d in errors]
        repeat = args.repeat or (200 if steps <= 10 else 15)
        check = p50(time_calls(lambda t=text: check_text(t, "bench.oml"), repeat=repeat))
        base = p50(time_calls(lambda t=text: yaml.safe_load(t), repeat=repeat))
        row(f"check {steps:>5} steps", check, target)
        row(f"  baseline: yaml.safe_load {steps:>5} steps", base, note=f"ratio {check / base:.1f}x")

        def cold(t: str = text) -> None:
            query_tables.cache_clear()  # each query parsed by DuckDB again, as for a new file
            check_text(t, "bench.oml")

        row(
            f"  check {steps:>5} steps, SQL parse cache cleared",
            p50(time_calls(cold, repeat=repeat)),
        )
        if check > target:
            missed.append(f"check {steps} steps")

    print("whole process (10 runs each, 1 warm-up):")
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Path(tmp) / "pipeline.oml"
        pipeline.write_text(
            (ROOT / "golden" / "mysql_duckdb_supabase" / "pipeline.oml").read_text("utf-8")
        )
        env = clean_env()
        cold = p50(
            time_process([*omlc_cmd(), "check", str(pipeline)], repeat=10, cwd=Path(tmp), env=env)
        )
        bare = p50(time_process([sys.executable, "-c", "pass"], repeat=10, env=env))
        imp = p50(time_process([sys.executable, "-c", "import yaml"], repeat=10, env=env))
        big = Path(tmp) / "big.oml"
        big.write_text(generate_pipeline(1000))
        cold_big = p50(
            time_process([*omlc_cmd(), "check", str(big)], repeat=5, cwd=Path(tmp), env=env)
        )
    row("omlc check (3 steps) cold start", cold, COLD_TARGET)
    row("  baseline: python -c pass", bare, note=f"ratio {cold / bare:.1f}x")
    row("  baseline: python -c 'import yaml'", imp, note=f"ratio {cold / imp:.1f}x")
    row("omlc check (1,000 steps) whole process", cold_big)
    if cold > COLD_TARGET:
        missed.append("cold start")

    if args.profile:
        text = generate_pipeline(1000)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            check_text(text, "bench.oml")
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    print("targets missed: " + (", ".join(missed) if missed else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
