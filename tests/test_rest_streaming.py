"""API records streamed to the next step as pages arrive, restarted with a replay when a later page widens the schema."""

from __future__ import annotations

import csv
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from osiris.runtime.contract.exits import ExitCode
from osiris.runtime.records.state import state_path
from tests.http_api import ApiState, serve
from tests.runtime_helpers import mysql_rows, pg_rows, run_steps, step, write_connections

PAGED = {
    "path": "/paged",
    "data_selector": "data",
    "paginator": {"type": "page_number", "total_path": "meta.total_pages"},
}
TABLE = "hs_orders"
COLUMNS = ("id", "amount", "flag", "name", "meta", "late")
RESTART = "restarting the load under the wider schema"


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    yield from serve()


def _record(i: int, page: int) -> dict[str, Any]:
    """Pages 1-4: amount an integer, flag a boolean; from page 5 a float and a string; the
    field `late` first appears on page 15."""
    record: dict[str, Any] = {
        "id": i,
        "amount": i if page < 5 else i + 0.5,
        "flag": i % 2 == 0 if page < 5 else ("yes" if i % 2 else "no"),
        "name": f"order {i}",
        "meta": {"page": page},
    }
    if page >= 15:
        record["late"] = f"late {i}"
    return record


def _pages(count: int = 20, size: int = 5) -> list[list[dict[str, Any]]]:
    return [[_record(p * size + k + 1, p + 1) for k in range(size)] for p in range(count)]


def _expected(pages: list[list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """Every record as the widened columns hold it: amount a float, flag and meta text."""
    rows = []
    for page in pages:
        for r in page:
            flag = r["flag"] if isinstance(r["flag"], str) else ("true" if r["flag"] else "false")
            meta = json.dumps(r["meta"], separators=(",", ":"))
            rows.append((r["id"], float(r["amount"]), flag, r["name"], meta, r.get("late")))
    return rows


def _fields(db: dict[str, Any]) -> str:
    return json.dumps({k: db[k] for k in ("host", "port", "user", "password", "database")})


def _project(
    tmp_path: Path,
    base: str,
    mysql_db: dict[str, Any] | None = None,
    pg_db: dict[str, Any] | None = None,
) -> Path:
    text = f"version: 1\nconnections:\n  http:\n    shop:\n      base_url: {base}\n"
    if mysql_db:
        text += f"  mysql:\n    my: {_fields(mysql_db)}\n"
    if pg_db:
        text += f"  postgres:\n    pg: {_fields(pg_db)}\n"
    write_connections(tmp_path, text)
    return tmp_path


def _pages_asked(state: ApiState) -> Counter[str]:
    return Counter(s.query.get("page", "1") for s in state.seen if s.path == "/paged")


def _metrics(run_dir: Path) -> dict[str, Any]:
    steps: dict[str, Any] = json.loads((run_dir / "metrics.json").read_text())["steps"]
    return steps


def _restarts(run_dir: Path) -> list[str]:
    return [line for line in (run_dir / "run.log").read_text().splitlines() if RESTART in line]


class _Watch:
    """A run observer that opens the API's gate once the writer has received rows."""

    def __init__(self, gate: threading.Event, sink: str) -> None:
        self.gate = gate
        self.sink = sink

    def on_event(self, event: dict[str, Any]) -> None:
        pass

    def on_progress(self, step_id: str, rows: int) -> None:
        if step_id == self.sink and rows > 0:
            self.gate.set()

    def on_warning(self, message: str) -> None:
        pass


@pytest.mark.parametrize("writer", ["parquet", "postgres"])
def test_the_writer_has_rows_before_the_last_page_is_asked_for(
    tmp_path: Path, api: tuple[str, ApiState], pg_db: dict[str, Any], writer: str
) -> None:
    base, state = api
    state.pages = [[{"id": p * 3 + k, "name": f"r{p}"} for k in range(3)] for p in range(20)]
    state.gate = threading.Event()  # the last page waits until the writer has rows
    project = _project(tmp_path, base, pg_db=pg_db)
    sink = (
        step("write", "filesystem.parquet_writer", "writer", {"path": "o.parquet"}, needs=["src"])
        if writer == "parquet"
        else step(
            "write", "postgres.writer", "writer", {"table": TABLE}, needs=["src"],
            connection="@postgres.pg",
        )
    )  # fmt: skip
    steps = [step("src", "rest.extractor", "extractor", PAGED, connection="@http.shop"), sink]
    outcome, run_dir = run_steps(project, steps, observer=_Watch(state.gate, "write"))
    assert outcome.exit_code == 0, outcome.error
    assert state.gate_was_open is True  # rows reached the writer while page 20 was still due
    assert _metrics(run_dir)["write"]["rows_out"] == 60
    if writer == "postgres":
        assert pg_rows(pg_db, f"SELECT count(*) FROM {TABLE}") == [(60,)]


def _read_target(
    target: str, project: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]
) -> list[tuple[Any, ...]]:
    select = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY id"
    if target == "postgres":
        return pg_rows(pg_db, select)
    if target == "mysql":
        return [tuple(r) for r in mysql_rows(mysql_db, select)]
    if target == "duckdb":
        with duckdb.connect(str(project / "wh.duckdb")) as con:
            return [tuple(r) for r in con.execute(select).fetchall()]
    if target in ("parquet", "processor"):
        table = pq.read_table(project / "out.parquet").select(list(COLUMNS))
        return sorted(tuple(r.values()) for r in table.to_pylist())
    with (project / "out.csv").open(newline="") as f:  # text: the values as the CSV spells them
        return sorted(
            (int(r["id"]), float(r["amount"]), r["flag"], r["name"], r["meta"], r["late"] or None)
            for r in csv.DictReader(f)
        )


def _staging(
    target: str, project: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]
) -> list[str]:
    """Every table of the target's database, or every file beside a file target."""
    if target == "postgres":
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        return sorted(r[0] for r in pg_rows(pg_db, sql))
    if target == "mysql":
        return sorted(r[0] for r in mysql_rows(mysql_db, "SHOW TABLES"))
    if target == "duckdb":
        with duckdb.connect(str(project / "wh.duckdb")) as con:
            return sorted(r[0] for r in con.execute("SHOW TABLES").fetchall())
    return sorted(p.name for p in project.iterdir() if p.is_file() and p.name.startswith("out"))


