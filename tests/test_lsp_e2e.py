"""oml-lsp end to end over stdio with pytest-lsp: the real server process, no sleeps."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from oml_cases import API_SOURCES, HTTP_ALIASES, alias_bomb
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = (ROOT / "golden/mysql_duckdb_supabase/pipeline.oml").read_text(encoding="utf-8")
CONNECTIONS = """connections:
  mysql:
    shop: {host: db.internal, database: shop, user: reader, password: hunter2-secret}
  supabase:
    main: {dsn: "postgresql://warehouse/db", service_role_key: also-secret}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "osiris_connections.yaml").write_text(CONNECTIONS, encoding="utf-8")
    return tmp_path


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "osiris.compiler.lsp.server"])
)
async def client(lsp_client: LanguageClient, workspace: Path) -> AsyncIterator[None]:
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=workspace.as_uri(),
        )
    )
    yield
    await lsp_client.shutdown_session()


async def published(
    client: LanguageClient,
    uri: str,
    ready: Callable[[Sequence[types.Diagnostic]], bool] = lambda _: True,
) -> Sequence[types.Diagnostic]:
    """Wait (through the client's notification helper) until uri's diagnostics satisfy ready."""
    while uri not in client.diagnostics or not ready(client.diagnostics[uri]):
        await asyncio.wait_for(
            client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), timeout=20
        )
    return client.diagnostics[uri]


def open_doc(client: LanguageClient, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="oml", version=1, text=text)
        )
    )


def position_of(text: str, needle: str, offset: int = 0) -> types.Position:
    index = text.index(needle) + offset
    line = text[:index].count("\n")
    return types.Position(line, index - (text.rfind("\n", 0, index) + 1))


@pytest.mark.asyncio
async def test_diagnostics_on_open_change_and_close(
    client: LanguageClient, workspace: Path
) -> None:
    uri = (workspace / "pipeline.oml").as_uri()
    bad = GOLDEN.replace("component: mysql.extractor", "component: mysql.extractr").replace(
        "@mysql.shop", "@mysql.nope"
    )
    open_doc(client, uri, bad)
    got = await published(client, uri, lambda d: len(d) > 0)
    # OML101: the workspace's connections file holds literal secrets (reported, never shown)
    assert {d.code for d in got} == {"OML014", "OML101"}
    assert not any("hunter2" in d.message or "also-secret" in d.message for d in got)
    assert all(d.source == "osiris" for d in got)

    at = position_of(bad, "mysql.extractr")
    end = types.Position(at.line, at.character + len("mysql.extractr"))
    client.text_document_did_change(  # an incremental edit
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(at, end), text="mysql.extractor"
                )
            ],
        )
    )
    got = await published(client, uri, lambda d: "OML014" not in [x.code for x in d])
    # the workspace's connections file is used
    assert sorted(d.code for d in got) == ["OML027", "OML101", "OML101"]

    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert list(await published(client, uri, lambda d: len(d) == 0)) == []


@pytest.mark.asyncio
async def test_alias_bomb_gets_its_diagnostic_and_the_server_stays_responsive(
    client: LanguageClient, workspace: Path
) -> None:
    uri = (workspace / "bomb.oml").as_uri()
    bomb = alias_bomb()
    open_doc(client, uri, bomb)
    found = await published(client, uri, lambda d: any(x.code == "OML120" for x in d))
    (got,) = [d for d in found if d.code == "OML120"]  # the workspace's OML101s may come too
    assert "*l4" in got.message
    assert got.range.start == position_of(bomb, "x-l5: &l5 [", len("x-l5: &l5 [") + 6 * 5)
    # The server is still answering: a formatting request for the same document returns (no
    # edit: the document is refused).
    edits = await asyncio.wait_for(
        client.text_document_formatting_async(
            types.DocumentFormattingParams(
                types.TextDocumentIdentifier(uri=uri), types.FormattingOptions(2, True)
            )
        ),
        timeout=20,
    )
    assert not edits


