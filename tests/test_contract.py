"""Rules with one implementation, seen from every side that uses them: check, LSP and run agree."""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
from hypothesis import given
from oml_cases import pipeline

from osiris.compiler.connections import ConnectionsIndex, index_connections
from osiris.compiler.frontend import check_text
from osiris.compiler.lsp.docs import public_fields as lsp_public_fields
from osiris.compiler.registry import load_registry
from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.expr import ExpressionError, parse_connection_ref
from osiris.oml.span import SourceText
from osiris.runtime.connections import ConnectionResolver
from osiris.runtime.contract.connections import ConnectionRef, is_secret_field
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.secrets import Redactor

ODD_SECRETS = """\
connections:
  mysql:
    shop:
      host: db.internal
      user: app
      database: shop
      passwd: "${PASSWD}"
      credentials: "${CREDS}"
      ssh_private_key: "${SSH_KEY}"
"""


def _index(text: str, name: str = "osiris_connections.yaml") -> ConnectionsIndex:
    index = index_connections(SourceText(name, text), DiagnosticList())
    assert index is not None
    return index


def test_secret_looking_fields_are_hidden_in_the_editor_and_redacted_in_runs(
    tmp_path: Path,
) -> None:
    environ = {"PASSWD": "hunter2-pw", "CREDS": "c-r-e-d-s", "SSH_KEY": "----BEGIN-key"}
    alias = _index(ODD_SECRETS).lookup("mysql", "shop")
    assert alias is not None
    shown = lsp_public_fields(alias, load_registry())
    assert set(shown) == {"host", "user", "database"}
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(ODD_SECRETS)
    redactor = Redactor()
    ConnectionResolver(path, redactor=redactor, environ=environ, validation="off").resolve(
        "@mysql.shop"
    )
    leaked = " / ".join(environ.values())
    assert redactor.redact(leaked) == "*** / *** / ***"
    for name in ("passwd", "credentials", "ssh_private_key", "api_token", "client_secret", "dsn"):
        assert is_secret_field(name), name
    for name in ("host", "port", "user", "database", "schema", "path"):
        assert not is_secret_field(name), name


TWO_DEFAULTS = """\
connections:
  duckdb:
    a: {path: a.duckdb, default: true}
    b: {path: b.duckdb, default: true}
"""


def test_two_defaults_are_an_error_in_check_and_in_run(tmp_path: Path) -> None:
    text = pipeline(
        """\
        - id: src
          component: duckdb.extractor
          mode: read
          config: {connection: "@duckdb", query: "SELECT 1"}
        - id: out
          component: filesystem.csv_writer
          mode: write
          needs: [src]
          config: {path: out.csv}
        """
    )
    result = check_text(text, "p.oml", connections=_index(TWO_DEFAULTS))
    (error,) = [d for d in result.diagnostics if d.code == "OML027"]
    assert error.summary == "osiris_connections.yaml marks several duckdb connections as default"
    assert error.why.startswith("Several duckdb aliases are marked default: a, b")
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(TWO_DEFAULTS)
    resolver = ConnectionResolver(path, redactor=Redactor(), environ={})
    try:
        resolver.resolve("@duckdb")
    except ConfigurationError as err:
        assert "several duckdb aliases are marked default: a, b" in str(err)
    else:  # pragma: no cover - the assertion above is the point
        raise AssertionError("two defaults must not resolve")


@given(st.text(alphabet="@.-_aZz09Ä \t", max_size=12))
def test_the_runtime_reads_connection_references_as_the_grammar_does(text: str) -> None:
    try:
        parsed = parse_connection_ref(text)
    except ExpressionError:
        parsed = None
    runtime = ConnectionRef.parse(text)
    if parsed is None:
        assert runtime is None
    else:
        assert runtime is not None and (runtime.family, runtime.alias) == (
            parsed.family,
            parsed.alias,
        )
