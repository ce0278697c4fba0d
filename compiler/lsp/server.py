"""oml-lsp: the pygls server; it only wires LSP messages to the pure feature functions."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from osiris.compiler.lsp import completion, features, hover, navigation
from osiris.compiler.lsp.state import Connections, ConnectionsFile, DocumentState
from osiris.runtime.contract.version import add_version_flag

if TYPE_CHECKING:
    from osiris.compiler.check_schema import Catalogs

log = logging.getLogger("oml-lsp")
TRIGGERS = [":", " ", "@", ".", "{", "[", ",", "-"]
SECTION = "osiris"


def warm_up() -> None:
    """Import and load what the first check needs (registry, checker, expression parser) once."""
    from osiris.compiler.frontend import check_text

    check_text(
        'oml_version: "0.1.0"\nname: warm\nparams: {p: x.csv}\nsteps:\n  - id: a\n'
        "    component: filesystem.csv_extractor\n    mode: read\n    config: {path: '${params.p}'}\n",
        "<warm-up>",
    )


def warm_sql() -> None:
    """DuckDB's parser, for processor queries; loaded after the first diagnostics are out."""
    from osiris.compiler.check_sql import query_tables

    query_tables("SELECT 1")


class OmlLanguageServer(LanguageServer):
    """Document states, the connections file and one checker thread (checks run in order)."""

    def __init__(self) -> None:
        from osiris.runtime.contract.version import toolchain_version

        super().__init__(
            "oml-lsp",
            toolchain_version(),
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.documents: dict[str, DocumentState] = {}
        # path -> that connections file, re-read when it changes
        self.connection_files: dict[str, ConnectionsFile] = {}
        self.checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oml-check")
        self.pending: set[str] = set()  # documents with a check scheduled but not started
        self.lock = asyncio.Lock()  # one check at a time, so at most one waits per document
        self.warm = False
        self.debounce = 0.0
        self.root: str | None = None
        self.setting: str | None = None

    # -- settings ---------------------------------------------------------------------------

    def configure(self, settings: Any) -> None:
        """Apply `osiris.connections` (and `osiris.debounceMs`) from any accepted shape."""
        if not isinstance(settings, dict):
            return
        section = settings.get(SECTION, settings)
        if not isinstance(section, dict):
            return
        path = section.get("connections", settings.get(f"{SECTION}.connections"))
        if isinstance(path, str) and path:
            self.setting = path
        debounce = section.get("debounceMs")
        if isinstance(debounce, int | float) and debounce >= 0:
            self.debounce = debounce / 1000

    def connections_path(self, uri: str) -> str:
        """The `osiris.connections` setting, else the rule of `omlc check` for the document's
        file ($OSIRIS_CONNECTIONS, else its project's osiris_connections.yaml), else the
        workspace root's."""
        from osiris.compiler.lsp.state import uri_to_path
        from osiris.runtime.contract.project import CONNECTIONS_FILE, connections_file

        root = Path(self.root) if self.root else Path.cwd()
        explicit = None
        if self.setting:
            explicit = Path(os.path.expanduser(self.setting))
            explicit = explicit if explicit.is_absolute() else root / explicit
        path = uri_to_path(uri)
        start = Path(path) if Path(path).is_absolute() else root
        found = connections_file(explicit, os.environ, start)
        return str(found if found is not None else root / CONNECTIONS_FILE)

    def connections(self, uri: str) -> Connections | None:
        """The connections file a document is checked against, as loaded now."""
        path = self.connections_path(uri)
        file = self.connection_files.get(path)
        if file is None:
            file = self.connection_files[path] = ConnectionsFile(path)
        return file.get()

    def catalogs(self, uri: str) -> Catalogs | None:
        """The cached discovery of the document's project (`--schema cached`: never connects)."""
        from osiris.compiler.frontend import schema_catalogs
        from osiris.compiler.lsp.state import uri_to_path

        path = Path(uri_to_path(uri))
        connections = Path(self.connections_path(uri))
        return schema_catalogs(
            "cached",
            path if path.is_absolute() else Path(self.root or Path.cwd()),
            connections if connections.is_file() else None,
            os.environ,
        )

    # -- checking ---------------------------------------------------------------------------

    def state(self, uri: str) -> DocumentState | None:
        return self.documents.get(uri)

    def sync(self, uri: str) -> DocumentState:
        """The state of uri, updated to the workspace's current text."""
        document = self.workspace.get_text_document(uri)
        state = self.documents.get(uri)
        if state is None:
            encoding = str(self.workspace.position_encoding or "utf-16")
            state = self.documents[uri] = DocumentState(
                uri, document.source, document.version, encoding
            )
        elif state.text != document.source or state.version != document.version:
            state.set_text(document.source, document.version)
        return state

    def schedule(self, uri: str) -> None:
        if uri not in self.pending:
            self.pending.add(uri)
            asyncio.get_running_loop().create_task(self.check(uri))

    async def check(self, uri: str) -> None:
        await asyncio.sleep(self.debounce)
        async with self.lock:
            self.pending.discard(uri)  # edits from now on schedule the next check
            state = self.documents.get(uri)
            if state is None:
                return
            text, version = state.text, state.version
            state.connections = connections = self.connections(uri)
            state.catalogs = catalogs = self.catalogs(uri)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self.checker, features.analyse, text, uri, connections, catalogs
            )
        if not self.warm:
            self.warm = True
            self.checker.submit(warm_sql)
        if self.documents.get(uri) is not state or not state.accept(result, version):
            return  # closed, or a newer version is on its way: never publish a stale result
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=features.lsp_diagnostics(result, state.encoding),
                version=version,
            )
        )

    def recheck_all(self) -> None:
        for uri in list(self.documents):
            self.schedule(uri)


