"""The http connection family: nested secrets (auth.token, secret-named headers) are found, masked and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from osiris.compiler.connections import index_connections
from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import SourceText
from osiris.runtime.connections import ConnectionResolver, family_schema
from osiris.runtime.contract.connections import public_fields, secret_fields
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.secrets import Redactor

CANARY = "canary-http-4b1d9e0f77aa"
LITERAL = f"""\
version: 1
connections:
  http:
    api:
      base_url: https://api.example.com
      headers: {{Accept: application/json, Authorization: "Bearer {CANARY}"}}
      auth: {{type: bearer, token: {CANARY}}}
"""
REFERENCED = """\
version: 1
connections:
  http:
    api:
      base_url: https://api.example.com
      headers: {X-Api-Key: "${API_KEY}", Accept: application/json}
      auth: {type: basic, username: reader, password: "${API_PASSWORD}"}
      timeout: "${API_TIMEOUT:-12}"
"""


def test_the_schema_marks_the_nested_secrets() -> None:
    assert secret_fields(family_schema("http")) == {"auth.token", "auth.password", "auth.value"}


def test_secrets_inside_auth_and_headers_are_registered(tmp_path: Path) -> None:
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(REFERENCED, encoding="utf-8")
    redactor = Redactor()
    environ = {"API_KEY": "key-" + CANARY, "API_PASSWORD": "pw-" + CANARY}
    resolver = ConnectionResolver(path, redactor=redactor, environ=environ, validation="strict")
    fields = resolver.resolve("@http.api").fields
    assert fields["timeout"] == 12  # a ${VAR} coerced to the schema's number
    text = redactor.redact(f"sent key-{CANARY} and pw-{CANARY} for reader, application/json")
    assert CANARY not in text and "reader" in text and "application/json" in text
    shown = public_fields(fields, secret_fields(family_schema("http")))
    assert shown["auth"] == {"type": "basic", "username": "reader"}
    assert shown["headers"] == {"Accept": "application/json"}


def test_literal_nested_secrets_warn_or_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(LITERAL, encoding="utf-8")
    resolver = ConnectionResolver(path, redactor=Redactor(), environ={})
    warnings = " ".join(resolver.resolve("@http.api").warnings)
    assert "auth.token" in warnings and "headers.Authorization" in warnings
    assert "headers.Accept" not in warnings and CANARY not in warnings
    strict = ConnectionResolver(path, redactor=Redactor(), environ={}, validation="strict")
    with pytest.raises(ConfigurationError, match=r"auth\.token"):
        strict.resolve("@http.api")


def test_the_checker_reports_literal_nested_secrets_masked() -> None:
    diagnostics = DiagnosticList()
    index_connections(SourceText("osiris_connections.yaml", LITERAL), diagnostics)
    found = [d for d in diagnostics if d.code == "OML101"]
    assert sorted(d.summary.split("'")[1] for d in found) == ["auth.token", "headers.Authorization"]
    assert all(CANARY not in (d.summary + (d.fix or "")) for d in found)
    assert "${HTTP_AUTH_TOKEN}" in next(d.fix or "" for d in found if "auth.token" in d.summary)


def test_doctor_pings_an_http_api_with_its_auth() -> None:
    from osiris.runtime.catalog.ping import ping
    from osiris.runtime.drivers.base import ConnectionFailure
    from tests.http_api import serve

    servers = serve()
    base, state = next(servers)
    try:
        state.token = CANARY
        fields = {"base_url": base + "/auth/bearer", "auth": {"type": "bearer", "token": CANARY}}
        assert ping("http", fields, 5).latency_ms >= 0
        assert "404" in (ping("http", {"base_url": base}, 5).note or "")  # it answered
        wrong = {**fields, "auth": {"type": "bearer", "token": "wrong-token-123"}}
        with pytest.raises(ConnectionFailure) as failure:
            ping("http", wrong, 5)
        assert failure.value.reason == "authentication"
        assert len(state.seen) == 3  # one request each, no retries
    finally:
        servers.close()


def test_the_inline_token_fix_is_a_connection_that_validates(tmp_path: Path) -> None:
    """OML024's example for graphql's auth_token is an http alias the strict checks accept, and
    the step that references it instead passes the check."""
    from osiris.compiler.frontend import check_text

    step = (
        'oml_version: "0.1.0"\nname: gql\nsteps:\n  - id: products\n'
        "    component: graphql.extractor\n    mode: read\n    config:\n"
        '      endpoint: https://shop.example.com/graphql\n      query: "{ products { id } }"\n'
    )
    refused = check_text(step + f"      auth_token: {CANARY}\n", "p.oml").diagnostics
    (secret,) = [d for d in refused if d.code == "OML024"]
    assert CANARY not in (secret.example or "") + (secret.fix or "")
    connections = (
        (secret.example or "")
        .split("\n", 1)[1]
        .replace("main:", "main:\n      base_url: https://shop.example.com")
    )
    path = tmp_path / "osiris_connections.yaml"
    path.write_text(connections, encoding="utf-8")
    diagnostics = DiagnosticList()
    index = index_connections(SourceText(str(path), connections), diagnostics, validation="strict")
    assert list(diagnostics) == [] and index is not None
    resolved = ConnectionResolver(
        path, redactor=Redactor(), environ={"AUTH_TOKEN": CANARY}, validation="strict"
    ).resolve("@http.main")
    assert resolved.fields["auth"] == {"type": "bearer", "token": CANARY}
    fixed = step.replace("    config:\n", '    config:\n      connection: "@http.main"\n')
    fixed = fixed.replace("https://shop.example.com/graphql", "/graphql")
    assert check_text(fixed, "p.oml", connections=index).diagnostics == ()
