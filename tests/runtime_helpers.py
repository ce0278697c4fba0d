"""Test helpers for the runtime: build valid manifests + cfg files, run oml-run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import yaml

from osiris.runtime.contract.manifest import cfg_bytes, manifest_digest, sha256_tag

ROLE_MODES = {"extractor": "read", "processor": "transform", "writer": "write"}


def step(
    step_id: str,
    driver: str,
    role: str,
    config: dict[str, Any],
    *,
    needs: list[str] | None = None,
    inputs: dict[str, str] | None = None,
    connection: str | None = None,
    partition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One step description for write_manifest."""
    return {
        **({"partition": partition} if partition else {}),
        "id": step_id,
        "driver": driver,
        "role": role,
        "config": config,
        "needs": needs or [],
        "inputs": inputs or {},
        "connection": connection,
    }


def write_manifest(
    directory: Path, steps: list[dict[str, Any]], *, name: str = "test-pipeline"
) -> Path:
    """Write manifest.yaml + cfg/<id>.json exactly as the contract defines; returns manifest.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cfg").mkdir(exist_ok=True)
    manifest_steps = []
    for item in steps:
        config = dict(item["config"])
        if item.get("connection"):
            config.setdefault("connection", item["connection"])
        data = cfg_bytes(config)
        cfg = f"cfg/{item['id']}.json"
        (directory / cfg).write_bytes(data)
        needs = list(dict.fromkeys([*item.get("needs", []), *item.get("inputs", {}).values()]))
        manifest_steps.append(
            {
                "id": item["id"],
                "component": item.get("component", item["driver"]),
                "component_version": "0.1.0",
                "driver": item["driver"],
                "mode": ROLE_MODES[item["role"]],
                "role": item["role"],
                "needs": needs,
                "inputs": dict(item.get("inputs", {})),
                "connection": item.get("connection"),
                "cfg": cfg,
                "cfg_sha256": sha256_tag(data),
                **({"partition": item["partition"]} if item.get("partition") else {}),
            }
        )
    placeholder = sha256_tag(b"test")
    manifest: dict[str, Any] = {
        "manifest_version": "0.1.0",
        "pipeline": {"name": name, "oml_version": "0.1.0"},
        "toolchain": {"name": "osiris-tests", "version": "0.1.0"},
        "params": {},
        "fingerprints": {
            "oml": placeholder,
            "specs": placeholder,
            "params": placeholder,
            "toolchain": placeholder,
            "manifest": placeholder,
        },
        "steps": manifest_steps,
    }
    manifest["fingerprints"]["manifest"] = manifest_digest(manifest)
    path = directory / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=True), encoding="utf-8")
    return path


def run_cli(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`oml-run ARGS` in a subprocess (python -m osiris.runtime.cli), capturing text output."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OSIRIS_") or k == "OSIRIS_CACHE_DIR"  # the test session's cache
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "osiris.runtime.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def only_run_dir(project: Path) -> Path:
    """The single runs/<id>/ directory of a project."""
    runs = sorted((project / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def run_steps(
    project: Path, steps: list[dict[str, Any]], **options: Any
) -> tuple[Any, Path | None]:
    """Compile-free shortcut: write a manifest under project/build and run it in process.

    Returns (RunOutcome, run_dir)."""
    from osiris.runtime.runner import run_manifest

    manifest = write_manifest(project / "build", steps)
    options.setdefault("environ", {})
    outcome = run_manifest(manifest, project_dir=project, **options)
    return outcome, outcome.run_dir


def write_connections(project: Path, text: str) -> Path:
    path = project / "osiris_connections.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def mysql_rows(db: dict[str, Any], *sql: str) -> list[tuple[Any, ...]]:
    """Run statements on a MariaDB test database; the rows of the last one."""
    conn = pymysql.connect(**db, autocommit=True)
    try:
        with conn.cursor() as cur:
            for stmt in sql:
                cur.execute(stmt)
            return list(cur.fetchall())
    finally:
        conn.close()


def pg_rows(db: dict[str, Any], *sql: str) -> list[tuple[Any, ...]]:
    """Run statements on a PostgreSQL test database; the rows of the last one."""
    with psycopg.connect(
        **{k: v for k, v in db.items() if k != "database"}, dbname=db["database"], autocommit=True
    ) as conn:
        rows: list[tuple[Any, ...]] = []
        for stmt in sql:
            cur = conn.execute(stmt)
            rows = list(cur.fetchall()) if cur.description else []
        return rows
