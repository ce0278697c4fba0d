"""`osiris generate` / `prompts build-context` through the real Anthropic SDK against a local
stand-in of the Messages API: what each request carried, the loop's outcome, errors, secrets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_standin import StandIn, error_answer, text_answer, tool_answer

from osiris.compiler.cli import osiris_main
from osiris.compiler.registry import load_registry

KEY = "sk-ant-test-key"
CANARY = "canary-S3cr3t-9f2e"
CONNECTIONS = f"""version: 1
connections:
  mysql:
    shop:
      host: 127.0.0.1
      database: shop
      user: app
      password: {CANARY}
  supabase:
    main:
      dsn: postgresql://app:{CANARY}@db.example.com/postgres
      default: true
    analytics:
      dsn: ${{ANALYTICS_DSN}}
"""


def extract(step_id: str = "extract-orders", table: str = "orders") -> dict[str, Any]:
    return {
        "id": step_id,
        "component": "mysql.extractor",
        "mode": "read",
        "config": {"connection": "@mysql.shop", "table": table},
    }


def writer(needs: list[str] | None = None, **config: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "id": "load-orders",
        "component": "supabase.writer",
        "mode": "write",
        "config": {"connection": "@supabase.main", "table": "orders", **config},
    }
    if needs is not None:
        step["needs"] = needs
    return step


def pipeline(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "orders-to-supabase", "steps": list(steps), **top}


GOOD = pipeline(extract(), writer(["extract-orders"], write_mode="append"))


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    server = StandIn().start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANALYTICS_DSN", f"postgresql://u:{CANARY}@x/y")
    for name in ("ANTHROPIC_AUTH_TOKEN", "OSIRIS_LLM_MODEL", "OSIRIS_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "osiris_connections.yaml").write_text(CONNECTIONS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def generate(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = osiris_main(
        [
            "generate",
            "copy orders from the shop to supabase",
            "-o",
            "p.oml",
            "--format",
            "json",
            *extra,
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def assert_no_secret(server: StandIn) -> None:
    assert server.requests
    for request in server.requests:
        assert CANARY not in request.raw.decode()
        assert CANARY not in json.dumps(request.headers)


def test_valid_first_try_writes_the_pipeline(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standin.script = [tool_answer(GOOD)]
    code, out = generate(capsys)
    assert code == 0 and out["ok"] is True and out["draft_path"] is None
    text = (project / "p.oml").read_text()
    assert text.startswith("# request: copy orders from the shop to supabase\n")
    assert "connection: '@mysql.shop'" in text or 'connection: "@mysql.shop"' in text
    assert osiris_main(["check", "p.oml"]) == 0
    [request] = standin.messages_requests
    body = request.body
    # headers the real API needs; the key only in its header
    sent_key = request.headers.get("x-api-key") or request.headers["authorization"]
    assert sent_key.removeprefix("Bearer ") == KEY and request.headers["anthropic-version"]
    assert body["tool_choice"] == {"type": "tool", "name": "emit_pipeline"}
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert '"mysql.writer"' in body["system"][0]["text"]  # the registry context
    user = body["messages"][0]["content"]
    assert "@mysql.shop" in user and "@supabase.main (default)" in user
    assert "@supabase.analytics" in user
    assert_no_secret(standin)
    assert out["usage"]["model_calls"] == 1 and out["usage"]["input_tokens"] > 0
    assert out["usage"]["cache_creation_input_tokens"] > 0


def test_legacy_keys_are_fixed_by_rule_without_another_call(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = pipeline(
        extract(),
        {**writer(write_mode="append"), "depends_on": ["extract-orders"]},
        version="0.1.0",
    )
    standin.script = [tool_answer(legacy)]
    code, out = generate(capsys)
    assert code == 0, out
    assert len(standin.messages_requests) == 1
    fixed = out["attempts"][0]["fixed_by"]
    assert {f["code"] for f in fixed} == {"OML005"} and len(fixed) == 2
    assert all(f["by"] == "rule" for f in fixed)
    text = (project / "p.oml").read_text()
    assert "depends_on" not in text and "needs:" in text and 'oml_version: "0.1.0"' in text
    # rendered in the canonical key order after the renames
    assert text.index("needs:") < text.index("config:", text.index("load-orders"))


def test_repair_loop_sends_diagnostics_back_and_succeeds(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invented = pipeline(
        extract(),
        {**writer(["extract-orders"], sync_strategy="full"), "mode": "upsert"},
    )
    standin.script = [tool_answer(invented), tool_answer(GOOD)]
    code, out = generate(capsys)
    assert code == 0 and out["ok"]
    first, second = standin.messages_requests
    # the second request replays the tool call and answers it with the diagnostics
    assistant, result = second.body["messages"][1], second.body["messages"][2]
    assert assistant["role"] == "assistant" and assistant["content"][0]["type"] == "tool_use"
    block = result["content"][0]
    assert block["type"] == "tool_result" and block["is_error"] is True
    assert block["tool_use_id"] == assistant["content"][0]["id"]
    feedback = block["content"]
    assert "OML015" in feedback and "sync_strategy" in feedback
    assert "| " in feedback  # the offending source line
    assert second.body["system"] == first.body["system"]
    assert [a["attempt"] for a in out["attempts"]] == [1, 2]
    assert out["attempts"][0]["ok"] is False and out["attempts"][1]["ok"] is True
    assert {f["code"] for f in out["attempts"][1]["fixed_by"] if f["by"] == "model"} >= {"OML015"}
    # the system block is cached after the first call
    assert out["usage"]["cache_read_input_tokens"] > 0
    assert_no_secret(standin)


def test_two_inputs_read_as_one_is_repaired(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    join = {
        "id": "join",
        "component": "duckdb.processor",
        "mode": "transform",
        "needs": ["extract-orders", "extract-customers"],
        "config": {"query": "SELECT * FROM input"},
    }
    fixed_join = {
        **join,
        "config": {
            "query": 'SELECT o.*, c.name FROM "extract-orders" o '
            'JOIN "extract-customers" c ON c.id = o.customer_id'
        },
    }
    customers = extract("extract-customers", "customers")
    bad = pipeline(extract(), customers, join, writer(["join"]))
    good = pipeline(extract(), customers, fixed_join, writer(["join"]))
    standin.script = [tool_answer(bad), tool_answer(good)]
    code, _ = generate(capsys)
    assert code == 0
    feedback = standin.messages_requests[1].last_user_text()
    assert "OML037" in feedback and "input" in feedback


def test_give_up_keeps_best_attempt_as_draft(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_needs = pipeline(extract(), writer())  # the writer reads nothing
    worse = pipeline(extract(), {**writer(), "mode": "upsert"})
    standin.script = [tool_answer(missing_needs), tool_answer(worse), tool_answer(missing_needs)]
    code, out = generate(capsys, "--max-attempts", "2")
    assert code == 2 and out["ok"] is False and out["path"] is None
    assert len(standin.messages_requests) == 2  # bounded by --max-attempts
    assert not (project / "p.oml").exists()
    draft = project / "p.draft.oml"
    assert out["draft_path"] == "p.draft.oml" and draft.is_file()
    assert "mode: write" in draft.read_text()  # the first attempt: one error, not two
    assert [a["errors"] for a in out["attempts"]] == [1, 2]
    assert out["attempts"][0]["diagnostics"][0]["code"] == "OML035"


def test_give_up_text_output_prints_diagnostics(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standin.script = [tool_answer(pipeline(extract(), writer()))]
    code = osiris_main(["generate", "copy orders", "-o", "p.oml", "--max-attempts", "1"])
    captured = capsys.readouterr()
    assert code == 2
    assert "OML035" in captured.out and "p.draft.oml" in captured.out
    assert "nothing written at p.oml" in captured.out
    assert not (project / "p.oml").exists()


def test_answer_without_tool_call_is_fed_back(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standin.script = [text_answer("Sure! Here is your pipeline: ..."), tool_answer(GOOD)]
    code, _ = generate(capsys)
    assert code == 0
    second = standin.messages_requests[1].body["messages"]
    assert second[-1]["role"] == "user" and "without calling emit_pipeline" in second[-1]["content"]


def test_model_and_base_url_from_the_environment(
    standin: StandIn,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OSIRIS_LLM_MODEL", "claude-haiku-5-5")
    standin.script = [tool_answer(GOOD), tool_answer(GOOD)]
    generate(capsys)
    assert standin.messages_requests[0].body["model"] == "claude-haiku-5-5"
    generate(capsys, "--model", "claude-opus-5-5")
    assert standin.messages_requests[1].body["model"] == "claude-opus-5-5"


# -- errors: exit 5, one line, never the key ------------------------------------------------------


def test_no_key_is_a_configuration_error(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    assert osiris_main(["generate", "x", "-o", "p.oml"]) == 5
    err = capsys.readouterr().err
    assert "ANTHROPIC_API_KEY" in err and len(err.strip().splitlines()) == 1
    assert not (project / "p.oml").exists()


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (error_answer(401, "authentication_error", "invalid x-api-key"), "refused the key"),
        (error_answer(429, "rate_limit_error", "Number of requests exceeded"), "rate limited"),
        (error_answer(404, "not_found_error", "model: claude-nope"), "not found"),
        (error_answer(529, "overloaded_error", "Overloaded"), "529"),
    ],
)
def test_api_errors_exit_5_with_one_line(
    standin: StandIn,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    answer: dict[str, Any],
    words: str,
) -> None:
    standin.script = [answer]
    code = osiris_main(["generate", "copy orders", "-o", "p.oml"])
    err = capsys.readouterr().err
    assert code == 5 and words in err and len(err.strip().splitlines()) == 1
    assert KEY not in err and "Traceback" not in err
    code, out = generate(capsys)  # the script is empty now: a 500, also exit 5 in JSON
    assert code == 5 and out["ok"] is False and out["exit_code"] == 5


def test_wrong_key_is_refused_by_the_standin(
    standin: StandIn,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-0123456789")
    assert osiris_main(["generate", "x", "-o", "p.oml"]) == 5
    err = capsys.readouterr().err
    assert "401" in err and "sk-ant-wrong-0123456789" not in err


def test_unreachable_api_is_a_configuration_error(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OSIRIS_LLM_MAX_RETRIES", "0")
    assert osiris_main(["generate", "x", "-o", "p.oml"]) == 5
    err = capsys.readouterr().err
    assert f"cannot reach the API at http://127.0.0.1:{port}" in err


# -- the context ----------------------------------------------------------------------------------


def test_build_context_is_cached_and_counted_exactly_with_a_key(
    standin: StandIn, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert osiris_main(["prompts", "build-context", "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["cached"] is False and first["components"] == len(load_registry())
    assert first["tokens_estimate"] <= 1500
    assert first["tokens_exact"] and first["tokens_exact"] > 0
    [count] = [r for r in standin.requests if r.path == "/v1/messages/count_tokens"]
    assert count.body["system"][0]["text"].endswith(
        json.dumps(first["context"], separators=(",", ":"))
    )
    cache = Path(first["cache_file"])
    assert cache.parent == project / ".osiris" / "prompts" and cache.is_file()
    assert osiris_main(["prompts", "build-context", "--format", "json", "--out", "ctx.json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cached"] is True and second["context"] == first["context"]
    assert json.loads((project / "ctx.json").read_text()) == first["context"]
    fields = {f for c in first["context"]["components"].values() for f in c["f"]}
    assert fields and not fields & {"password", "service_role_key", "key", "dsn", "host", "user"}


def test_discover_sends_the_real_verified_schema_with_masked_samples(
    standin: StandIn,
    project: Path,
    mysql_db: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--discover end to end: a real MariaDB table read through the discovery cache; the prompt
    carries its columns and masked samples, never a personal value or a secret."""
    import pymysql

    conn = pymysql.connect(**mysql_db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE orders (id INT PRIMARY KEY, customer_email VARCHAR(200), amount INT)"
        )
        cur.execute("INSERT INTO orders VALUES (1, 'alice.smith@example.org', 30)")
    conn.close()
    fields = {k: mysql_db[k] for k in ("host", "port", "database", "user")}
    shop = "".join(f"      {k}: {v}\n" for k, v in fields.items())
    (project / "osiris_connections.yaml").write_text(
        CONNECTIONS.replace(
            f"      host: 127.0.0.1\n      database: shop\n      user: app\n"
            f"      password: {CANARY}\n",
            shop,
        )
    )
    standin.script = [tool_answer(GOOD)]
    code, out = generate(capsys, "--discover", "@mysql.shop")
    assert code == 0, out
    assert [t["table"] for t in out["tables_sent"]] == [f"{mysql_db['database']}.orders"]
    user = json.dumps(standin.messages_requests[0].body["messages"][0]["content"])
    assert "customer_email" in user and "amount" in user
    assert "alice.smith@example.org" not in user  # masked before it can reach a prompt
    assert "a***@e***" in user  # ... yet its shape is there for the model
    assert (project / ".osiris" / "cache" / "discovery").is_dir()  # the same cache as discover
    assert_no_secret(standin)


