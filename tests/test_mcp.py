"""`osiris mcp` tools through the SDK's client over the in-memory transport (fast, in process)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from invariants import CANARY_VALUE, CANARY_VAR
from mcp_helpers import ENVIRON, VALID, assert_no_secret, error_text, payload, write_project

pytest.importorskip("mcp")
from mcp import Client, MCPError
from mcp.server.mcpserver import MCPServer

from osiris.compiler.compile import compile_text
from osiris.compiler.frontend import load_connections
from osiris.compiler.mcp import tools
from osiris.compiler.mcp.project import Project, ToolFailure, pipeline_target
from osiris.compiler.mcp.secrets import SecretGuard
from osiris.compiler.mcp.server import build_server
from osiris.compiler.registry import load_registry

TOOLS = {
    "connections_list",
    "connections_doctor",
    "components_list",
    "component_spec",
    "discovery_request",
    "oml_schema_get",
    "oml_validate",
    "oml_compile",
    "oml_format",
    "oml_save",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project")


@pytest.fixture
def server(root: Path) -> MCPServer:
    return build_server(Project.locate(str(root), ENVIRON))


def files_below(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.asyncio
async def test_lists_every_tool_with_input_and_output_schemas(server: MCPServer) -> None:
    async with Client(server, mode="legacy") as client:
        listed = (await client.list_tools()).tools
        assert {t.name for t in listed} == TOOLS
        by_name = {t.name: t for t in listed}
        assert by_name["oml_save"].input_schema["required"] == ["path", "oml"]
        assert by_name["oml_validate"].annotations.read_only_hint is True
        assert all(t.output_schema is not None and t.description for t in listed)


@pytest.mark.asyncio
async def test_validate_reports_the_error_on_its_line_and_the_safe_fixes(server: MCPServer) -> None:
    async with Client(server, mode="legacy") as client:
        bad = VALID.replace("component: mysql.extractor", "component: mysql.extractr")
        result = payload(await client.call_tool("oml_validate", {"oml": bad}))
        assert result["valid"] is False and result["error_count"] >= 1
        unknown = [d for d in result["diagnostics"] if "mysql.extractr" in d["summary"]]
        assert unknown and unknown[0]["range"]["start"]["line"] == 7

        unquoted = VALID.replace('"@postgres.wh"', "@postgres.wh")
        result = payload(await client.call_tool("oml_validate", {"oml": unquoted}))
        assert result["valid"] is False
        assert result["diagnostics"][0]["range"]["start"]["line"] == 17
        assert [(f["code"], f["line"]) for f in result["safe_fixes"]] == [("OML001", 17)]
        assert result["fixed_oml"] == VALID and result["fixed_valid"] is True

        result = payload(await client.call_tool("oml_validate", {"oml": VALID}))
        assert result["valid"] is True and result["safe_fixes"] == [] and "fixed_oml" not in result


@pytest.mark.asyncio
async def test_validate_checks_aliases_against_the_projects_connections(server: MCPServer) -> None:
    async with Client(server, mode="legacy") as client:
        result = payload(
            await client.call_tool(
                "oml_validate", {"oml": VALID.replace("@mysql.shop", "@mysql.nope")}
            )
        )
        assert result["valid"] is False
        assert any("nope" in d["summary"] for d in result["diagnostics"])


@pytest.mark.asyncio
async def test_compile_in_memory_returns_the_summary_and_fingerprints(
    server: MCPServer, root: Path
) -> None:
    async with Client(server, mode="legacy") as client:
        before = files_below(root)
        result = payload(
            await client.call_tool("oml_compile", {"oml": VALID, "params": {"since": "2025-02-01"}})
        )
        assert files_below(root) == before  # nothing written
        index, _ = load_connections(root / "osiris_connections.yaml")
        direct = compile_text(
            VALID, "pipeline.oml", params=["since=2025-02-01"], environ=ENVIRON, connections=index
        )
        assert direct.emitted is not None
        assert result["compiled"] is True and result["exit_code"] == 0
        assert result["manifest"]["fingerprints"] == direct.emitted.manifest["fingerprints"]
        assert result["manifest"]["params"] == {"since": "2025-02-01"}
        assert [s["id"] for s in result["manifest"]["steps"]] == ["orders", "load"]
        assert result["manifest"]["steps"][1]["needs"] == ["orders"]
        assert result["files"] == sorted(direct.emitted.files)

        failed = payload(
            await client.call_tool("oml_compile", {"oml": VALID, "profile": "nightly"})
        )
        assert failed["compiled"] is False and failed["exit_code"] == 3 and "manifest" not in failed
        assert any("nightly" in d["summary"] for d in failed["diagnostics"])


@pytest.mark.asyncio
async def test_format_returns_the_canonical_text(server: MCPServer) -> None:
    async with Client(server, mode="legacy") as client:
        messy = VALID.replace("name: orders-copy", "name:    orders-copy  # the copy")
        messy = messy.replace("  since: {type", "      since: {type")
        result = payload(await client.call_tool("oml_format", {"oml": messy}))
        assert result["formatted"] is True and result["changed"] is True
        assert "\nname: orders-copy " in result["oml"] and "# the copy" in result["oml"]
        assert "\nparams:\n  since: {type" in result["oml"]
        again = payload(await client.call_tool("oml_format", {"oml": result["oml"]}))
        assert again["changed"] is False and again["oml"] == result["oml"]
        broken = payload(await client.call_tool("oml_format", {"oml": "steps: [\n"}))
        assert broken["formatted"] is False and broken["valid"] is False and "oml" not in broken


@pytest.mark.asyncio
async def test_save_writes_inside_the_project_only(
    server: MCPServer, root: Path, tmp_path: Path
) -> None:
    async with Client(server, mode="legacy") as client:
        result = payload(
            await client.call_tool("oml_save", {"path": "pipelines/orders.oml", "oml": VALID})
        )
        assert result["saved"] is True and result["path"] == "pipelines/orders.oml"
        assert result["draft"] is False and result["replaced"] is False
        assert (root / "pipelines/orders.oml").read_text(encoding="utf-8") == VALID
        again = payload(
            await client.call_tool(
                "oml_save", {"path": str(root / "pipelines/orders.oml"), "oml": VALID}
            )
        )
        assert again["replaced"] is True

        outside = tmp_path / "outside"
        outside.mkdir()
        (root / "escape").symlink_to(outside, target_is_directory=True)
        (root / "link.oml").symlink_to(outside / "target.oml")
        refused = {
            "../outside/x.oml": "'..'",
            "pipelines/../../outside/x.oml": "'..'",
            str(outside / "x.oml"): "outside the project",
            "escape/x.oml": "outside the project",
            "link.oml": "symbolic link",
            "notes.txt": "ending in .oml",
            "osiris_connections.yaml": "ending in .oml",
            ".osiris/cache/x.oml": ".osiris/",
            "osiris_connections.yaml/x.oml": "cannot write osiris_connections.yaml/x.oml",
            "": "empty",
        }
        for path, why in refused.items():
            message = error_text(await client.call_tool("oml_save", {"path": path, "oml": VALID}))
            assert why in message, (path, message)
        assert files_below(outside) == []
        assert "version: 1" in (root / "osiris_connections.yaml").read_text(encoding="utf-8")


@pytest.mark.asyncio
async def test_an_invalid_pipeline_is_saved_only_as_a_draft(server: MCPServer, root: Path) -> None:
    async with Client(server, mode="legacy") as client:
        bad = VALID.replace("mode: write", "mode: wrte")
        message = error_text(await client.call_tool("oml_save", {"path": "bad.oml", "oml": bad}))
        assert "not saved" in message and "line 14" in message and "draft" in message
        assert not (root / "bad.oml").exists()
        result = payload(
            await client.call_tool("oml_save", {"path": "bad.oml", "oml": bad, "draft": True})
        )
        assert result["draft"] is True and result["valid"] is False
        assert (root / "bad.oml").read_text(encoding="utf-8") == bad
        assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no temp left


@pytest.mark.asyncio
async def test_connections_list_shows_public_fields_and_variables_never_secrets(
    server: MCPServer,
) -> None:
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("connections_list", {})
        assert_no_secret(result)
        data = payload(result)
        families = {f["family"]: f["aliases"] for f in data["families"]}
        shop = families["mysql"][0]
        assert shop["ref"] == "@mysql.shop" and shop["fields"]["database"] == "shop"
        assert "password" not in shop["fields"] and shop["secret_fields"] == {
            "password": "variable"
        }
        assert [(v["name"], v["set"]) for v in shop["variables"]] == [(CANARY_VAR, True)]
        by_url = next(e for e in families["postgres"] if e["alias"] == "by-url")
        assert "dsn" not in by_url["fields"] or "***" in str(by_url["fields"]["dsn"])


@pytest.mark.asyncio
async def test_components_spec_schema_resources_and_prompt(server: MCPServer) -> None:
    async with Client(server, mode="legacy") as client:
        registry = load_registry()
        listed = payload(await client.call_tool("components_list", {"mode": "write"}))["components"]
        writers = sorted(s.name for s in registry if "write" in s.modes)
        assert sorted(c["name"] for c in listed) == writers and writers
        spec = payload(await client.call_tool("component_spec", {"name": "postgres.writer"}))
        assert spec["spec"] == json.loads(json.dumps(registry.get("postgres.writer").document))
        message = error_text(await client.call_tool("component_spec", {"name": "postgres.writr"}))
        assert "unknown component 'postgres.writr'" in message and "postgres.writer" in message
        assert "not one of" in error_text(await client.call_tool("components_list", {"mode": "x"}))

        schema = payload(await client.call_tool("oml_schema_get", {}))
        assert schema["schema"] == tools.oml_schema() and "steps" in json.dumps(schema["schema"])
        assert set(schema["context"]["components"]) == {s.name for s in registry}
        assert 0 < schema["context_tokens"] <= 1500

        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"osiris://schema/oml", "osiris://components"} <= uris
        read = await client.read_resource("osiris://components/mysql.extractor")
        assert json.loads(read.contents[0].text) == registry.get("mysql.extractor").document
        with pytest.raises(MCPError, match="unknown component 'nope'"):
            await client.read_resource("osiris://components/nope")
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert prompts == {"new_pipeline"}
        prompt = await client.get_prompt("new_pipeline", {"request": "copy orders nightly"})
        text = prompt.messages[0].content.text
        assert "copy orders nightly" in text and "oml_validate" in text and "draft" in text


@pytest.mark.asyncio
async def test_bad_arguments_and_huge_inputs_are_tool_errors_and_the_server_survives(
    server: MCPServer,
) -> None:
    async with Client(server, mode="legacy") as client:
        huge = "# " + "x" * tools.MAX_OML_CHARS
        message = error_text(await client.call_tool("oml_validate", {"oml": huge}))
        assert "limit is 1,000,000" in message
        assert error_text(await client.call_tool("oml_validate", {"oml": 42}))
        assert error_text(await client.call_tool("oml_save", {"oml": VALID}))
        assert error_text(await client.call_tool("no_such_tool", {}))
        assert "between 0 and" in error_text(
            await client.call_tool(
                "discovery_request", {"connection": "@mysql.shop", "samples": -1}
            )
        )
        assert "no connection @mysql.nope" in error_text(
            await client.call_tool("connections_doctor", {"connection": "@mysql.nope"})
        )
        assert error_text(
            await client.call_tool("oml_compile", {"oml": VALID, "params": {"since": [1]}})
        )
        assert payload(await client.call_tool("oml_validate", {"oml": VALID}))["valid"] is True


@pytest.mark.asyncio
async def test_concurrent_calls_each_get_their_own_answer(server: MCPServer) -> None:
    async with Client(server, mode="legacy") as client:
        texts = [VALID.replace("orders-copy", f"copy-{i}") for i in range(12)]
        texts += [t.replace("mode: read", "mode: reed") for t in texts[:4]]
        results = await asyncio.gather(
            *(client.call_tool("oml_compile", {"oml": t}) for t in texts),
            *(client.call_tool("oml_format", {"oml": t}) for t in texts[:6]),
        )
        compiled = [payload(r) for r in results[: len(texts)]]
        assert [c["compiled"] for c in compiled] == [True] * 12 + [False] * 4
        names = [c["manifest"]["pipeline"]["name"] for c in compiled[:12]]
        assert names == [f"copy-{i}" for i in range(12)]
        assert all(payload(r)["formatted"] for r in results[len(texts) :])


@pytest.mark.asyncio
async def test_a_secret_in_any_result_is_masked(server: MCPServer, root: Path) -> None:
    async with Client(server, mode="legacy") as client:
        leaky = VALID.replace("orders_copy", f"orders_copy  # {CANARY_VALUE}")
        for name, args in [
            ("oml_format", {"oml": leaky}),
            ("oml_validate", {"oml": leaky.replace("mode: read", "mode: ")}),
            ("oml_save", {"path": "leak.oml", "oml": leaky}),
        ]:
            result = await client.call_tool(name, args)
            assert_no_secret(result)
        formatted = payload(await client.call_tool("oml_format", {"oml": leaky}))
        assert "orders_copy  # ***" in formatted["oml"]
        # the file itself is what the assistant asked for: the mask applies to what leaves the server
        assert CANARY_VALUE in (root / "leak.oml").read_text(encoding="utf-8")


def test_secret_guard_masks_referenced_literal_and_url_passwords() -> None:
    aliases: dict[str, Any] = {
        "mysql": {
            "a": {"password": "${PW}", "host": "h"},
            "b": {"password": "literal-pass"},
            "c": {"url": "mysql://u:${URLPW}@h/db", "token": "${TOK:-dflt-token}"},
            "d": {"password": "ok"},
        }
    }
    guard = SecretGuard.from_aliases(aliases, {"PW": "s3cret-value", "URLPW": "p@ss%word"})
    text = "s3cret-value literal-pass p@ss%word dflt-token ok token h"
    assert guard.text(text) == "*** *** *** *** *** token h"
    assert guard.data({"k s3cret-value": ["literal-pass", 3]}) == {"k ***": ["***", 3]}
    assert SecretGuard(()).data({"a": "b"}) == {"a": "b"}


def test_pipeline_target_resolves_inside_the_project(root: Path, tmp_path: Path) -> None:
    project = Project.locate(str(root), os.environ)
    assert pipeline_target(project, "a/b.oml") == root.resolve() / "a/b.oml"
    with pytest.raises(ToolFailure, match="not a directory"):
        Project.locate(str(tmp_path / "missing"), os.environ)
    nested = root / "sub"
    nested.mkdir()
    assert Project.locate(None, os.environ, cwd=nested).root == root.resolve()


SCHEMA_CHECKED = """\
oml_version: "0.1.0"
name: lg-orders
steps:
  - id: orders
    component: postgres.extractor
    mode: read
    config:
      connection: "@postgres.wh"
      table: lg_orders
      columns: [id, amout]
  - id: out
    component: filesystem.csv_writer
    mode: write
    needs: [orders]
    config: {path: out.csv}
