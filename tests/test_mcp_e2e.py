"""`osiris mcp` end to end: the real server process over stdio, driven by the SDK's ClientSession,
with real MariaDB/PostgreSQL connections whose password is a canary that must never come back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from invariants import CANARY_VALUE, CANARY_VAR
from mcp_helpers import VALID, assert_no_secret, error_text, payload, write_project

pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters, stdio_client

OSIRIS = Path(sys.executable).parent / "osiris"


def server_params(cwd: Path, *args: str) -> StdioServerParameters:
    env = {
        CANARY_VAR: CANARY_VALUE,
        "OSIRIS_CACHE_DIR": os.environ.get("OSIRIS_CACHE_DIR", ""),
        "PYTHONHASHSEED": "0",
    }
    return StdioServerParameters(command=str(OSIRIS), args=["mcp", *args], env=env, cwd=cwd)


@pytest.fixture
def root(tmp_path: Path, mysql_db: dict[str, Any], pg_db: dict[str, Any]) -> Path:
    return write_project(tmp_path / "project", mysql_db, pg_db)


@pytest.mark.asyncio
async def test_the_server_process_serves_every_authoring_step(root: Path, tmp_path: Path) -> None:
    errlog = tmp_path / "server-stderr.log"
    results: list[Any] = []
    with errlog.open("w", encoding="utf-8") as err:
        async with (
            stdio_client(server_params(root), errlog=err) as (read, write),
            ClientSession(read, write) as session,
        ):
            info = await session.initialize()
            assert info.server_info.name == "osiris"
            names = {t.name for t in (await session.list_tools()).tools}
            assert {"oml_validate", "oml_save", "oml_compile", "connections_list"} <= names

            async def call(name: str, args: dict[str, Any]) -> Any:
                result = await session.call_tool(name, args)
                results.append(result)
                return result

            bad = VALID.replace("mode: write", "mode: wrte")
            checked = payload(await call("oml_validate", {"oml": bad}))
            assert checked["valid"] is False
            assert checked["diagnostics"][0]["range"]["start"]["line"] == 14

            saved = payload(await call("oml_save", {"path": "pipelines/copy.oml", "oml": VALID}))
            assert saved["path"] == "pipelines/copy.oml"
            assert (root / "pipelines/copy.oml").read_text(encoding="utf-8") == VALID
            outside = tmp_path / "elsewhere.oml"
            refused = error_text(await call("oml_save", {"path": str(outside), "oml": VALID}))
            assert "outside the project" in refused and not outside.exists()

            formatted = payload(
                await call("oml_format", {"oml": VALID.replace("name: ", "name:   ")})
            )
            assert formatted["oml"] == VALID

            compiled = payload(await call("oml_compile", {"oml": VALID}))
            assert compiled["compiled"] is True
            assert [s["connection"] for s in compiled["manifest"]["steps"]] == [
                "@mysql.shop",
                "@postgres.wh",
            ]
            assert compiled["manifest"]["fingerprints"]["manifest"].startswith("sha256:")

            listed = payload(await call("connections_list", {}))
            assert listed["project"] == str(root.resolve())
            postgres = next(f for f in listed["families"] if f["family"] == "postgres")
            assert {e["alias"] for e in postgres["aliases"]} == {"wh", "by-url"}
            # every tool once more, errors included: none may carry the canary
            for name, args in [
                ("connections_doctor", {}),
                ("discovery_request", {"connection": "@mysql.shop", "samples": 2}),
                ("components_list", {}),
                ("component_spec", {"name": "mysql.extractor"}),
                ("oml_schema_get", {}),
                ("oml_validate", {"oml": VALID.replace("@mysql.shop", "@mysql")}),
                ("oml_save", {"path": "../x.oml", "oml": VALID}),
            ]:
                await call(name, args)
    assert len(results) == 13
    for result in results:
        assert_no_secret(result)
    assert CANARY_VALUE not in errlog.read_text(encoding="utf-8")


@pytest.mark.asyncio
async def test_project_flag_finds_the_project_from_anywhere(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with (tmp_path / "stderr.log").open("w", encoding="utf-8") as err:
        async with (
            stdio_client(server_params(elsewhere, "run", "--project", str(root)), errlog=err) as (
                read,
                write,
            ),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = payload(await session.call_tool("connections_list", {}))
            assert listed["connections_file"] == str(root.resolve() / "osiris_connections.yaml")
            saved = payload(await session.call_tool("oml_save", {"path": "p.oml", "oml": VALID}))
            assert saved["path"] == "p.oml"
    assert (root / "p.oml").is_file() and not (elsewhere / "p.oml").exists()


def test_help_shows_the_client_configuration() -> None:
    import subprocess

    out = subprocess.run(
        [str(OSIRIS), "mcp", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert '"mcpServers"' in out and '"args": ["mcp", "--project"' in out
    assert "claude mcp add osiris" in out and "stdin/stdout" in out


@pytest.mark.asyncio
async def test_discovery_and_doctor_on_the_real_servers(
    root: Path, pg_db: dict[str, Any], tmp_path: Path
) -> None:
    """discovery_request reads a real PostgreSQL table through the project's discovery cache,
    with samples masked; connections_doctor says which alias answers and why one does not
    (MariaDB's root has no password, so the canary is refused) — never with the canary."""
    import psycopg

    with psycopg.connect(
        host=pg_db["host"], port=pg_db["port"], user=pg_db["user"], dbname=pg_db["database"],
        autocommit=True,
    ) as conn:  # fmt: skip
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text)")
        conn.execute("INSERT INTO customers VALUES (1, 'bob.jones@example.com')")
    results: list[Any] = []
    with (tmp_path / "stderr.log").open("w", encoding="utf-8") as err:
        async with (
            stdio_client(server_params(root), errlog=err) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            found = await session.call_tool(
                "discovery_request", {"connection": "@postgres.wh", "samples": 1}
            )
            results.append(found)
            data = payload(found)
            assert data["cache"]["status"] == "miss"
            [table] = [t for t in data["tables"] if t["name"] == "customers"]
            assert [c["name"] for c in table["columns"]] == ["id", "email"]
            assert table["primary_key"] == ["id"]
            assert "bob.jones@example.com" not in json.dumps(table["samples"])
            again = await session.call_tool(
                "discovery_request", {"connection": "@postgres.wh", "samples": 1}
            )
            results.append(again)
            assert payload(again)["cache"] | {"age_s": 0} == {
                "status": "hit", "reason": None, "key": data["cache"]["key"], "age_s": 0,
                "verified": True,
            }  # fmt: skip
            assert (root / ".osiris" / "cache" / "discovery").is_dir()

            doctor = await session.call_tool("connections_doctor", {})
            results.append(doctor)
            report = {r["ref"]: r for r in payload(doctor)["connections"]}
            assert report["@postgres.wh"]["status"] == "ok"
            assert report["@postgres.wh"]["server_version"]
            assert report["@mysql.shop"]["status"] == "failed"
            assert report["@mysql.shop"]["reason"] == "authentication"
    for result in results:
        assert_no_secret(result)
