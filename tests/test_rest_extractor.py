"""rest.extractor against a real HTTP server on 127.0.0.1: paginators, auth, retries, widening, incremental state."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.records.state import state_path
from tests.http_api import ApiState, records, serve
from tests.runtime_helpers import run_steps, step, write_connections

CANARY = "canary-tok-7f3e9a1c55d04b2e"


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    yield from serve()


def _project(tmp_path: Path, base: str, auth: str = "") -> Path:
    write_connections(
        tmp_path,
        "version: 1\nconnections:\n  http:\n    shop:\n"
        f"      base_url: {base}\n      headers: {{X-Client: osiris-tests}}\n{auth}",
    )
    return tmp_path


def _run(
    project: Path,
    config: dict[str, Any],
    *,
    environ: dict[str, str] | None = None,
    out: str = "out.parquet",
    writer: str = "filesystem.parquet_writer",
) -> tuple[Any, list[dict[str, Any]]]:
    steps = [
        step("src", "rest.extractor", "extractor", config, connection="@http.shop"),
        step("write", writer, "writer", {"path": out}, needs=["src"]),
    ]
    outcome, _ = run_steps(project, steps, environ=environ or {})
    target = project / out
    rows = pq.read_table(target).to_pylist() if outcome.exit_code == 0 else []
    return outcome, rows


def _records_text(run_dir: Path) -> str:
    return "".join(
        p.read_text(encoding="utf-8", errors="replace") for p in run_dir.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize(
    ("path", "selector", "paginator", "pages"),
    [
        (
            "/cursor",
            "items",
            {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
            3,
        ),
        ("/pages", "data", {"type": "page_number", "total_path": "meta.total_pages"}, 3),
        ("/pages", "data", {"type": "page_number"}, 4),  # stops at the first empty page
        ("/offset", "results", {"type": "offset", "limit": 3, "total_path": "total"}, 3),
        ("/offset", "results", {"type": "offset", "limit": 5}, 3),  # 5 + 3 + empty
        ("/json_link", "results", {"type": "json_link", "next_url_path": "links.next"}, 3),
        ("/header_link", None, {"type": "header_link"}, 3),
        ("/single", None, {"type": "single_page"}, 1),
    ],
)
def test_every_paginator_reads_every_record_once(
    tmp_path: Path,
    api: tuple[str, ApiState],
    path: str,
    selector: str | None,
    paginator: dict[str, Any],
    pages: int,
) -> None:
    base, state = api
    config: dict[str, Any] = {"path": path, "paginator": paginator}
    if selector:
        config["data_selector"] = selector
    outcome, rows = _run(_project(tmp_path, base), config)
    assert outcome.exit_code == 0, outcome.error
    assert rows == records(8)
    assert len(state.seen) == pages
    assert all(s.headers["x-client"] == "osiris-tests" for s in state.seen)


def test_cursor_requests_carry_params_and_the_cursor(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    config = {
        "path": "/cursor",
        "params": {"status": "paid", "n": 3},
        "data_selector": "$.items",
        "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
    }
    outcome, _ = _run(_project(tmp_path, base), config)
    assert outcome.exit_code == 0, outcome.error
    assert [s.query for s in state.seen] == [
        {"status": "paid", "n": "3"},
        {"status": "paid", "n": "3", "cursor": "3"},
        {"status": "paid", "n": "3", "cursor": "6"},
    ]


AUTH = {
    "bearer": "      auth: {type: bearer, token: '${API_TOKEN}'}\n",
    "basic": "      auth: {type: basic, username: reader, password: '${API_TOKEN}'}\n",
    "key_header": "      auth: {type: api_key, name: X-Api-Key, value: '${API_TOKEN}'}\n",
    "key_query": "      auth: {type: api_key, name: api_key, value: '${API_TOKEN}', location: query}\n",
}


@pytest.mark.parametrize(("kind", "path"), [
    ("bearer", "/auth/bearer"),
    ("basic", "/auth/basic"),
    ("key_header", "/auth/key"),
    ("key_query", "/auth/key"),
])  # fmt: skip
def test_auth_variants_send_the_secret_and_never_record_it(
    tmp_path: Path, api: tuple[str, ApiState], kind: str, path: str
) -> None:
    base, state = api
    state.token = state.api_key = CANARY
    state.basic = ("reader", CANARY)
    project = _project(tmp_path, base, AUTH[kind])
    outcome, rows = _run(project, {"path": path}, environ={"API_TOKEN": CANARY})
    assert outcome.exit_code == 0, outcome.error
    assert [r["id"] for r in rows] == list(range(1, 9))
    (seen,) = state.seen
    sent = {
        "bearer": seen.headers.get("authorization"),
        "basic": seen.headers.get("authorization", "").startswith("Basic ") and CANARY,
        "key_header": seen.headers.get("x-api-key"),
        "key_query": seen.query.get("api_key"),
    }[kind]
    assert sent in (CANARY, f"Bearer {CANARY}")
    assert CANARY not in _records_text(outcome.run_dir)


def test_rejected_credentials_exit_5_and_the_echoed_token_is_masked(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    state.token = "the-right-token-0000"
    project = _project(tmp_path, base, AUTH["bearer"])
    outcome, _ = _run(project, {"path": "/auth/bearer"}, environ={"API_TOKEN": CANARY})
    assert outcome.exit_code == ExitCode.CONFIGURATION
    assert "401" in (outcome.error or "") and "token rejected" in (outcome.error or "")
    assert CANARY not in (outcome.error or "")
    assert CANARY not in _records_text(outcome.run_dir)


def test_an_error_names_status_url_and_message_without_the_query_key(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, _ = api
    project = _project(tmp_path, base, AUTH["key_query"])
    outcome, _ = _run(project, {"path": "/missing"}, environ={"API_TOKEN": CANARY})
    assert outcome.exit_code == ExitCode.RUN_FAILED
    error = outcome.error or ""
    assert "404" in error and "/missing?api_key=***" in error
    assert "no such collection" in error
    assert CANARY not in _records_text(outcome.run_dir)


def test_429_is_retried_after_retry_after(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, state = api
    state.fail_times = 2
    started = time.monotonic()
    outcome, rows = _run(_project(tmp_path, base), {"path": "/flaky", "retry_backoff": 0})
    assert outcome.exit_code == 0, outcome.error
    assert time.monotonic() - started >= 2.0  # two waits of Retry-After: 1
    assert len(rows) == 8 and len(state.seen) == 3
    log = (outcome.run_dir / "run.log").read_text(encoding="utf-8")
    assert "returned 429; retry 1 of 5" in log


def test_retries_give_up_with_a_clear_error(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, state = api
    state.fail_times = 10
    state.retry_after = "0"
    config = {"path": "/flaky", "max_retries": 2}
    outcome, _ = _run(_project(tmp_path, base), config)
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert "429" in (outcome.error or "") and "slow down" in (outcome.error or "")
    assert len(state.seen) == 3


def test_malformed_json_fails_the_step_clearly(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, _ = api
    outcome, _ = _run(_project(tmp_path, base), {"path": "/malformed"})
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert "not JSON" in (outcome.error or "") and "/malformed" in (outcome.error or "")


@pytest.mark.parametrize("batch_size", [50_000, 1])  # 1: every record past the first spilled
def test_later_pages_widen_the_schema_and_no_field_is_dropped(
    tmp_path: Path, api: tuple[str, ApiState], batch_size: int
) -> None:
    base, _ = api
    config = {
        "path": "/widen",
        "data_selector": "data",
        "paginator": {"type": "page_number"},
        "batch_size": batch_size,
    }
    outcome, rows = _run(_project(tmp_path, base), config)
    assert outcome.exit_code == 0, outcome.error
    assert rows == [
        {"id": "1", "amount": 10.0, "meta": '{"src":"a","n":1}', "note": None, "tags": None, "flag": None},
        {"id": "2", "amount": 2.5, "meta": '{"src":"b"}', "note": "late field", "tags": None, "flag": None},
        {"id": "x-3", "amount": None, "meta": None, "note": None, "tags": '["a","b"]', "flag": True},
    ]  # fmt: skip


def test_flatten_and_spilling_beyond_one_batch(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, _ = api
    config = {
        "path": "/widen",
        "data_selector": "data",
        "paginator": {"type": "page_number"},
        "flatten": True,
        "batch_size": 1,  # every record past the first is spilled to scratch
    }
    outcome, rows = _run(_project(tmp_path, base), config)
    assert outcome.exit_code == 0, outcome.error
    assert [r["meta__src"] for r in rows] == ["a", "b", None]
    assert [r["meta__n"] for r in rows] == [1, None, None]
    assert not list(tmp_path.rglob("*.arrow"))


def test_max_pages_stops_and_says_so(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, state = api
    config = {
        "path": "/cursor",
        "data_selector": "items",
        "paginator": {"type": "cursor", "cursor_path": "next"},
        "max_pages": 2,
    }
    outcome, rows = _run(_project(tmp_path, base), config)
    assert outcome.exit_code == 0, outcome.error
    assert len(rows) == 6 and len(state.seen) == 2
    assert "max_pages" in (outcome.run_dir / "run.log").read_text(encoding="utf-8")


INCREMENTAL = {
    "path": "/cursor",
    "data_selector": "items",
    "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
    "incremental": {
        "cursor_path": "updated_at",
        "start_param": "updated_since",
        "initial_value": "2024-01-01T00:00:02Z",
    },
}


def _state(project: Path) -> dict[str, Any]:
    path = state_path(project, "test-pipeline", "src")
    return json.loads(path.read_text(encoding="utf-8"))


def test_incremental_second_run_reads_only_new_records(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    project = _project(tmp_path, base)
    outcome, rows = _run(project, INCREMENTAL)
    assert outcome.exit_code == 0, outcome.error
    assert [r["id"] for r in rows] == [3, 4, 5, 6, 7, 8]
    assert state.seen[0].query["updated_since"] == "2024-01-01T00:00:02Z"
    assert _state(project)["last_value"] == "2024-01-01T00:00:08Z"

    state.records += records(2, start=9, day=2)
    state.seen.clear()
    outcome, rows = _run(project, INCREMENTAL, out="out2.parquet")
    assert outcome.exit_code == 0, outcome.error
    assert [r["id"] for r in rows] == [9, 10]
    assert [s.query.get("updated_since") for s in state.seen] == ["2024-01-01T00:00:08Z"]
    assert _state(project)["last_value"] == "2024-01-02T00:00:10Z"

    state.seen.clear()  # nothing new: an empty table with the known columns, state unchanged
    outcome, rows = _run(project, INCREMENTAL, out="out3.parquet")
    assert outcome.exit_code == 0, outcome.error
    assert rows == []
    assert pq.read_schema(project / "out3.parquet").names == ["id", "name", "updated_at"]
    assert _state(project)["last_value"] == "2024-01-02T00:00:10Z"


def test_lag_rereads_a_window(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, state = api
    config = {**INCREMENTAL, "incremental": {**INCREMENTAL["incremental"], "lag": 3}}
    project = _project(tmp_path, base)
    assert _run(project, config)[0].exit_code == 0
    state.seen.clear()
    outcome, rows = _run(project, config, out="again.parquet")
    assert outcome.exit_code == 0, outcome.error
    assert state.seen[0].query["updated_since"] == "2024-01-01T00:00:05Z"
    assert [r["id"] for r in rows] == [6, 7, 8]


def test_a_failed_page_leaves_the_state_untouched(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    project = _project(tmp_path, base)
    assert _run(project, INCREMENTAL)[0].exit_code == 0
    before = _state(project)
    state.records += records(9, start=9, day=3)
    state.broken_page = 1  # the second page fails every time
    outcome, _ = _run(project, {**INCREMENTAL, "max_retries": 1, "retry_backoff": 0})
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert "500" in (outcome.error or "") and "database is on fire" in (outcome.error or "")
    assert _state(project) == before


def test_a_failed_writer_leaves_the_state_untouched(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, _ = api
    project = _project(tmp_path, base)
    (project / "blocked").write_text("a file where the writer wants a folder", encoding="utf-8")
    outcome, _ = _run(project, INCREMENTAL, out="blocked/out.parquet")
    assert outcome.exit_code != 0
    assert not state_path(project, "test-pipeline", "src").exists()


# -- graphql.extractor --------------------------------------------------------------------------

GRAPHQL = {
    "endpoint": "/graphql",
    "query": "query Items($first: Int!, $after: String) { items { edges { node { id } } } }",
    "variables": {"first": 3},
    "pagination_enabled": True,
    "pagination_path": "data.items.pageInfo",
    "data_path": "data.items.edges[*].node",
}


def _graphql(
    project: Path,
    config: dict[str, Any],
    environ: dict[str, str] | None = None,
    out: str = "g.parquet",
) -> tuple[Any, list[dict[str, Any]]]:
    steps = [
        step("src", "graphql.extractor", "extractor", config, connection="@http.shop"),
        step("write", "filesystem.parquet_writer", "writer", {"path": out}, needs=["src"]),
    ]
    outcome, _ = run_steps(project, steps, environ=environ or {})
    rows = pq.read_table(project / out).to_pylist() if outcome.exit_code == 0 else []
    return outcome, rows


def test_graphql_pages_with_the_cursor_variable_and_flattens(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    state.token = CANARY
    project = _project(tmp_path, base, AUTH["bearer"])
    outcome, rows = _graphql(project, GRAPHQL, {"API_TOKEN": CANARY})
    assert outcome.exit_code == 0, outcome.error
    assert [r["id"] for r in rows] == list(range(1, 9))
    assert [r["meta.rank"] for r in rows] == [i * 10 for i in range(1, 9)]
    assert [s.query.get("after") for s in state.seen] == [None, "3", "6"]
    assert CANARY not in _records_text(outcome.run_dir)


def test_graphql_errors_fail_the_step_with_their_messages(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, _ = api
    config = {**GRAPHQL, "query": "query broken { nope }"}
    outcome, _ = _graphql(_project(tmp_path, base), config)
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert "Field 'nope' doesn't exist" in (outcome.error or "")


def test_graphql_incremental_passes_the_last_value_as_a_variable(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    config = {
        **GRAPHQL,
        "incremental": {"cursor_path": "updated_at", "variable": "since", "initial_value": "2024"},
    }
    project = _project(tmp_path, base)
    assert _graphql(project, config)[0].exit_code == 0
    state.records += records(2, start=9, day=5)
    state.seen.clear()
    outcome, rows = _graphql(project, config, out="g2.parquet")
    assert outcome.exit_code == 0, outcome.error
    assert [r["id"] for r in rows] == [9, 10]
    assert state.seen[0].query["since"] == "2024-01-01T00:00:08Z"


def test_5xx_is_retried_with_backoff(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, state = api
    state.fail_times, state.fail_status = 2, 503
    outcome, rows = _run(_project(tmp_path, base), {"path": "/flaky", "retry_backoff": 0.2})
    assert outcome.exit_code == 0, outcome.error
    assert len(rows) == 8 and len(state.seen) == 3
    log = (outcome.run_dir / "run.log").read_text(encoding="utf-8")
    assert "retry 1 of 5 in 0.20s" in log and "retry 2 of 5 in 0.40s" in log


def test_rate_limit_spaces_requests(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, state = api
    config = {k: v for k, v in INCREMENTAL.items() if k != "incremental"} | {"rate_limit": 5}
    started = time.monotonic()
    outcome, _ = _run(_project(tmp_path, base), config)
    assert outcome.exit_code == 0, outcome.error
    assert len(state.seen) == 3 and time.monotonic() - started >= 0.4  # 3 requests at 5/s


def test_an_unreachable_api_is_a_configuration_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project = _project(tmp_path, f"http://127.0.0.1:{port}")
    outcome, _ = _run(project, {"path": "/x", "max_retries": 1, "retry_backoff": 0})
    assert outcome.exit_code == ExitCode.CONFIGURATION
    assert "cannot reach" in (outcome.error or "")


def test_cancel_between_pages_keeps_the_state(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    import threading

    from osiris.runtime.cancel import CancelToken

    base, state = api
    state.records = records(60)
    state.delay = 0.1
    project = _project(tmp_path, base)
    token = CancelToken()
    threading.Timer(0.6, token.cancel).start()
    steps = [
        step("src", "rest.extractor", "extractor", INCREMENTAL, connection="@http.shop"),
        step("write", "filesystem.parquet_writer", "writer", {"path": "o.parquet"}, needs=["src"]),
    ]
    outcome, _ = run_steps(project, steps, environ={}, cancel=token)
    assert outcome.status == "cancelled"
    assert 1 <= len(state.seen) < 20  # stopped between pages, long before the last
    assert not state_path(project, "test-pipeline", "src").exists()
    assert not (project / "o.parquet").exists()


@pytest.mark.parametrize("kind", ["bearer", "key_query"])
def test_credentials_never_follow_a_redirect_to_another_origin(
    tmp_path: Path, api: tuple[str, ApiState], kind: str
) -> None:
    base, _ = api
    project = _project(tmp_path, base, AUTH[kind])
    outcome, rows = _run(project, {"path": "/hop"}, environ={"API_TOKEN": CANARY})
    assert outcome.exit_code == 0, outcome.error
    assert rows == [{"authorization": None, "api_key": None}]
    outcome, rows = _run(
        project, {"path": "/hop?same=1"}, environ={"API_TOKEN": CANARY}, out="same.parquet"
    )
    assert outcome.exit_code == 0, outcome.error
    sent = rows[0]["authorization"] if kind == "bearer" else rows[0]["api_key"]
    assert sent is not None and CANARY in sent  # the same origin still gets them


def test_graphql_inline_endpoint_as_upstream_wrote_it(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    config = {**GRAPHQL, "endpoint": base + "/graphql", "headers": {"User-Agent": "Osiris/1.0"}}
    config |= {"flatten_result": False, "max_pages": 2}
    steps = [
        step("src", "graphql.extractor", "extractor", config),
        step("write", "filesystem.parquet_writer", "writer", {"path": "g.parquet"}, needs=["src"]),
    ]
    (tmp_path / "osiris.yaml").write_text("", encoding="utf-8")
    outcome, _ = run_steps(tmp_path, steps, environ={})
    assert outcome.exit_code == 0, outcome.error
    rows = pq.read_table(tmp_path / "g.parquet").to_pylist()
    assert [r["id"] for r in rows] == list(range(1, 7))  # two pages of three
    assert rows[0]["meta"] == '{"rank":10}'
    assert {s.headers["user-agent"] for s in state.seen} == {"Osiris/1.0"}
    assert "max_pages" in (outcome.run_dir / "run.log").read_text(encoding="utf-8")
