"""`osiris init`, `osiris run` and `osiris demo` end to end, as a new user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent


def osiris(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_init_scaffolds_a_project_that_runs(tmp_path: Path) -> None:
    init = osiris("init", "proj", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    project = tmp_path / "proj"
    for rel in (
        "pipeline.oml",
        "osiris_connections.yaml",
        ".env.example",
        ".gitignore",
        "data/orders.csv",
        "data/customers.csv",
    ):
        assert (project / rel).is_file(), rel
    again = osiris("init", "proj", cwd=tmp_path)
    assert again.returncode == 0 and "kept" in again.stdout  # never overwrites a user's files

    run = osiris("run", "pipeline.oml", "--format", "json", cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["status"] == "ok" and len(summary["steps"]) == 6
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "manifest.yaml").is_file() and (run_dir / "events.jsonl").is_file()
    with duckdb.connect(str(project / "output" / "warehouse.duckdb"), read_only=True) as con:
        warehouse = con.execute("SELECT count(*), sum(revenue) FROM revenue_by_country").fetchone()
        parquet = con.execute(
            "SELECT count(*), sum(revenue) FROM read_parquet(?)",
            [str(project / "output" / "revenue.parquet")],
        ).fetchone()
        expected = con.execute(
            "SELECT count(*), sum(revenue) FROM (SELECT c.country, date_trunc('month', o.order_date), "
            "CAST(sum(o.quantity * o.unit_price) AS DECIMAL(12,2)) AS revenue FROM read_csv(?) o "
            "JOIN read_csv(?) c USING (customer_id) WHERE o.status <> 'cancelled' GROUP BY ALL)",
            [str(project / "data" / "orders.csv"), str(project / "data" / "customers.csv")],
        ).fetchone()
    assert warehouse == parquet == expected


def test_run_params_and_error_exit_codes(tmp_path: Path) -> None:
    assert osiris("init", ".", cwd=tmp_path).returncode == 0
    later = osiris(
        "run", "pipeline.oml", "--param", "since=2024-05-01", "--format", "json", cwd=tmp_path
    )
    assert later.returncode == 0, later.stdout + later.stderr
    with duckdb.connect() as con:
        (first_month,) = con.execute(
            "SELECT min(month) FROM read_parquet(?)", [str(tmp_path / "output" / "revenue.parquet")]
        ).fetchone()
    assert str(first_month) >= "2024-05-01"
    assert osiris("run", "pipeline.oml", "--param", "nope=1", cwd=tmp_path).returncode == 3
    (tmp_path / "bad.oml").write_text(
        (tmp_path / "pipeline.oml").read_text().replace("needs: [revenue]", "needs: [revnue]", 1)
    )
    bad = osiris("run", "bad.oml", cwd=tmp_path)
    assert bad.returncode == 2 and "OML032" in bad.stdout
    missing_var = (
        (tmp_path / "osiris_connections.yaml")
        .read_text()
        .replace("${OSIRIS_WAREHOUSE:-output/warehouse.duckdb}", "${WAREHOUSE_PATH}")
    )
    (tmp_path / "osiris_connections.yaml").write_text(missing_var)
    unset = {k: v for k, v in os.environ.items() if k != "WAREHOUSE_PATH"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            "run",
            "pipeline.oml",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=unset,
    )
    assert proc.returncode == 5 and "WAREHOUSE_PATH" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_demo_runs_on_a_fresh_directory(tmp_path: Path) -> None:
    demo = osiris("demo", "--dir", "d", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "top 5 country/month groups" in demo.stdout
    assert (tmp_path / "d" / "output" / "revenue.parquet").is_file()
    (report,) = [line for line in demo.stdout.splitlines() if line.startswith("report: ")]
    assert report.startswith("report: cd d && ") and " runs report last --open" in report
    shown = osiris("runs", "report", "last", cwd=tmp_path / "d")  # what it says works there
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert list((tmp_path / "d" / "runs").glob("*/report.html"))


def test_compile_takes_out_as_the_plan_writes_it(tmp_path: Path) -> None:
    """`osiris compile FILE --out DIR`, the same as -o/--output."""
    assert osiris("init", ".", cwd=tmp_path).returncode == 0
    proc = osiris("compile", "pipeline.oml", "--out", "build", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (tmp_path / "build" / "manifest.yaml").is_file()


def test_init_next_line_quotes_a_path_a_shell_would_split(tmp_path: Path) -> None:
    init = osiris("init", "my proj ü", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "Next: cd 'my proj ü' && osiris run pipeline.oml" in init.stdout


def test_init_json_lists_created_and_kept_files(tmp_path: Path) -> None:
    first = osiris("init", "proj", "--format", "json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["valid"] is True and report["exit_code"] == 0 and report["diagnostics"] == []
    assert str(Path("proj") / "pipeline.oml") in report["created"] and report["kept"] == []
    assert report["next"] == "cd proj && osiris run pipeline.oml"
    again = json.loads(osiris("init", "proj", "--format", "json", cwd=tmp_path).stdout)
    assert again["created"] == [] and sorted(again["kept"]) == sorted(report["created"])
    (tmp_path / "file").write_text("x")
    bad = osiris("init", "file", "--format", "json", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr == ""
    error = json.loads(bad.stdout)
    assert error["valid"] is False and error["exit_code"] == 2
    assert "not a directory" in error["error"]


def test_init_error_prefix_is_osiris(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    bad = osiris("init", "file", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("osiris init: error:")


def test_demo_json_is_the_run_summary(tmp_path: Path) -> None:
    demo = osiris("demo", "--dir", "d", "--format", "json", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    summary = json.loads(demo.stdout)  # exactly one JSON document on stdout
    assert summary["status"] == "succeeded" or summary["exit_code"] == 0
    assert {"run_id", "status", "exit_code", "run_dir", "pipeline", "steps"} <= summary.keys()
    assert summary["exit_code"] == 0 and summary["steps"]
    assert (tmp_path / "d" / "output" / "revenue.parquet").is_file()
