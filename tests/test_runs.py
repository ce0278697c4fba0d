"""`osiris runs` and the run report, from real run folders made by real runs: a parallel fan-out,
a failed run, a streamed run with progress samples, a cancelled run, a run still going, a run
killed outright, and a run whose connection password must never show."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from runtime_helpers import read_events, run_steps, step, write_manifest

from osiris.compiler.cli import osiris_main
from osiris.runtime.cancel import CancelToken
from osiris.runtime.records.report import render_report
from osiris.runtime.records.store import find_run, plan_gc, run_folders
from osiris.runtime.records.summary import read_run
from osiris.runtime.records.svg import STATUS_COLOURS, rates, sparkline_svg

CSV = "filesystem.csv_extractor"
CANARY = "pw-canary-runs-7f3a9c"
XSS = "<img src=x onerror=alert(1)>"
STREAM_ROWS = 1_500_000


def _write_csv(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)


def _fanout(project: Path) -> list[dict[str, Any]]:
    return [
        step("orders", CSV, "extractor", {"path": "data/orders.csv"}),
        step("customers", CSV, "extractor", {"path": "data/customers.csv"}),
        step(
            "joined",
            "duckdb.processor",
            "processor",
            {"query": "SELECT o.*, c.name FROM orders o JOIN customers c USING (cid)"},
            needs=["orders", "customers"],
        ),
        step("to-csv", "filesystem.csv_writer", "writer", {"path": "out/a.csv"}, needs=["joined"]),
        step(
            "to-parquet",
            "filesystem.parquet_writer",
            "writer",
            {"path": "out/a.parquet"},
            needs=["joined"],
        ),
        step("to-csv2", "filesystem.csv_writer", "writer", {"path": "out/b.csv"}, needs=["joined"]),
    ]


def _stream_steps() -> list[dict[str, Any]]:
    return [
        step("big", CSV, "extractor", {"path": "data/big.csv"}),
        step("copy", "filesystem.csv_writer", "writer", {"path": "out/big.csv"}, needs=["big"]),
    ]


class _Blocker:
    """An observer that holds the run at a step's start until released."""

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id
        self.reached = threading.Event()
        self.release = threading.Event()

    def on_event(self, event: dict[str, Any]) -> None:
        if event["event"] == "step_started" and event["step"] == self.step_id:
            self.reached.set()
            assert self.release.wait(60)

    def on_progress(self, step_id: str, rows: int) -> None:
        return None

    def on_warning(self, message: str) -> None:
        return None


class _CancelAt:
    def __init__(self, token: CancelToken, rows: int) -> None:
        self.token, self.rows = token, rows

    def on_event(self, event: dict[str, Any]) -> None:
        return None

    def on_progress(self, step_id: str, rows: int) -> None:
        if rows >= self.rows:
            self.token.cancel(signal.SIGINT)

    def on_warning(self, message: str) -> None:
        return None