"""


@pytest.mark.asyncio
async def test_validate_and_compile_check_against_the_discovered_schema(
    pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """After discovery_request on a real PostgreSQL table, oml_validate, oml_compile and oml_save
    check tables and columns against the project's discovery cache (never connecting)."""
    from mcp_helpers import FAKE_MYSQL
    from runtime_helpers import pg_rows

    pg_rows(pg_db, "CREATE TABLE lg_orders (id int PRIMARY KEY, amount numeric(10, 2))")
    root = write_project(tmp_path / "lg", FAKE_MYSQL, pg_db)
    server = build_server(Project.locate(str(root), ENVIRON))
    async with Client(server, mode="legacy") as client:
        # nothing discovered yet: the columns cannot be judged, so nothing is said
        before = payload(await client.call_tool("oml_validate", {"oml": SCHEMA_CHECKED}))
        assert before["valid"] is True, before["diagnostics"]

        found = payload(await client.call_tool("discovery_request", {"connection": "@postgres.wh"}))
        assert [t["name"] for t in found["tables"]] == ["lg_orders"]

        result = payload(await client.call_tool("oml_validate", {"oml": SCHEMA_CHECKED}))
        assert result["valid"] is False
        [d] = result["diagnostics"]
        assert (
            d["code"] == "OML151" and "column 'amout' is not in table 'lg_orders'" in d["summary"]
        )
        assert (d["range"]["start"]["line"], d["range"]["start"]["column"]) == (10, 21)
        assert "Did you mean 'amount'?" in d["detail"]

        missing = SCHEMA_CHECKED.replace("table: lg_orders", "table: lg_ordrs")
        result = payload(await client.call_tool("oml_validate", {"oml": missing}))
        assert [(d["code"], d["range"]["start"]["line"]) for d in result["diagnostics"]] == [
            ("OML150", 9)
        ]

        compiled = payload(await client.call_tool("oml_compile", {"oml": SCHEMA_CHECKED}))
        assert compiled["compiled"] is False and compiled["exit_code"] == 2
        assert [d["code"] for d in compiled["diagnostics"]] == ["OML151"]
        refused = error_text(
            await client.call_tool("oml_save", {"path": "p.oml", "oml": SCHEMA_CHECKED})
        )
        assert "OML151 (line 10)" in refused and not (root / "p.oml").exists()

        fixed = SCHEMA_CHECKED.replace("amout", "amount")
        assert payload(await client.call_tool("oml_validate", {"oml": fixed}))["valid"] is True