def test_a_misspelt_discovered_column_is_fed_back_and_repaired(
    standin: StandIn,
    project: Path,
    mysql_db: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The loop checks with the catalogs --discover read (a real MariaDB table): a column the
    model misspelt is OML151, sent back on its line, and the next answer is the one saved."""
    import pymysql

    conn = pymysql.connect(**mysql_db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE lg_orders (id INT PRIMARY KEY, customer_id INT, amount INT)")
    conn.close()
    fields = {k: mysql_db[k] for k in ("host", "port", "database", "user")}
    shop = "".join(f"      {k}: {v}\n" for k, v in fields.items())
    (project / "osiris_connections.yaml").write_text(
        CONNECTIONS.replace(
            f"      host: 127.0.0.1\n      database: shop\n      user: app\n"
            f"      password: {CANARY}\n",
            shop,
        )
    )

    def with_columns(*columns: str) -> dict[str, Any]:
        source = extract(table="lg_orders")
        source["config"]["columns"] = list(columns)
        return pipeline(source, writer(["extract-orders"], write_mode="append"))

    standin.script = [
        tool_answer(with_columns("id", "customer_id", "amout")),
        tool_answer(with_columns("id", "customer_id", "amount")),
    ]
    code, out = generate(capsys, "--discover", "@mysql.shop")
    assert code == 0, out
    first, second = out["attempts"]
    assert [d["code"] for d in first["diagnostics"]] == ["OML151"]
    assert "column 'amout' is not in table 'lg_orders'" in first["diagnostics"][0]["summary"]
    assert second["ok"] and {"by": "model", "code": "OML151"} in second["fixed_by"]
    feedback = standin.messages_requests[1].last_user_text()
    # on the misspelt name's line and column of the text sent back, with the name it meant
    assert "OML151 error at 11:34: column 'amout'" in feedback
    assert "Suggested: Change to 'amount'." in feedback
    text = (project / "p.oml").read_text()
    assert "amount" in text and "amout" not in text
    assert osiris_main(["check", "p.oml"]) == 0  # what omlc check says with the same cache
    assert_no_secret(standin)


def test_discovered_schema_is_ranked_sent_and_reported(
    standin: StandIn,
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--discover through the adapter's seam (discovery itself is tested with it end to end):
    only the relevant tables go out, named in tables_sent; samples as masked."""
    from test_llm_units import shop

    from osiris.compiler.llm import discover

    seen: list[Any] = []

    def catalogs(refs: list[str], **kwargs: Any) -> list[Any]:
        seen.append((refs, kwargs["project_root"], kwargs["connections_path"]))
        return [(refs[0], shop(extra_tables=60))]

    monkeypatch.setattr(discover, "discovered_catalogs", catalogs)
    standin.script = [tool_answer(GOOD)]
    code, out = generate(capsys, "--discover", "@postgres.shop", "--schema-budget", "300")
    assert code == 0
    assert seen == [(["@postgres.shop"], project, project / "osiris_connections.yaml")]
    assert [t["table"] for t in out["tables_sent"]] == ["public.orders"]  # the request names it
    user = standin.messages_requests[0].body["messages"][0]["content"]
    assert "Discovered schema of @postgres.shop" in user and "public.orders ~120000 rows" in user
    assert "legacy_table_7" not in user and "public.customers" not in user
    assert_no_secret(standin)


def test_usage_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert osiris_main(["generate", "x", "-o", "p.oml", "--max-attempts", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert osiris_main(["generate", "x"]) == 2  # -o is required
    assert "-o" in capsys.readouterr().err
    assert osiris_main(["prompts"]) == 2
    assert "build-context" in capsys.readouterr().out