@pytest.mark.asyncio
async def test_completion_hover_definition_formatting(
    client: LanguageClient, workspace: Path
) -> None:
    uri = (workspace / "pipeline.oml").as_uri()
    open_doc(client, uri, GOLDEN)
    await published(client, uri)
    doc = types.TextDocumentIdentifier(uri=uri)

    result = await client.text_document_completion_async(
        types.CompletionParams(doc, position_of(GOLDEN, "mysql.extractor"))
    )
    assert result is not None
    labels = [
        i.label for i in (result.items if isinstance(result, types.CompletionList) else result)
    ]
    assert "mysql.extractor" in labels and "duckdb.processor" in labels

    hovered = await client.text_document_hover_async(
        types.HoverParams(doc, position_of(GOLDEN, "@mysql.shop", 3))
    )
    assert hovered is not None and isinstance(hovered.contents, types.MarkupContent)
    assert "db.internal" in hovered.contents.value and "hunter2" not in hovered.contents.value

    found = await client.text_document_definition_async(
        types.DefinitionParams(doc, position_of(GOLDEN, "needs: [extract-orders]", 10))
    )
    assert isinstance(found, list) and len(found) == 1
    assert isinstance(found[0], types.Location)
    assert found[0].range.start == position_of(GOLDEN, "extract-orders")

    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(doc, types.FormattingOptions(tab_size=2, insert_spaces=True))
    )
    assert not edits  # the golden file is already canonical


API = (
    API_SOURCES
    + """  - id: products
    component: graphql.extractor
    mode: read
    config:
      endpoint: https://shop.example.com/graphql
      query: "{ products { nodes { id } } }"
      auth_token: ghp-canary-5d1f0e9a7c
  - id: save
    component: filesystem.csv_writer
    mode: write
    needs: [orders]
    config: {path: out/orders.csv}
"""
)
HTTP_CONNECTIONS = HTTP_ALIASES


async def _labels(client: LanguageClient, uri: str, at: types.Position) -> list[str]:
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri=uri), at)
    )
    assert result is not None
    found = result.items if isinstance(result, types.CompletionList) else result
    return [i.label for i in sorted(found, key=lambda i: i.sort_text or i.label)]


@pytest.mark.asyncio
async def test_api_sources_complete_hover_and_refuse_an_inline_token(
    client: LanguageClient, workspace: Path
) -> None:
    (workspace / "osiris_connections.yaml").write_text(HTTP_CONNECTIONS, encoding="utf-8")
    uri = (workspace / "api.oml").as_uri()
    open_doc(client, uri, API)
    found = await published(client, uri, lambda d: any(x.code == "OML024" for x in d))
    assert [d.code for d in found] == ["OML024"]  # the rest of the document is valid
    (secret,) = found
    assert "auth_token" in secret.message and "ghp-canary" not in secret.message
    assert secret.range.start == position_of(API, "ghp-canary")

    components = await _labels(client, uri, position_of(API, "rest.extractor"))
    assert {"rest.extractor", "graphql.extractor"} <= set(components)
    assert await _labels(client, uri, position_of(API, "{type: cursor}", len("{type: "))) == [
        "cursor", "page_number", "offset", "json_link", "header_link", "single_page",
    ]  # fmt: skip
    assert await _labels(client, uri, position_of(API, "start_param")) == [
        "initial_value", "start_param", "lag",
    ]  # fmt: skip
    assert await _labels(client, uri, position_of(API, '"@http.shop"')) == [
        "@http.shop", "@http.backup",
    ]  # fmt: skip

    doc = types.TextDocumentIdentifier(uri=uri)
    hovered = await client.text_document_hover_async(
        types.HoverParams(doc, position_of(API, "paginator", 3))
    )
    assert hovered is not None and isinstance(hovered.contents, types.MarkupContent)
    assert "How to reach the next page" in hovered.contents.value

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            doc, secret.range, types.CodeActionContext(diagnostics=[secret], only=["quickfix"])
        )
    )
    assert actions is not None
    (remove,) = [a for a in actions if isinstance(a, types.CodeAction)]
    assert remove.title == "Remove the inline secret" and remove.edit is not None
    assert remove.edit.changes is not None
    (edit,) = remove.edit.changes[uri]
    assert edit.new_text == "" and edit.range.start.line == secret.range.start.line