def _files(project: Path) -> list[str]:
    """The files beside the targets: a writer's temp file would show here."""
    return sorted(p.name for p in project.iterdir() if p.name not in ("build", "runs"))


def _target_steps(target: str) -> list[dict[str, Any]]:
    load = {"table": TABLE, "write_mode": "append"}
    out = "out.csv" if target == "csv" else "out.parquet"
    if target == "postgres":
        return [
            step("w", "postgres.writer", "writer", load, needs=["src"], connection="@postgres.pg")
        ]
    if target == "mysql":
        return [step("w", "mysql.writer", "writer", load, needs=["src"], connection="@mysql.my")]
    if target == "duckdb":
        return [step("w", "duckdb.writer", "writer", {**load, "path": "wh.duckdb"}, needs=["src"])]
    if target == "processor":  # the extract is stored in the run database, then queried
        query = {"query": "SELECT * FROM src"}
        return [
            step("q", "duckdb.processor", "processor", query, needs=["src"]),
            step("w", "filesystem.parquet_writer", "writer", {"path": out}, needs=["q"]),
        ]
    writer = f"filesystem.{target}_writer"
    return [step("w", writer, "writer", {"path": out}, needs=["src"])]


def _create_target(
    target: str, project: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]
) -> tuple[Any, ...]:
    """The target table with one row already in it (appending must keep it, once)."""
    row = (0, 0.25, "old", "order 0", "{}", None)
    values = "(0, 0.25, 'old', 'order 0', '{}', NULL)"
    if target == "postgres":
        pg_rows(
            pg_db,
            f"CREATE TABLE {TABLE} (id bigint, amount double precision, flag text, name text, "
            "meta text, late text)",
            f"INSERT INTO {TABLE} VALUES {values}",
        )
    elif target == "mysql":
        mysql_rows(
            mysql_db,
            f"CREATE TABLE {TABLE} (id BIGINT, amount DOUBLE, flag TEXT, name TEXT, meta TEXT, "
            "late TEXT)",
            f"INSERT INTO {TABLE} VALUES {values}",
        )
    else:
        with duckdb.connect(str(project / "wh.duckdb")) as con:
            con.execute(
                f"CREATE TABLE {TABLE} (id BIGINT, amount DOUBLE, flag VARCHAR, name VARCHAR, "
                "meta VARCHAR, late VARCHAR)"
            )
            con.execute(f"INSERT INTO {TABLE} VALUES {values}")
    return row


