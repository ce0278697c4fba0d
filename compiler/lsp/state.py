"""Per-document state (text, version, latest and last good check) and the connections files."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from osiris.oml.span import SourceText

if TYPE_CHECKING:
    from osiris.compiler.check_schema import Catalogs
    from osiris.compiler.connections import ConnectionsIndex
    from osiris.compiler.frontend import CheckResult
    from osiris.compiler.lsp.context import Outline
    from osiris.oml.ast import Document
    from osiris.oml.diagnostics import Diagnostic


def uri_to_path(uri: str) -> str:
    """The file-system path of a file: URI (other URIs are kept as they are)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    path = unquote(parsed.path)
    if os.name == "nt" and path.startswith("/") and path[2:3] == ":":  # pragma: no cover
        path = path[1:]
    return path


def path_to_uri(path: str) -> str:
    return Path(path).absolute().as_uri()


@dataclass(frozen=True, slots=True)
class Connections:
    """A loaded connections file: its index (None when invalid), text and load problems."""

    path: str
    index: ConnectionsIndex | None
    source: SourceText
    problems: tuple[Diagnostic, ...] = ()


class ConnectionsFile:
    """One osiris_connections.yaml, re-read whenever its mtime or size changes."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._stamp: tuple[float, int] | None = None
        self._loaded: Connections | None = None

    def get(self) -> Connections | None:
        with self._lock:
            try:
                stat = os.stat(self._path)
            except OSError:
                self._stamp, self._loaded = None, None
                return None
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self._stamp or self._loaded is None:
                self._loaded = _load(self._path)
                self._stamp = stamp
            return self._loaded


def _load(path: str) -> Connections:
    from osiris.compiler.connections import index_connections
    from osiris.oml.diagnostics import DiagnosticList
    from osiris.runtime.contract.config_file import ConfigFileError, read_config_text

    diagnostics = DiagnosticList()
    try:
        text = read_config_text(Path(path), "connections file")
    except ConfigFileError as err:
        diagnostics.error(
            "OML040",
            str(err),
            None,
            why="Connection references are checked against this file.",
            fix="Check the osiris.connections setting, or remove it.",
        )
        return Connections(path, None, SourceText(path, ""), tuple(diagnostics.sorted()))
    source = SourceText(path, text)
    index = index_connections(source, diagnostics)
    return Connections(path, index, source, tuple(diagnostics.sorted()))


@dataclass(slots=True)
class DocumentState:
    """One open document: its current text and the checks computed for it."""

    uri: str
    text: str
    version: int | None = None
    encoding: str = "utf-16"
    connections: Connections | None = None
    catalogs: Catalogs | None = None  # cached discovery only: the editor never connects
    result: CheckResult | None = None  # the latest check, of result_version
    result_version: int | None = None
    good: CheckResult | None = None  # the latest check whose text parsed to a Document
    good_version: int | None = None
    _source: SourceText | None = field(default=None, repr=False)
    _outline: Outline | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return uri_to_path(self.uri)

    def set_text(self, text: str, version: int | None) -> None:
        self.text, self.version = text, version
        self._source = self._outline = None

    @property
    def source(self) -> SourceText:
        if self._source is None or self._source.text is not self.text:
            self._source = SourceText(self.path, self.text)
        return self._source

    @property
    def outline(self) -> Outline:
        """The line-based outline of the current text (works while it does not parse)."""
        from osiris.compiler.lsp.context import outline

        current = self._outline
        if current is None or current.text is not self.text:
            current = self._outline = outline(self.text)
        return current

    @property
    def fresh(self) -> bool:
        return self.result is not None and self.result_version == self.version

    def accept(self, result: CheckResult, version: int | None) -> bool:
        """Record a check of `version`; True when it is the current version (so publishable)."""
        current = version == self.version
        if current:
            self.result, self.result_version = result, version
        if result.document is not None and (
            self.good is None or _newer(version, self.good_version) or current
        ):
            self.good, self.good_version = result, version
        return current

    def current(self) -> CheckResult:
        """The check of the current text, computed now when the latest one is older."""
        if not self.fresh:
            from osiris.compiler.lsp.features import analyse

            self.accept(analyse(self.text, self.uri, self.connections, self.catalogs), self.version)
        assert self.result is not None
        return self.result

    @property
    def document(self) -> Document | None:
        """The current AST when the text parses, else the last good one (for completion/hover)."""
        if self.fresh and self.result is not None and self.result.document is not None:
            return self.result.document
        return self.good.document if self.good is not None else None


def _newer(version: int | None, than: int | None) -> bool:
    return version is not None and (than is None or version >= than)
