"""oml-run end to end in subprocesses: exit codes, JSON output, no tracebacks, redaction, concurrency."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from rich.console import Console
from runtime_helpers import only_run_dir, run_cli, step, write_connections, write_manifest

from osiris.runtime import cli
from osiris.runtime.console import LiveView
from osiris.runtime.runner import run_manifest

DATA = Path(__file__).resolve().parent.parent / "compiler" / "templates" / "project" / "data"


def demo_project(project: Path) -> Path:
    """The demo: orders + customers CSV -> join/group by -> Parquet, DuckDB and CSV."""
    for name in ("orders.csv", "customers.csv"):
        (project / name).write_bytes((DATA / name).read_bytes())
    write_connections(
        project, "version: 1\nconnections:\n  duckdb:\n    local: {path: warehouse.duckdb}\n"
    )
    query = (
        "SELECT c.country, c.segment, count(*) AS orders, round(sum(o.quantity * o.unit_price), 2) AS revenue "
        'FROM "extract-orders" o JOIN "extract-customers" c USING (customer_id) '
        "WHERE o.status IN ('paid', 'shipped') GROUP BY ALL ORDER BY ALL"
    )
    return write_manifest(
        project / "build",
        [
            step("extract-orders", "filesystem.csv_extractor", "extractor", {"path": "orders.csv"}),
            step(
                "extract-customers",
                "filesystem.csv_extractor",
                "extractor",
                {"path": "customers.csv"},
            ),
            step(
                "revenue",
                "duckdb.processor",
                "processor",
                {"query": query},
                needs=["extract-orders", "extract-customers"],
            ),
            step(
                "to-parquet",
                "filesystem.parquet_writer",
                "writer",
                {"path": "out/revenue.parquet"},
                needs=["revenue"],
            ),
            step(
                "to-duckdb",
                "duckdb.writer",
                "writer",
                {"table": "revenue", "write_mode": "replace"},
                needs=["revenue"],
                connection="@duckdb.local",
            ),
            step(
                "to-csv",
                "filesystem.csv_writer",
                "writer",
                {"path": "out/revenue.csv"},
                needs=["revenue"],
            ),
        ],
        name="demo-revenue",
    )


def test_demo_pipeline_text_output(tmp_path: Path) -> None:
    demo_project(tmp_path)
    result = run_cli(["build"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for step_id in ("extract-orders", "revenue", "to-parquet", "to-duckdb", "to-csv"):
        assert step_id in result.stdout
    assert "ok" in result.stdout and result.stderr == ""
    lines = (tmp_path / "out/revenue.csv").read_text().splitlines()
    assert lines[0] == "country,segment,orders,revenue" and len(lines) > 5
    assert (tmp_path / "warehouse.duckdb").exists() and (tmp_path / "out/revenue.parquet").exists()


def test_json_format(tmp_path: Path) -> None:
    manifest = demo_project(tmp_path)
    result = run_cli(
        [str(manifest), "--format", "json", "--project-dir", str(tmp_path)], cwd=tmp_path.parent
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok" and summary["exit_code"] == 0
    assert Path(summary["run_dir"]).parent == tmp_path / "runs"
    rows = {s["id"]: s["rows_out"] for s in summary["steps"]}
    assert rows["extract-orders"] == 400 and rows["extract-customers"] == 40
    assert all(
        {"id", "status", "rows_in", "rows_out", "duration_ms"} <= set(s) for s in summary["steps"]
    )


def test_run_failure_exit_4_one_line(tmp_path: Path) -> None:
    write_manifest(
        tmp_path / "build",
        [
            step(
                "bad-sql", "duckdb.processor", "processor", {"query": "SELECT * FROM no_such_table"}
            ),
            step("after", "filesystem.csv_writer", "writer", {"path": "x.csv"}, needs=["bad-sql"]),
        ],
    )
    result = run_cli(["build"], cwd=tmp_path)
    assert result.returncode == 4
    assert "Traceback" not in result.stderr + result.stdout
    message = [line for line in result.stderr.splitlines() if line]
    assert len(message) == 1 and "bad-sql" in message[0] and "no_such_table" in message[0]
    assert "run.log" in message[0]
    result = run_cli(["build", "--format", "json"], cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 4 and summary["failed_step"] == "bad-sql"
    assert [s["status"] for s in summary["steps"]] == ["failed", "skipped"]


def test_manifest_invalid_exit_3(tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text("manifest_version: '0.1.0'\nsteps: []\n")
    result = run_cli(["manifest.yaml"], cwd=tmp_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    missing = run_cli(["nowhere/manifest.yaml"], cwd=tmp_path)
    assert missing.returncode == 3 and "does not exist" in missing.stderr


_LOADED = """
import json, sys
from osiris.runtime.cli import main
code = main(sys.argv[1:])
heavy = ("rich", "jsonschema", "pyarrow")
print(json.dumps({"exit": code, "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


def test_json_runs_load_rich_never_and_jsonschema_once_per_manifest(tmp_path: Path) -> None:
    # start-up cost: rich ~30 ms, jsonschema ~55 ms, pyarrow ~25 ms and ~40 MiB of RSS; a run
    # that never leaves DuckDB needs no Arrow
    # no connections: validating those needs jsonschema on every run
    (tmp_path / "orders.csv").write_bytes((DATA / "orders.csv").read_bytes())
    steps = [
        step("orders", "filesystem.csv_extractor", "extractor", {"path": "orders.csv"}),
        step("out", "filesystem.parquet_writer", "writer", {"path": "o.parquet"}, needs=["orders"]),
    ]
    write_manifest(tmp_path / "build", steps)
    cache = tmp_path / "cache"

    def run(*args: str, cache_dir: str = str(cache)) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-c", _LOADED, *args],
            cwd=tmp_path,
            env={
                "PATH": "/usr/bin:/bin",
                "OSIRIS_CACHE_DIR": cache_dir,
                "HOME": str(tmp_path),
                "TMPDIR": tempfile.gettempdir(),  # the session's, which must stay empty
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        last: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return last

    # the first run validates the manifest against its schema and remembers these exact bytes
    assert run("build", "--format", "json") == {"exit": 0, "loaded": ["jsonschema"]}
    assert len(list((cache / "valid-manifests").iterdir())) == 1
    assert run("build", "--format", "json") == {"exit": 0, "loaded": []}
    # other bytes are validated again: an invalid manifest is still refused
    manifest = tmp_path / "build" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("manifest_version:", "manifest_versio:"))
    assert run("build", "--format", "json") == {"exit": 3, "loaded": ["jsonschema"]}
    assert len(list((cache / "valid-manifests").iterdir())) == 1
    # OSIRIS_CACHE_DIR="" turns the cache off
    write_manifest(tmp_path / "build", steps)
    assert run("build", "--format", "json", cache_dir="") == {"exit": 0, "loaded": ["jsonschema"]}


def test_tampered_manifest_cli(tmp_path: Path) -> None:
    manifest = demo_project(tmp_path)
    cfg = manifest.parent / "cfg/to-csv.json"
    cfg.write_text(cfg.read_text().replace("revenue.csv", "tampered.csv"))
    refused = run_cli(["build"], cwd=tmp_path)
    assert refused.returncode == 3 and "--allow-modified" in refused.stderr
    allowed = run_cli(["build", "--allow-modified"], cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert (tmp_path / "out/tampered.csv").exists()


def test_missing_variable_exit_5_names_it(tmp_path: Path) -> None:
    write_connections(
        tmp_path,
        "version: 1\nconnections:\n  duckdb:\n    wh: {path: '${WAREHOUSE_PATH}', token: '${WH_TOKEN}'}\n",
    )
    write_manifest(
        tmp_path / "build",
        [step("e", "duckdb.extractor", "extractor", {"table": "t"}, connection="@duckdb.wh")],
    )
    result = run_cli(["build"], cwd=tmp_path, env={"WAREHOUSE_PATH": "w.duckdb"})
    assert result.returncode == 5
    assert "WH_TOKEN" in result.stderr and "@duckdb.wh" in result.stderr
    assert "Traceback" not in result.stderr
    status = json.loads((only_run_dir(tmp_path) / "status.json").read_text())
    assert status["exit_code"] == 5


def test_missing_connections_file_exit_5(tmp_path: Path) -> None:
    write_manifest(
        tmp_path / "build",
        [step("e", "duckdb.extractor", "extractor", {"table": "t"}, connection="@duckdb.wh")],
    )
    result = run_cli(["build", "--connections", "nope.yaml"], cwd=tmp_path)
    assert result.returncode == 5 and "nope.yaml" in result.stderr


def test_redaction_canary_never_leaks(tmp_path: Path) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    secrets_file = tmp_path / "team.env"
    secrets_file.write_text(f"DB_TOKEN={canary}\n")
    write_connections(
        tmp_path,
        "version: 1\nconnections:\n  duckdb:\n"
        "    vault: {path: 'vault/${DB_TOKEN}/wh.duckdb', token: '${DB_TOKEN}'}\n"
        "  postgres:\n"
        "    main: {dsn: 'postgresql://app:${DB_TOKEN}@localhost:1/app'}\n",
    )
    (tmp_path / "in.csv").write_text("id\n1\n")
    write_manifest(
        tmp_path / "build",
        [
            step(
                "leaky", "duckdb.extractor", "extractor", {"table": "t"}, connection="@duckdb.vault"
            ),
            step("fine", "filesystem.csv_extractor", "extractor", {"path": "in.csv"}),
            step(
                "echo",
                "duckdb.processor",
                "processor",
                {"query": "SELECT * FROM no_table_here"},
                needs=["fine"],
            ),
        ],
    )
    outputs = []
    for fmt in ("text", "json"):
        result = run_cli(
            ["build", "--secrets-file", str(secrets_file), "--format", fmt], cwd=tmp_path
        )
        assert result.returncode == 4, result.stderr
        outputs += [result.stdout, result.stderr]
    assert any("***" in text for text in outputs)  # the path was printed, masked
    for text in outputs:
        assert canary not in text
    run_files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in run_files)
    for path in run_files:
        assert canary.encode() not in path.read_bytes(), path


def test_concurrent_runs_get_distinct_run_dirs(tmp_path: Path) -> None:
    demo_project(tmp_path)
    command = [sys.executable, "-m", "osiris.runtime.cli", "build", "--format", "json"]
    procs = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    summaries = [json.loads(out) for out, _ in results]
    assert summaries[0]["run_id"] != summaries[1]["run_id"]
    assert len(list((tmp_path / "runs").iterdir())) == 2
    assert all(
        json.loads((Path(s["run_dir"]) / "status.json").read_text())["status"] == "ok"
        for s in summaries
    )


def test_internal_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.ENGINES, "local", explode)
    assert cli.main(["whatever"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "internal error" in captured.err
    assert "Traceback" not in captured.err


def test_live_view_renders_each_step(tmp_path: Path) -> None:
    manifest = demo_project(tmp_path)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with LiveView(console) as view:
        outcome = run_manifest(manifest, project_dir=tmp_path, environ={}, observer=view)
    assert outcome.exit_code == 0
    screen = buffer.getvalue()
    for step_id in ("extract-orders", "revenue", "to-parquet"):
        assert step_id in screen


GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "csv_duckdb_parquet"


def test_runs_a_compiler_emitted_manifest(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data/orders.csv").write_text("id,customer_id,amount\n1,1,5\n2,1,7\n3,2,30\n")
    (tmp_path / "data/customers.csv").write_text("id,country\n1,DE\n2,FR\n")
    result = run_cli([str(GOLDEN), "--format", "json"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "ok"
