"""The LLM front end's pure parts: context and its cache, table ranking, rendering, the loop's
decisions; and contract tests against the installed Anthropic SDK's types."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest

from osiris.compiler.frontend import check_text
from osiris.compiler.llm import client as llm
from osiris.compiler.llm.context import build_context, context_text, estimate_tokens, load_context
from osiris.compiler.llm.loop import Attempt, another_call, best_attempt, fixed_by_model
from osiris.compiler.llm.pipeline import render_pipeline, tool_definition
from osiris.compiler.llm.prompt import diagnostic_lines, request_params, system_blocks, user_turn
from osiris.compiler.llm.rank import rank_tables, words
from osiris.compiler.registry import default_root, load_registry
from osiris.runtime.catalog.model import Catalog, Column, ForeignKey, Table

# -- context ------------------------------------------------------------------------------------


def test_context_covers_every_component_within_budget_and_without_secrets() -> None:
    registry = load_registry()
    data = build_context(registry)
    assert sorted(data["components"]) == registry.names()
    assert estimate_tokens(context_text(data)) <= 1500
    writer = data["components"]["mysql.writer"]
    assert "r" not in writer and "m" not in writer  # the name says: a writer, mode write
    assert writer["c"] == "@mysql" and "connection" not in writer["f"]  # c stands for it
    assert "batch_size" not in writer["f"]  # a tuning knob whose default fits
    assert writer["f"]["write_mode"] == "append|replace|upsert=append"
    assert "password" not in writer["f"] and "host" not in writer["f"]
    assert "mode" not in writer["f"] and "upsert_keys" not in writer["f"]  # deprecated: hidden
    assert data["components"]["duckdb.processor"]["req"] == ["query"]
    rest, graphql = data["components"]["rest.extractor"], data["components"]["graphql.extractor"]
    assert rest["c"] == graphql["c"] == "@http"
    assert {"path", "data_selector", "paginator", "incremental"} <= set(rest["f"])
    assert {"endpoint", "query", "pagination_enabled", "data_path"} <= set(graphql["f"])
    assert "auth_token" not in graphql["f"] and "auth_type" not in graphql["f"]  # secret; upstream


def test_context_cache_is_rebuilt_when_a_spec_changes(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(str(default_root()), specs)
    project = tmp_path / "project"
    first = load_context(load_registry(specs), project)
    assert not first.cached
    again = load_context(load_registry(specs), project)
    assert again.cached and again.data == first.data
    spec = specs / "components" / "mysql.writer" / "spec.yaml"
    spec.write_text(spec.read_text().replace("default: append", "default: replace"))
    load_registry.cache_clear()
    changed = load_context(load_registry(specs), project)
    load_registry.cache_clear()
    assert not changed.cached and changed.fingerprint != first.fingerprint
    assert changed.data["components"]["mysql.writer"]["f"]["write_mode"] == (
        "append|replace|upsert=replace"
    )
    assert len(list((project / ".osiris" / "prompts").iterdir())) == 2


def test_damaged_context_cache_is_rebuilt(tmp_path: Path) -> None:
    first = load_context(load_registry(), tmp_path)
    [path] = (tmp_path / ".osiris" / "prompts").iterdir()
    path.write_text("{not json")
    again = load_context(load_registry(), tmp_path)
    assert not again.cached and again.data == first.data
    assert json.loads(path.read_text())["context"] == first.data


# -- ranking ------------------------------------------------------------------------------------


def col(name: str, db_type: str = "int", nullable: bool = False) -> Column:
    return Column(name, db_type, "int64", nullable)


def shop(extra_tables: int = 0) -> Catalog:
    tables = [
        Table(
            "orders",
            "public",
            (
                col("id"),
                col("customer_id"),
                col("amount", "numeric(12,2)"),
                col("created_at", "timestamp"),
            ),
            primary_key=("id",),
            foreign_keys=(ForeignKey(("customer_id",), "public", "customers", ("id",)),),
            row_estimate=120000,
            samples=({"id": 1, "customer_id": 7, "amount": "12.50", "created_at": "2024-01-02"},),
        ),
        Table(
            "customers",
            "public",
            (col("id"), col("email", "text"), col("country", "text", True)),
            primary_key=("id",),
            row_estimate=5000,
            samples=({"id": 7, "email": "***@***", "country": "DE"},),
        ),
        Table("audit_log", "public", (col("id"), col("payload", "jsonb")), row_estimate=9_000_000),
    ]
    for i in range(extra_tables):
        columns = tuple(col(f"attribute_{j}_{i}", "text") for j in range(12))
        tables.append(Table(f"legacy_table_{i}", "public", columns, row_estimate=10))
    return Catalog("postgres", tuple(tables))


def test_words_are_normalised() -> None:
    assert {"orders", "order", "customer", "customers", "country"} <= words(
        "Load the orders per customer and country"
    )
    assert "category" in words("categories") and "the" not in words("the")


def test_small_catalog_is_sent_whole_best_first() -> None:
    selection = rank_tables("daily order totals per customer", [("@postgres.shop", shop())], 1000)
    names = [t.name for t in selection.tables]
    assert names[0] == "orders" and set(names) == {"orders", "customers", "audit_log"}
    assert selection.omitted == ()
    assert (
        "public.orders ~120000 rows: id int pk, customer_id int fk→customers.id" in selection.text
    )
    assert '"email": "***@***"' in selection.text  # samples as given (masked upstream)
    assert selection.tokens == estimate_tokens(selection.text) <= 1000


def test_large_catalog_sends_only_relevant_tables_within_budget() -> None:
    catalogs = [("@postgres.shop", shop(extra_tables=60))]
    selection = rank_tables("copy orders with their customers' email", catalogs, 300)
    assert [t.name for t in selection.tables] == ["orders", "customers"]
    assert len(selection.omitted) == 61 and "@postgres.shop:public.audit_log" in selection.omitted
    assert selection.tokens <= 300
    assert "61 less relevant tables not shown" in selection.text
    assert [t["table"] for t in selection.to_dict()] == ["public.orders", "public.customers"]


def test_wide_table_is_trimmed_to_key_and_named_columns() -> None:
    columns = (col("id"), *(col(f"filler_{i}", "text") for i in range(80)), col("revenue"))
    wide = Table("sales", None, columns, primary_key=("id",))
    selection = rank_tables("sales revenue", [("@duckdb.lake", Catalog("duckdb", (wide,)))], 120)
    [sent] = selection.tables
    assert sent.columns_total == 82 and sent.columns_sent < 82
    assert "id int pk" in selection.text and "revenue int" in selection.text
    assert "more" in selection.text and selection.tokens <= 120


def test_no_relevant_table_sends_the_largest_that_fit() -> None:
    catalogs = [("@postgres.shop", shop(extra_tables=60))]
    selection = rank_tables("zzz qqq", catalogs, 200)
    assert selection.tables and selection.tables[0].name == "audit_log"
    assert selection.tokens <= 200


# -- rendering and prompts -----------------------------------------------------------------------


def test_rendered_pipeline_always_parses_with_quoted_refs() -> None:
    answer = {
        "name": "x",
        "steps": [
            {
                "config": {"connection": "@mysql.shop", "table": "orders", "where": "${params.a}"},
                "mode": "read",
                "component": "mysql.extractor",
                "id": "e",
            }
        ],
    }
    text = render_pipeline(answer, "line one\nline two\x1b[31m")
    assert text.splitlines()[0] == "# request: line one line two [31m"
    assert "'@mysql.shop'" in text or '"@mysql.shop"' in text
    lines = text.splitlines()
    assert lines[1] == 'oml_version: "0.1.0"' and lines.index("  - id: e") < lines.index(
        "    component: mysql.extractor"
    )
    result = check_text(text)
    assert result.document is not None  # it parsed: any remaining issue is semantic


def test_user_turn_and_diagnostic_lines() -> None:
    turn = user_turn("copy", {"mysql": [("shop", False), ("dwh", True)]}, ["SCHEMA"], "steps: []")
    assert "@mysql.shop, @mysql.dwh (default)" in turn and "SCHEMA" in turn and "steps: []" in turn
    text = 'oml_version: "0.1.0"\nname: x\nsteps:\n' + STEP.format("a")
    result = check_text(text)
    [line] = diagnostic_lines(result.diagnostics, text)
    assert (
        line.startswith("OML014 error at 5:16") and "| " + "    component: nope.extractor" in line
    )


# -- the loop's decisions ---------------------------------------------------------------------------


def attempt(number: int, text: str, proposed: str = "x") -> Attempt:
    result = check_text(text)
    return Attempt(number, proposed, text, result.diagnostics, (), (), llm.Usage())


STEP = "  - id: {0}\n    component: nope.extractor\n    mode: read\n    config: {{}}\n"
BAD1 = 'oml_version: "0.1.0"\nname: x\nsteps:\n' + STEP.format("a")
BAD2 = BAD1 + STEP.format("b")


def test_best_attempt_has_fewest_errors_later_wins_ties() -> None:
    one, two, three = attempt(1, BAD1), attempt(2, BAD2), attempt(3, BAD1)
    assert (one.errors, two.errors) == (1, 2)
    assert best_attempt([one, two]) is one
    assert best_attempt([one, two, three]) is three
    nothing = Attempt(1, "", "", (), (), (), llm.Usage(), note="no tool call")
    assert nothing.errors == 1 and not nothing.ok  # no pipeline is never a success


def test_another_call_is_bounded() -> None:
    bad = attempt(1, BAD1)
    assert another_call([bad], 3) and another_call([bad, bad], 3)
    assert not another_call([bad, bad, bad], 3) and not another_call([bad], 1)


def test_fixed_by_model_counts_errors_that_went_away() -> None:
    assert fixed_by_model(attempt(1, BAD2), attempt(2, BAD1).diagnostics) == ("OML014",)
    assert fixed_by_model(None, attempt(1, BAD1).diagnostics) == ()
    assert fixed_by_model(attempt(1, BAD1), attempt(2, BAD1).diagnostics) == ()


# -- contract with the installed SDK ------------------------------------------------------------------


def test_default_model_is_listed_and_not_deprecated() -> None:
    from anthropic._data import DEPRECATED_MODELS
    from anthropic.types.model_param import ModelParam

    listed = typing.get_args(typing.get_args(ModelParam)[0])
    assert llm.DEFAULT_MODEL in listed and llm.DEFAULT_MODEL not in DEPRECATED_MODELS


def test_request_params_match_the_sdk_types() -> None:
    from anthropic.types import message_create_params as mcp
    from anthropic.types.cache_control_ephemeral_param import CacheControlEphemeralParam
    from anthropic.types.text_block_param import TextBlockParam
    from anthropic.types.tool_choice_tool_param import ToolChoiceToolParam
    from anthropic.types.tool_param import ToolParam

    registry = load_registry()
    tool = tool_definition(registry)
    params = request_params(
        model=llm.DEFAULT_MODEL,
        system=system_blocks("{}"),
        tool=tool,
        messages=[{"role": "user", "content": "x"}],
    )
    allowed = typing.get_type_hints(mcp.MessageCreateParamsNonStreaming).keys()
    assert set(params) <= allowed
    assert set(tool) <= ToolParam.__annotations__.keys()
    assert set(params["tool_choice"]) <= ToolChoiceToolParam.__annotations__.keys()
    block = params["system"][0]
    assert set(block) <= TextBlockParam.__annotations__.keys()
    assert set(block["cache_control"]) <= CacheControlEphemeralParam.__annotations__.keys()
    # the tool's input schema is a JSON Schema the API accepts (Draft 2020-12, an object)
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(tool["input_schema"])
    assert tool["input_schema"]["type"] == "object"
    steps = tool["input_schema"]["properties"]["steps"]["items"]["properties"]
    assert steps["component"]["enum"] == registry.names()


def test_sdk_methods_take_what_we_pass() -> None:
    import inspect

    from anthropic.resources.messages import Messages

    create = inspect.signature(Messages.create).parameters
    count = inspect.signature(Messages.count_tokens).parameters
    for name in ("model", "max_tokens", "system", "tools", "tool_choice", "messages"):
        assert name in create
    for name in ("model", "system", "tools", "tool_choice", "messages"):
        assert name in count


def test_reply_from_a_real_sdk_message() -> None:
    from anthropic.types import Message

    message = Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": llm.DEFAULT_MODEL,
            "content": [
                {"type": "text", "text": "here"},
                {"type": "tool_use", "id": "toolu_1", "name": "emit_pipeline", "input": {"a": 1}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 7},
        }
    )
    reply = llm.reply_from_message(message)
    assert reply.tool_use == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "emit_pipeline",
        "input": {"a": 1},
    }
    assert reply.usage == llm.Usage(10, 5, 7, 0) and reply.text == "here"


def test_sdk_errors_are_classified_without_the_key() -> None:
    import anthropic
    import httpx2  # the SDK's HTTP client

    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    env = {"ANTHROPIC_API_KEY": "sk-ant-secret-value"}

    def status(code: int, cls: Any) -> Exception:
        body = {"type": "error", "error": {"type": "x", "message": "bad sk-ant-secret-value"}}
        return cls("m", response=httpx2.Response(code, request=request), body=body)

    cases = [
        (status(401, anthropic.AuthenticationError), "refused the key"),
        (status(403, anthropic.PermissionDeniedError), "403"),
        (status(429, anthropic.RateLimitError), "rate limited"),
        (anthropic.APIConnectionError(request=request), "cannot reach the API"),
        (anthropic.APITimeoutError(request=request), "did not answer"),
    ]
    for err, words_ in cases:
        classified = llm.classify(err, env)
        assert isinstance(classified, llm.LlmError) and classified.exit_code == 5
        assert words_ in str(classified) and "sk-ant-secret-value" not in str(classified)
    plain = ValueError("not ours")
    assert llm.classify(plain, env) is plain


def test_no_key_refuses_before_the_sdk() -> None:
    with pytest.raises(llm.LlmError, match="ANTHROPIC_API_KEY"):
        llm.make_client({})


def test_rendering_is_what_omlc_fmt_writes_and_keeps_the_data() -> None:
    import sys

    import yaml

    from osiris.oml.format import format_text

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from _util import generate_pipeline

    for steps in (10, 40):
        data = yaml.safe_load(generate_pipeline(steps))
        text = render_pipeline(data, "a request")
        assert format_text(text)[0] == text
        assert yaml.safe_load(text) == data
    odd = {
        "name": "x",
        "steps": [{"id": "a", "config": {"v": "yes", "n": "007", "e": "", "k: v": "#"}}],
    }
    text = render_pipeline(odd)
    assert yaml.safe_load(text) == {"oml_version": "0.1.0", **odd}
    assert format_text(text)[0] == text


def test_any_json_answer_renders_as_yaml_meaning_the_same() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from osiris.oml.diagnostics import DiagnosticList
    from osiris.oml.span import SourceText
    from osiris.oml.yamltree import parse_yaml

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**12), 10**12)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(["@mysql.shop", "${params.x}", "yes", "007", "a: b", "# x", " x", "-"])
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=5), st.text(max_size=30)
    )
    def roundtrip(config: dict[str, Any], request: str) -> None:
        answer = {
            "name": "x",
            "steps": [{"id": "a", "component": "c", "mode": "read", "config": config}],
        }
        text = render_pipeline(answer, request)
        diagnostics = DiagnosticList()
        tree = parse_yaml(SourceText("p.oml", text), diagnostics)
        assert tree is not None and not diagnostics.has_errors, text
        assert tree.to_python() == {"oml_version": "0.1.0", **answer}, text

    roundtrip()
