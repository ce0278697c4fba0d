"""bench/llm_eval.py's dry run: the same harness (real SDK, real front end) on scripted answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCEPTANCE = ["accept-supabase-append", "accept-supabase-merge", "accept-mysql-supabase-merge"]


def test_eval_dry_run_measures_the_acceptance_prompts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "llm_eval.py"), "--json", "--only", *ACCEPTANCE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["live"] is False
    results = {r["id"]: r for r in report["results"]}
    assert list(results) == ACCEPTANCE
    # scripted: the first is right as given, the second has legacy keys (fixed by rule, one
    # call), the third an invented field (one repair call)
    append, merge, mysql = (results[i] for i in ACCEPTANCE)
    assert (append["first_try"], append["model_calls"]) == (True, 1)
    assert (merge["first_try"], merge["after_fixes"], merge["model_calls"]) == (False, True, 1)
    assert merge["fixed_by_rule"] == ["OML005"]
    assert (mysql["after_fixes"], mysql["after_repair"], mysql["model_calls"]) == (False, True, 2)
    assert all(r["tables_sent"] >= 1 and r["input_tokens"] > 0 for r in results.values())
    assert report["totals"]["model_calls"] == 4 and report["totals"]["cache_read_tokens"] > 0