server = OmlLanguageServer()


@server.feature(types.INITIALIZE)
def initialize(ls: OmlLanguageServer, params: types.InitializeParams) -> None:
    ls.root = ls.workspace.root_path
    ls.configure(params.initialization_options or {})


@server.feature(types.INITIALIZED)
async def initialized(ls: OmlLanguageServer, params: types.InitializedParams) -> None:
    workspace = ls.client_capabilities.workspace
    if workspace is None or not workspace.configuration:
        return
    try:
        values = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as err:  # a client that advertises but fails the request
        log.warning("workspace/configuration failed: %s", err)
        return
    if values and isinstance(values[0], dict):
        ls.configure({SECTION: values[0]})
        ls.recheck_all()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(
    ls: OmlLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    ls.configure(params.settings)
    ls.recheck_all()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: OmlLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.documents.pop(params.text_document.uri, None)
    ls.sync(params.text_document.uri)
    ls.schedule(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: OmlLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.sync(params.text_document.uri)
    ls.schedule(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: OmlLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.sync(params.text_document.uri)
    ls.schedule(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: OmlLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.pop(params.text_document.uri, None)
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
    )


def _state(ls: OmlLanguageServer, uri: str) -> DocumentState | None:
    state = ls.documents.get(uri)
    if state is not None:
        state.connections = ls.connections(uri)
        state.catalogs = ls.catalogs(uri)
    return state


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=TRIGGERS)
)
def on_completion(
    ls: OmlLanguageServer, params: types.CompletionParams
) -> types.CompletionList | None:
    state = _state(ls, params.text_document.uri)
    return completion.complete(state, params.position) if state else None


@server.feature(types.TEXT_DOCUMENT_HOVER)
def on_hover(ls: OmlLanguageServer, params: types.HoverParams) -> types.Hover | None:
    state = _state(ls, params.text_document.uri)
    return hover.hover(state, params.position) if state else None


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def on_definition(
    ls: OmlLanguageServer, params: types.DefinitionParams
) -> list[types.Location] | None:
    state = _state(ls, params.text_document.uri)
    return navigation.definition(state, params.position) or None if state else None


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_symbols(
    ls: OmlLanguageServer, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol] | None:
    state = _state(ls, params.text_document.uri)
    return navigation.symbols(state) if state else None


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def on_formatting(
    ls: OmlLanguageServer, params: types.DocumentFormattingParams
) -> list[types.TextEdit] | None:
    state = _state(ls, params.text_document.uri)
    return features.formatting(state) if state else None


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, features.FIX_ALL]),
)
def on_code_action(
    ls: OmlLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    state = _state(ls, params.text_document.uri)
    only = list(params.context.only) if params.context.only else None
    return features.code_actions(state, params.range, only) if state else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="oml-lsp", description="OML language server (stdio by default)"
    )
    add_version_flag(parser)
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    parser.add_argument("--log-file", metavar="FILE", help="write logs to FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    if args.log_file:
        logging.basicConfig(filename=args.log_file, level=level)
    else:
        logging.basicConfig(stream=sys.stderr, level=level)
    server.checker.submit(warm_up)  # the first check queues behind it
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0


if __name__ == "__main__":
    sys.exit(main())
