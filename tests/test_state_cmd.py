"""`osiris state show|reset` over a project's .osiris/state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osiris.compiler.cli import osiris_main
from osiris.runtime.records.state import CursorState, state_path, write_state
from osiris.runtime.records.store import run_folders


def _project(tmp_path: Path) -> Path:
    (tmp_path / "osiris.yaml").write_text("", encoding="utf-8")
    write_state(state_path(tmp_path, "shop", "orders"), CursorState("updated_at", "2024-05-01"))
    write_state(state_path(tmp_path, "shop", "refunds"), CursorState("id", 42))
    write_state(state_path(tmp_path, "crm", "contacts"), CursorState("version", 7))
    return tmp_path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = osiris_main([*argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_show_lists_every_state_or_one_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = str(_project(tmp_path))
    code, doc = _json(capsys, "state", "show", "--project-dir", project)
    assert code == 0
    assert [(s["pipeline"], s["step"], s["last_value"]) for s in doc["states"]] == [  # type: ignore[index]
        ("crm", "contacts", 7),
        ("shop", "orders", "2024-05-01"),
        ("shop", "refunds", 42),
    ]
    code, doc = _json(capsys, "state", "show", "shop", "--project-dir", project)
    assert [s["step"] for s in doc["states"]] == ["orders", "refunds"]  # type: ignore[index]
    assert osiris_main(["state", "show", "crm", "--project-dir", project]) == 0
    assert "contacts  version > 7" in capsys.readouterr().out


def test_reset_one_step_then_the_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    code, doc = _json(
        capsys, "state", "reset", "shop", "--step", "orders", "--project-dir", str(project)
    )
    assert code == 0 and len(doc["removed"]) == 1  # type: ignore[index]
    assert not state_path(project, "shop", "orders").exists()
    assert state_path(project, "shop", "refunds").exists()
    assert osiris_main(["state", "reset", "shop", "--project-dir", str(project)]) == 0
    assert not (project / ".osiris/state/shop").exists()
    assert state_path(project, "crm", "contacts").exists()


def test_a_name_that_climbs_out_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    code, doc = _json(capsys, "state", "reset", "..", "--project-dir", str(project))
    assert code == 2 and "cannot be a state file name" in json.dumps(doc)
    assert state_path(project, "crm", "contacts").exists()


PIPELINE = """oml_version: "0.1.0"
name: seen-sm
steps:
  - id: src
    component: filesystem.csv_extractor
    mode: read
    config:
      path: in_sm.csv
      incremental: {cursor_column: seen, initial_value: "2024-01-01 00:00:00"}
  - id: out
    component: filesystem.csv_writer
    mode: write
    needs: [src]
    config: {path: out_sm.csv}
"""


def test_state_is_run_input_in_the_run_log_never_in_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "osiris.yaml").write_text("", encoding="utf-8")
    (tmp_path / "pipeline.oml").write_text(PIPELINE, encoding="utf-8")
    (tmp_path / "in_sm.csv").write_text(
        "id,seen\n1,2024-01-02 00:00:00\n2,2024-01-03 00:00:00\n", encoding="utf-8"
    )

    def manifest(out: str) -> dict[str, bytes]:
        assert osiris_main(["compile", "pipeline.oml", "-o", out]) == 0
        return {p.name: p.read_bytes() for p in sorted((tmp_path / out).rglob("*")) if p.is_file()}

    before = manifest("build1")
    assert osiris_main(["run", "pipeline.oml"]) == 0
    assert osiris_main(["run", "pipeline.oml"]) == 0  # nothing new: the state stays
    after = manifest("build2")
    capsys.readouterr()
    assert after == before  # the state is not compiled in
    assert not any(b"2024-01-03" in data for data in after.values())
    runs = run_folders(tmp_path / "runs")[::-1]  # oldest first (two runs may share a second)
    first, second = (r.joinpath("run.log").read_text(encoding="utf-8") for r in runs)
    assert "incremental: reading seen after '2024-01-01 00:00:00'" in first
    assert "incremental state: seen advanced to '2024-01-03 00:00:00'" in first
    assert "incremental: reading seen after '2024-01-03 00:00:00'" in second
    assert "advanced to" not in second
    # the run's machine-readable records say it too: an event, and status.json
    events = [json.loads(line) for line in runs[0].joinpath("events.jsonl").open()]
    advanced = [e for e in events if e["event"] == "state_advanced"]
    assert [(e["step"], e["cursor"], e["value"]) for e in advanced] == [
        ("src", "seen", "2024-01-03 00:00:00")
    ]
    assert [e["event"] for e in events][-1] == "run_finished"  # after the publish phase
    status = [json.loads(r.joinpath("status.json").read_text()) for r in runs]
    assert status[0]["state_advanced"] == {
        "src": {"cursor": "seen", "value": "2024-01-03 00:00:00"}
    }
    assert status[1]["state_advanced"] == {}
    code, doc = _json(capsys, "state", "show", "seen-sm")
    assert code == 0
    assert [(s["step"], s["last_value"]) for s in doc["states"]] == [  # type: ignore[index]
        ("src", "2024-01-03 00:00:00")
    ]