@pytest.mark.parametrize(
    ("target", "existing"),
    [
        ("postgres", False),
        ("postgres", True),
        ("mysql", False),
        ("mysql", True),
        ("duckdb", False),
        ("duckdb", True),
        ("parquet", False),
        ("csv", False),
        ("processor", False),
    ],
)
def test_a_field_on_page_15_and_wider_types_reach_every_target(
    tmp_path: Path,
    api: tuple[str, ApiState],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    target: str,
    existing: bool,
) -> None:
    base, state = api
    state.pages = _pages()
    project = _project(tmp_path, base, mysql_db, pg_db)
    before = [_create_target(target, project, mysql_db, pg_db)] if existing else []
    config = {**PAGED, "batch_size": 5}  # a page a batch: what is sent does not depend on time
    steps = [step("src", "rest.extractor", "extractor", config, connection="@http.shop")]
    outcome, run_dir = run_steps(project, steps + _target_steps(target))
    assert outcome.exit_code == 0, outcome.error
    assert _read_target(target, project, mysql_db, pg_db) == before + _expected(state.pages)
    assert _pages_asked(state) == Counter(str(p) for p in range(1, 21))  # each page once
    metrics = _metrics(run_dir)
    assert metrics["src"]["rows_out"] == 100 and metrics["w"]["rows_out"] == 100
    restarts = _restarts(run_dir)
    assert len(restarts) == 2, restarts
    assert "page 5 brought 'amount' integer -> number, 'flag' boolean -> string" in restarts[0]
    assert "page 15 brought field 'late'" in restarts[1]
    assert "replaying 70 record(s) of 14 page(s)" in restarts[1]
    expected_names = {"postgres": [TABLE], "mysql": [TABLE], "duckdb": [TABLE]}
    out = ["out.csv"] if target == "csv" else ["out.parquet"]
    assert _staging(target, project, mysql_db, pg_db) == expected_names.get(target, out)
    files = {"duckdb": ["wh.duckdb"], "postgres": [], "mysql": []}.get(target, out)
    assert _files(project) == sorted(["osiris_connections.yaml", *files])


@pytest.mark.parametrize("target", ["postgres", "mysql", "duckdb"])
def test_a_page_that_fails_after_a_restart_leaves_the_target_as_it_was(
    tmp_path: Path,
    api: tuple[str, ApiState],
    mysql_db: dict[str, Any],
    pg_db: dict[str, Any],
    target: str,
) -> None:
    base, state = api
    state.pages = _pages()
    state.broken_page = 10  # after the restart page 5 caused
    project = _project(tmp_path, base, mysql_db, pg_db)
    before = _create_target(target, project, mysql_db, pg_db)
    config = {**PAGED, "max_retries": 0}
    steps = [step("src", "rest.extractor", "extractor", config, connection="@http.shop")]
    outcome, run_dir = run_steps(project, steps + _target_steps(target))
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert "database is on fire" in (outcome.error or "")
    assert len(_restarts(run_dir)) == 1
    assert _read_target(target, project, mysql_db, pg_db) == [before]
    assert _staging(target, project, mysql_db, pg_db) == [TABLE]