class _Paced:
    """Holds the stream a little at each progress report, so that however fast the machine,
    the run lasts long enough for progress.jsonl to sample it more than once."""

    def on_event(self, event: dict[str, Any]) -> None:
        return None

    def on_progress(self, step_id: str, rows: int) -> None:
        time.sleep(0.06)

    def on_warning(self, message: str) -> None:
        return None


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One project with its runs, made once: name -> run folder."""
    root = tmp_path_factory.mktemp("runs-project")
    n = 200_000
    _write_csv(
        root / "data/orders.csv",
        pa.table({"id": range(n), "cid": [i % 5000 for i in range(n)], "amount": range(n)}),
    )
    _write_csv(
        root / "data/customers.csv",
        pa.table({"cid": range(5000), "name": [f"c{i}" for i in range(5000)]}),
    )
    _write_csv(
        root / "data/big.csv",
        pa.table({"id": range(STREAM_ROWS), "v": [i * 7 for i in range(STREAM_ROWS)]}),
    )
    (root / "osiris_connections.yaml").write_text(
        "connections:\n  mysql:\n    shop:\n      host: 127.0.0.1\n      port: 1\n"
        f"      user: nobody\n      password: {CANARY}\n      database: shop\n",
        encoding="utf-8",
    )
    runs: dict[str, Any] = {}
    outcome, runs["fanout"] = run_steps(root, _fanout(root), max_parallel=3)
    assert outcome.status == "ok", outcome.error
    failing = _fanout(root)
    failing[2] = step(
        "joined",
        "duckdb.processor",
        "processor",
        {"query": f'SELECT "{XSS}" FROM orders'},
        needs=["orders", "customers"],
    )
    outcome, runs["failed"] = run_steps(root, failing, max_parallel=3)
    assert outcome.status == "failed"
    stream_env = {"OSIRIS_INPLACE_MIN_BYTES": "0"}
    outcome, runs["stream"] = run_steps(
        root, _stream_steps(), environ=stream_env, observer=_Paced()
    )
    assert outcome.status == "ok", outcome.error
    token = CancelToken()
    outcome, runs["cancelled"] = run_steps(
        root, _stream_steps(), environ=stream_env, cancel=token, observer=_CancelAt(token, 300_000)
    )
    assert outcome.status == "cancelled"
    secret = [
        step(
            "remote",
            "mysql.extractor",
            "extractor",
            {"query": "SELECT 1"},
            connection="@mysql.shop",
        ),
        step("keep", "filesystem.csv_writer", "writer", {"path": "out/r.csv"}, needs=["remote"]),
    ]
    outcome, runs["secret"] = run_steps(root, secret)
    assert outcome.status == "failed"
    runs["root"] = root
    return runs


# ---- summaries ----------------------------------------------------------------------------------


def test_fanout_summary_matches_the_records_and_outputs(project: dict[str, Any]) -> None:
    summary = read_run(project["fanout"])
    assert (summary.status, summary.exit_code, summary.pipeline) == ("ok", 0, "test-pipeline")
    assert [s.id for s in summary.steps] == [
        "orders", "customers", "joined", "to-csv", "to-parquet", "to-csv2"
    ]  # fmt: skip
    assert all(s.status == "ok" for s in summary.steps)
    joined = {s.id: s for s in summary.steps}["joined"]
    assert (joined.rows_in, joined.rows_out) == (205_000, 200_000)
    lines = (project["root"] / "out/a.csv").read_text().count("\n") - 1
    assert lines == 200_000
    assert summary.rows_moved == 3 * 200_000
    assert set(summary.edges) == {
        ("orders", "joined", "data"),
        ("customers", "joined", "data"),
        ("joined", "to-csv", "data"),
        ("joined", "to-parquet", "data"),
        ("joined", "to-csv2", "data"),
    }
    # the two extractors ran side by side: each started before the other finished
    events = read_events(project["fanout"])
    started = {e["step"]: e["ts"] for e in events if e["event"] == "step_started"}
    finished = {e["step"]: e["ts"] for e in events if e["event"] == "step_finished"}
    assert started["orders"] < finished["customers"] and started["customers"] < finished["orders"]
    assert summary.max_parallel_seen >= 2
    for s in summary.steps:
        assert s.start is not None and s.end is not None and 0 <= s.start <= s.end
    env = summary.environment
    assert env["engine"] == "local" and env["max_parallel"] == 3
    assert env["host"] and {"osiris", "python", "duckdb", "pyarrow"} <= set(env["versions"])


def test_failed_summary_names_the_step_its_error_and_the_skipped(project: dict[str, Any]) -> None:
    summary = read_run(project["failed"])
    assert (summary.status, summary.exit_code, summary.failed_step) == ("failed", 4, "joined")
    assert summary.error and XSS in summary.error
    states = {s.id: s.status for s in summary.steps}
    assert states == {
        "orders": "ok",
        "customers": "ok",
        "joined": "failed",
        "to-csv": "skipped",
        "to-parquet": "skipped",
        "to-csv2": "skipped",
    }
    skipped = {s.id: s for s in summary.steps}["to-csv"]
    assert skipped.start is None and skipped.error == "upstream step 'joined' failed"
    assert summary.rows_moved == 0


def test_cancelled_summary(project: dict[str, Any]) -> None:
    summary = read_run(project["cancelled"])
    assert (summary.status, summary.exit_code) == ("cancelled", 130)
    assert {s.status for s in summary.steps} == {"cancelled"}
    assert summary.error and "SIGINT" in summary.error


def test_streamed_run_has_progress_samples_and_a_sparkline(project: dict[str, Any]) -> None:
    summary = read_run(project["stream"])
    assert summary.edges == (("big", "copy", "stream"),)
    big = {s.id: s for s in summary.steps}["big"]
    assert big.rows_out == STREAM_ROWS
    assert len(big.progress) >= 2, big.progress  # sampled while it ran
    totals = [rows for _, rows in big.progress]
    assert totals == sorted(totals) and totals[-1] <= STREAM_ROWS
    found = rates(big)
    assert sum(rate > 0 for _, rate in found) >= 2 and all(rate >= 0 for _, rate in found)
    svg = sparkline_svg(big)
    assert f'data-points="{len(found)}"' in svg and "<polyline" in svg


def test_a_running_run_is_listed_as_running_and_never_collected(tmp_path: Path) -> None:
    _write_csv(
        tmp_path / "data/orders.csv", pa.table({"id": [1, 2], "cid": [1, 1], "amount": [3, 4]})
    )
    steps = [
        step("orders", CSV, "extractor", {"path": "data/orders.csv"}),
        step("out", "filesystem.csv_writer", "writer", {"path": "out/o.csv"}, needs=["orders"]),
    ]
    blocker = _Blocker("out")
    manifest = write_manifest(tmp_path / "build", steps)
    from osiris.runtime.runner import run_manifest

    thread = threading.Thread(
        target=run_manifest,
        args=(manifest,),
        kwargs={"project_dir": tmp_path, "environ": {}, "observer": blocker},
    )
    thread.start()
    try:
        assert blocker.reached.wait(30)
        (folder,) = run_folders(tmp_path / "runs")
        assert read_run(folder).status == "running"
        assert {s.id: s.status for s in read_run(folder).steps}["orders"] == "ok"
        plan = plan_gc(tmp_path / "runs", keep=0, older_than_days=None)
        assert [(e.delete, e.reason) for e in plan] == [(False, "running")]
        assert osiris_main(["runs", "gc", "--keep", "0", "--project-dir", str(tmp_path)]) == 0
        assert folder.is_dir()
    finally:
        blocker.release.set()
        thread.join(60)
    assert read_run(folder).status == "ok"
    assert [e.delete for e in plan_gc(tmp_path / "runs", keep=0, older_than_days=None)] == [True]


def test_a_killed_run_is_interrupted_and_its_leftovers_keep_it(tmp_path: Path) -> None:
    _write_csv(
        tmp_path / "data/big.csv",
        pa.table({"id": range(STREAM_ROWS), "v": [i * 7 for i in range(STREAM_ROWS)]}),
    )
    write_manifest(tmp_path / "build", _stream_steps())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    env.update(OSIRIS_INPLACE_MIN_BYTES="0", TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "osiris.runtime.cli", "build", "--project-dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while True:
            found = run_folders(tmp_path / "runs")
            if found and (found[0] / "progress.jsonl").is_file():
                break
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert read_run(found[0]).status == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    summary = read_run(found[0])
    assert summary.status == "interrupted" and summary.exit_code is None
    assert {s.id: s.status for s in summary.steps}["big"] == "not_run"
    html = render_report(summary)
    assert "the run stopped without recording why" in html
    plan = plan_gc(tmp_path / "runs", keep=0, older_than_days=None)
    if (found[0] / "debris.jsonl").is_file():  # the writer's hidden file beside its target
        assert [(e.delete, e.reason) for e in plan] == [
            (False, "has leftovers the next run sweeps")
        ]
    else:
        assert [e.delete for e in plan] == [True]
    for leftover in tmp_path.glob("osiris-*"):
        shutil.rmtree(leftover, ignore_errors=True)


# ---- the command line ---------------------------------------------------------------------------


def _osiris(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = osiris_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_list_text_and_json(
    project: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(project["root"])
    code, out, _ = _osiris(capsys, "runs", "list", "--project-dir", root, "--format", "json")
    assert code == 0
    listed = json.loads(out)["runs"]
    order = ["secret", "cancelled", "stream", "failed", "fanout"]
    assert [r["run_id"] for r in listed] == [project[name].name for name in order]
    assert [r["status"] for r in listed] == ["failed", "cancelled", "ok", "failed", "ok"]
    assert listed[3]["failed_step"] == "joined" and listed[4]["rows_moved"] == 600_000
    code, out, _ = _osiris(capsys, "runs", "list", "--project-dir", root, "--status", "failed")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["run", "id", "pipeline"]
    assert [line.split()[0] for line in lines[1:]] == [
        project["secret"].name,
        project["failed"].name,
    ]
    assert "joined" in lines[2]
    code, out, _ = _osiris(capsys, "runs", "list", "--project-dir", root, "--limit", "1")
    assert len(out.splitlines()) == 2 and project["secret"].name in out


def test_runs_are_found_from_the_project_root(
    project: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (project["root"] / "data").mkdir(exist_ok=True)
    monkeypatch.chdir(project["root"] / "data")
    monkeypatch.delenv("OSIRIS_CONNECTIONS", raising=False)
    code, out, _ = _osiris(capsys, "runs", "show", "last", "--format", "json")
    assert code == 0 and json.loads(out)["run_id"] == project["secret"].name
    prefix = project["fanout"].name[:-2]
    assert find_run(project["root"] / "runs", prefix) == project["fanout"]
    elsewhere = shutil.copytree(project["failed"], tmp_path / "kept-run")
    code, out, _ = _osiris(capsys, "runs", "show", str(elsewhere), "--format", "json")
    assert code == 0 and json.loads(out)["run_dir"] == str(elsewhere)


def test_runs_show_text_and_json(
    project: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(project["root"])
    run_id = project["failed"].name
    code, out, _ = _osiris(capsys, "runs", "show", run_id, "--project-dir", root)
    assert code == 0
    assert f"run {run_id}: test-pipeline — failed (exit 4)" in out
    assert "error at step joined: step 'joined' (duckdb.processor) failed: " in out
    assert XSS in out and "manifest sha256:" in out and "params: none" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[-6:]}
    assert rows["orders"][:5] == ["orders", CSV, "ok", "200,000", "200,000"]
    assert rows["to-csv"][2] == "skipped"
    code, out, _ = _osiris(
        capsys, "runs", "show", run_id, "--project-dir", root, "--format", "json"
    )
    data = json.loads(out)
    assert data["status"] == "failed" and data["failed_step"] == "joined"
    assert [s["status"] for s in data["steps"]].count("skipped") == 3


def test_unknown_run_is_a_usage_error(
    project: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(project["root"])
    code, out, err = _osiris(capsys, "runs", "show", "nope", "--project-dir", root)
    assert code == 2 and "no run 'nope'" in err and out == ""
    code, out, _ = _osiris(
        capsys, "runs", "report", "nope", "--project-dir", root, "--format", "json"
    )
    assert code == 2 and json.loads(out)["exit_code"] == 2
    code, _, err = _osiris(capsys, "runs", "gc", "--project-dir", root)
    assert code == 2 and "--keep N and/or --older-than DAYS" in err


def test_runs_diff(project: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    root = str(project["root"])
    a, b = project["fanout"].name, project["failed"].name
    code, out, _ = _osiris(capsys, "runs", "diff", a, b, "--project-dir", root, "--format", "json")
    assert code == 0
    steps = {s["id"]: s for s in json.loads(out)["steps"]}
    assert steps["joined"]["status"] == ["ok", "failed"]
    assert steps["to-csv"]["rows_out"] == [200_000, 0]
    code, out, _ = _osiris(capsys, "runs", "diff", a, b, "--project-dir", root)
    line = next(x for x in out.splitlines() if x.startswith("to-csv "))
    assert "ok → skipped" in line and "200,000" in line and "-100%" in line


def test_gc_dry_run_then_for_real(
    project: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(project["root"] / "runs", tmp_path / "runs")
    folders = run_folders(tmp_path / "runs")
    assert len(folders) == 5
    sizes = {f.name: sum(p.stat().st_size for p in f.rglob("*") if p.is_file()) for f in folders}
    old = [f.name for f in folders[2:]]
    args = ["runs", "gc", "--keep", "2", "--project-dir", str(tmp_path), "--format", "json"]
    code, out, _ = _osiris(capsys, *args, "--dry-run")
    data = json.loads(out)
    assert code == 0 and data["dry_run"] is True
    assert [d["run_id"] for d in data["deleted"]] == old
    assert data["freed_bytes"] == sum(sizes[n] for n in old)
    assert len(run_folders(tmp_path / "runs")) == 5  # nothing deleted
    assert (tmp_path / "runs" / project["fanout"].name / "run.duckdb").is_file()
    code, out, _ = _osiris(capsys, *args[:-2])
    assert code == 0 and f"freed {sum(sizes[n] for n in old):,} bytes" in out
    assert [f.name for f in run_folders(tmp_path / "runs")] == [f.name for f in folders[:2]]
    assert not (tmp_path / "runs" / project["fanout"].name).exists()  # run.duckdb and all
    code, out, _ = _osiris(
        capsys, "runs", "gc", "--older-than", "1", "--project-dir", str(tmp_path)
    )
    assert code == 0 and "deleted 0 run(s)" in out  # both are minutes old
    runs = tmp_path / "runs"
    later = datetime.now(UTC) + timedelta(days=3)
    assert [e.delete for e in plan_gc(runs, keep=None, older_than_days=2, now=later)] == [True] * 2
    assert [e.delete for e in plan_gc(runs, keep=None, older_than_days=4, now=later)] == [False] * 2
    assert [e.delete for e in plan_gc(runs, keep=1, older_than_days=2, now=later)] == [False, True]


# ---- the report in a real browser ---------------------------------------------------------------


def test_report_of_the_failed_run_in_chromium(
    project: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from browser import STATUS_TOLERANCE, close, hex_rgb, load

    target = tmp_path / "report.html"
    code, out, _ = _osiris(
        capsys, "runs", "report", project["failed"].name, "-o", str(target),
        "--project-dir", str(project["root"]),
    )  # fmt: skip
    assert code == 0 and str(target) in out
    html = target.read_text(encoding="utf-8")
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    page = load(target, tmp_path / "browser", size=(1200, 1000))
    assert page.console == [] and page.requests == []
    assert "<img" not in page.dom and "<script" not in page.dom
    # every step is a node of the DAG with its status, a bar of the timeline and a table row
    for s in read_run(project["failed"]).steps:
        assert f'class="node" data-step="{s.id}" data-status="{s.status}"' in page.dom
        fill = STATUS_COLOURS[s.status]
        node = page.dom.split(f'data-step="{s.id}" data-status="{s.status}"', 1)[1]
        assert f'fill="{fill}"' in node.split("</g>", 1)[0]
    assert page.dom.count('<tr class="step"') == 6 and page.dom.count('<g class="bar"') == 3
    assert "step 'joined' (duckdb.processor) failed" in page.dom
    shot = page.screenshot
    assert shot is not None and len(shot.colours()) > 20  # not blank
    red = hex_rgb(STATUS_COLOURS["failed"])
    assert any(close(c, red, STATUS_TOLERANCE) for c in shot.colours())


def test_the_browser_harness_sees_requests_and_console_errors(tmp_path: Path) -> None:
    """The assertions above can fail: a page that loads an image and runs a script is seen."""
    from browser import load

    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><img src="http://example.invalid/x.png">'
        '<script>console.error("boom")</script></body></html>',
        encoding="utf-8",
    )
    seen = load(page, tmp_path / "browser", shot=False)
    assert seen.requests == ["http://example.invalid/x.png"]
    assert any("boom" in line for line in seen.console)


def test_report_of_the_fanout_in_chromium(project: dict[str, Any], tmp_path: Path) -> None:
    from browser import load

    target = tmp_path / "fanout.html"
    target.write_text(render_report(read_run(project["fanout"])), encoding="utf-8")
    page = load(target, tmp_path / "browser", shot=False)
    assert page.console == [] and page.requests == []
    assert page.dom.count('<g class="node"') == 6 and page.dom.count('<tr class="step"') == 6
    assert page.dom.count('data-status="ok"') >= 12
    assert "600,000 rows written" in page.dom


def test_no_secret_reaches_show_or_report(
    project: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    summary = read_run(project["secret"])
    assert summary.status == "failed" and summary.exit_code == 5
    html = render_report(summary)
    assert "remote" in html and CANARY not in html
    root = str(project["root"])
    _, out, _ = _osiris(capsys, "runs", "show", "last", "--project-dir", root, "--format", "json")
    assert CANARY not in out and json.loads(out)["run_id"] == project["secret"].name
    for record in project["secret"].iterdir():
        if record.is_file():
            assert CANARY not in record.read_text(encoding="utf-8", errors="replace")


@pytest.mark.mysql
@pytest.mark.postgres
def test_a_failed_database_run_shows_the_servers_words(
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """MariaDB -> PostgreSQL, streamed; the target's CHECK refuses a row: show and report say
    which step failed and the server's own words."""
    import psycopg
    import pymysql

    with pymysql.connect(**mysql_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE src_runs (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany(
            "INSERT INTO src_runs VALUES (%s, %s)", [(i, "x" * (i % 5)) for i in range(50)]
        )
    pg = {k: v for k, v in pg_db.items() if k != "database"}
    with psycopg.connect(**pg, dbname=pg_db["database"], autocommit=True) as conn:
        conn.execute("CREATE TABLE dst_runs (id bigint PRIMARY KEY, v text CHECK (length(v) < 4))")
    keys = ("host", "port", "user", "password", "database")
    connections = {
        family: {"t": {k: db[k] for k in keys if db.get(k) not in (None, "")}}
        for family, db in (("mysql", mysql_db), ("postgres", pg_db))
    }
    (tmp_path / "osiris_connections.yaml").write_text(
        json.dumps({"connections": connections}), encoding="utf-8"
    )
    steps = [
        step("src", "mysql.extractor", "extractor", {"table": "src_runs"}, connection="@mysql.t"),
        step(
            "load",
            "postgres.writer",
            "writer",
            {"table": "dst_runs", "write_mode": "append"},
            needs=["src"],
            connection="@postgres.t",
        ),
    ]
    outcome, folder = run_steps(tmp_path, steps)
    assert outcome.status == "failed" and folder is not None
    code, out, _ = _osiris(capsys, "runs", "show", "last", "--project-dir", str(tmp_path))
    assert code == 0 and "— failed (exit 4)" in out and "error at step load:" in out
    assert "dst_runs_v_check" in out
    load = next(line for line in out.splitlines() if line.startswith("load "))
    assert load.split()[:3] == ["load", "postgres.writer", "failed"]
    html = render_report(read_run(folder))
    assert "dst_runs_v_check" in html and 'data-step="load" data-status="failed"' in html
