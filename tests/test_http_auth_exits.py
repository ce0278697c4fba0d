"""An API that refuses the credentials (401 or 403) fails the run as a configuration error (exit 5), for rest and graphql, without the secret in any record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import run_steps, step, write_connections

from osiris.runtime.contract.exits import ExitCode
from tests.http_api import ApiState, serve

CANARY = "canary-sm-9e4f1b2d6a"


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    yield from serve()


@pytest.mark.parametrize(
    ("component", "auth", "config", "status"),
    [
        (
            "rest.extractor",
            "{type: basic, username: reader, password: '${API_SECRET}'}",
            {"path": "/auth/basic"},
            "403",
        ),
        (
            "rest.extractor",
            "{type: api_key, name: X-Api-Key, value: '${API_SECRET}'}",
            {"path": "/auth/key"},
            "401",
        ),
        (
            "graphql.extractor",
            "{type: bearer, token: '${API_SECRET}'}",
            {"endpoint": "/graphql", "query": "{ items { edges { node { id } } } }"},
            "401",
        ),
    ],
)
def test_refused_credentials_exit_5(
    tmp_path: Path,
    api: tuple[str, ApiState],
    component: str,
    auth: str,
    config: dict[str, Any],
    status: str,
) -> None:
    base, state = api
    state.token = state.api_key = "the-right-one-1234"
    state.basic = ("reader", "the-right-one-1234")
    write_connections(
        tmp_path,
        f"version: 1\nconnections:\n  http:\n    shop:\n      base_url: {base}\n"
        f"      auth: {auth}\n",
    )
    steps = [
        step("src", component, "extractor", config, connection="@http.shop"),
        step("out", "filesystem.csv_writer", "writer", {"path": "out.csv"}, needs=["src"]),
    ]
    outcome, run_dir = run_steps(tmp_path, steps, environ={"API_SECRET": CANARY})
    assert outcome.exit_code == ExitCode.CONFIGURATION, outcome.error
    assert status in (outcome.error or "")
    assert len(state.seen) == 1  # refused credentials are not retried
    assert not (tmp_path / "out.csv").exists()
    records = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    assert CANARY not in records + (outcome.error or "")