def test_many_widenings_read_the_remaining_pages_before_the_last_restart(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    # page p (from 2 to 9) brings field f<p>: eight widenings
    state.pages = [
        [{"id": p * 2 + k, **{f"f{q}": q for q in range(2, min(p, 9) + 1)}} for k in range(2)]
        for p in range(1, 13)
    ]
    project = _project(tmp_path, base)
    steps = [step("src", "rest.extractor", "extractor", PAGED, connection="@http.shop")]
    outcome, run_dir = run_steps(project, steps + _target_steps("parquet"))
    assert outcome.exit_code == 0, outcome.error
    restarts = _restarts(run_dir)
    assert len(restarts) == 3, restarts  # two optimistic, then one after reading every page
    assert "reading every remaining page first" in restarts[2]
    rows = pq.read_table(project / "out.parquet").to_pylist()
    assert [r["id"] for r in rows] == list(range(2, 26))
    assert rows[-1] == {"id": 25, **{f"f{q}": q for q in range(2, 10)}}
    assert rows[0] == {"id": 2, **{f"f{q}": None for q in range(2, 10)}}
    assert _pages_asked(state) == Counter(str(p) for p in range(1, 13))


def test_a_page_failing_while_the_last_restart_reads_ahead_fails_the_extractor(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    state.pages = [
        [{"id": p, **{f"f{q}": q for q in range(2, min(p, 4) + 1)}}] for p in range(1, 10)
    ]
    state.broken_page = 7  # read ahead after the third restart (page 4)
    project = _project(tmp_path, base)
    config = {**PAGED, "max_retries": 0}
    steps = [step("src", "rest.extractor", "extractor", config, connection="@http.shop")]
    outcome, run_dir = run_steps(project, steps + _target_steps("parquet"))
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert outcome.failed_step == "src" and "database is on fire" in (outcome.error or "")
    assert len(_restarts(run_dir)) == 3
    assert _files(project) == ["osiris_connections.yaml"]


def test_incremental_state_keeps_the_widened_columns(
    tmp_path: Path, api: tuple[str, ApiState]
) -> None:
    base, state = api
    state.records = [
        {"id": i, "updated_at": f"2024-01-01T00:00:{i:02d}Z", "n": i if i < 10 else i / 2}
        | ({"late": "x"} if i > 20 else {})
        for i in range(1, 31)
    ]
    config = {
        "path": "/cursor",
        "data_selector": "items",
        "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "cursor"},
        "incremental": {"cursor_path": "updated_at", "start_param": "updated_since"},
    }
    project = _project(tmp_path, base)
    steps = [step("src", "rest.extractor", "extractor", config, connection="@http.shop")]
    outcome, run_dir = run_steps(project, steps + _target_steps("parquet"))
    assert outcome.exit_code == 0, outcome.error
    assert len(_restarts(run_dir)) == 2
    saved = json.loads(state_path(project, "test-pipeline", "src").read_text())
    assert saved["last_value"] == "2024-01-01T00:00:30Z"
    assert saved["columns"] == [
        ["id", "integer"], ["updated_at", "string"], ["n", "number"], ["late", "string"]
    ]  # fmt: skip
    assert pq.read_table(project / "out.parquet").num_rows == 30


def test_graphql_streams_and_replays_like_rest(tmp_path: Path, api: tuple[str, ApiState]) -> None:
    base, state = api
    state.records = [
        {"id": i, "updated_at": f"2024-01-01T00:00:{i:02d}Z"} | ({"late": i} if i > 6 else {})
        for i in range(1, 13)
    ]
    config = {
        "endpoint": "/graphql",
        "query": "query Items($after: String) { items { edges { node { id } } } }",
        "variables": {"first": 3},
        "pagination_enabled": True,
        "pagination_path": "data.items.pageInfo",
        "data_path": "data.items.edges[*].node",
    }
    project = _project(tmp_path, base)
    steps = [step("src", "graphql.extractor", "extractor", config, connection="@http.shop")]
    outcome, run_dir = run_steps(project, steps + _target_steps("parquet"))
    assert outcome.exit_code == 0, outcome.error
    assert ["page 3 brought field 'late'" in line for line in _restarts(run_dir)] == [True]
    rows = pq.read_table(project / "out.parquet").to_pylist()
    assert [(r["id"], r["late"], r["meta.rank"]) for r in rows] == [
        (i, i if i > 6 else None, i * 10) for i in range(1, 13)
    ]
    assert [s.query.get("after") for s in state.seen] == [None, "3", "6", "9"]


def _stream(
    tmp_path: Path, pages: list[list[dict[str, Any]]], asked: list[int], linger: float = 0
) -> Any:
    from osiris.runtime.drivers.json_records import RecordSink, RecordStream

    def read() -> Iterator[list[dict[str, Any]]]:
        for number, page in enumerate(pages, 1):
            asked.append(number)
            yield page

    return RecordStream(read(), RecordSink(2), tmp_path / "log", lambda _: None, linger=linger)


def test_a_record_stream_replays_its_log_and_removes_it(tmp_path: Path) -> None:
    from osiris.runtime.drivers.replay import StreamWidened

    pages = [[{"a": 1}, {"a": 2}, {"a": 3}], [{"a": 4}], [{"a": 5.5, "b": True}], [{"a": 6}]]
    asked: list[int] = []
    stream = _stream(tmp_path, pages, asked)
    first = stream.reader()
    assert str(first.schema) == "a: int64"
    assert [b.num_rows for b in (first.read_next_batch(), first.read_next_batch())] == [2, 1]
    assert first.read_next_batch().num_rows == 1  # page 1's end, then page 2
    with pytest.raises(StreamWidened, match="page 3 brought 'a' integer -> number, field 'b'"):
        first.read_next_batch()
    assert stream.widened and asked == [1, 2, 3]
    assert len(list((tmp_path / "log").iterdir())) == 1  # what was sent: one IPC stream
    again = stream.reader()
    assert not stream.widened
    assert again.read_all().to_pylist() == [
        {"a": 1.0, "b": None}, {"a": 2.0, "b": None}, {"a": 3.0, "b": None},
        {"a": 4.0, "b": None}, {"a": 5.5, "b": True}, {"a": 6.0, "b": None},
    ]  # fmt: skip
    assert asked == [1, 2, 3, 4]  # no page twice
    assert not (tmp_path / "log").exists()  # the last page sent: nothing can widen any more
    stream.close()


def test_closing_a_record_stream_midway_removes_its_log(tmp_path: Path) -> None:
    asked: list[int] = []
    stream = _stream(tmp_path, [[{"a": i}, {"a": i}] for i in range(5)], asked)
    reader = stream.reader()
    reader.read_next_batch()
    reader.read_next_batch()
    assert (tmp_path / "log").exists()
    stream.close()
    assert not (tmp_path / "log").exists() and asked == [1, 2]


def test_fast_pages_make_batches_once_the_first_went(tmp_path: Path) -> None:
    asked: list[int] = []
    stream = _stream(tmp_path, [[{"a": i}] for i in range(5)], asked, linger=60)
    sizes = [batch.num_rows for batch in stream.reader()]
    assert sizes == [1, 2, 2]  # the first page at once, then whole batches (RecordSink(2))
    stream.close()
