"""Connections file, ${VAR} resolution, secrets files, validation and the redactor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from osiris.runtime.connections import ConnectionResolver, read_connection_aliases, validation_mode
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.secrets import Redactor, read_dotenv

CONNECTIONS = """\
version: 1
connections:
  mysql:
    shop: {host: "${MYSQL_HOST:-127.0.0.1}", port: 3306, database: shop, user: app, password: "${MYSQL_PASSWORD}", default: true}
    reports: {host: reports.internal, database: rep, user: ro, password: "${REPORTS_PASSWORD}"}
  duckdb:
    local: {path: warehouse.duckdb}
  postgres:
    default: {dsn: "postgresql://app:${PG_PASSWORD}@db:5432/app"}
    other: {dsn: "postgresql://x@y/z"}
"""


def resolver(
    tmp_path: Path, environ: dict[str, str], **kwargs: Any
) -> tuple[ConnectionResolver, Redactor]:
    path = tmp_path / "osiris_connections.yaml"
    if not path.exists():
        path.write_text(CONNECTIONS)
    redactor = Redactor()
    return ConnectionResolver(path, redactor=redactor, environ=environ, **kwargs), redactor


def test_variables_defaults_and_default_alias(tmp_path: Path) -> None:
    res, _ = resolver(tmp_path, {"MYSQL_PASSWORD": "pw-1", "PG_PASSWORD": "pg"})
    shop = res.resolve("@mysql")
    assert shop.alias == "shop"
    assert dict(shop.fields) == {
        "host": "127.0.0.1",
        "port": 3306,
        "database": "shop",
        "user": "app",
        "password": "pw-1",
    }
    assert res.resolve("@duckdb").alias == "local"  # the only alias
    assert res.resolve("@postgres").alias == "default"  # the alias named default


def test_precedence_environment_then_secrets_file_then_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "MYSQL_PASSWORD=from-dotenv\nMYSQL_HOST=dotenv-host\nREPORTS_PASSWORD=r\n"
    )
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# team secrets\nexport MYSQL_PASSWORD='from-secrets'\n")
    res, _ = resolver(
        tmp_path, {"MYSQL_HOST": "env-host"}, secrets_file=secrets, dotenv=tmp_path / ".env"
    )
    shop = res.resolve("@mysql.shop")
    assert shop.fields["password"] == "from-secrets"
    assert shop.fields["host"] == "env-host"
    res2, _ = resolver(
        tmp_path, {"MYSQL_PASSWORD": "from-env"}, secrets_file=secrets, dotenv=tmp_path / ".env"
    )
    assert res2.resolve("@mysql.shop").fields["password"] == "from-env"
    assert res2.resolve("@mysql.shop").fields["host"] == "dotenv-host"


def test_dotenv_syntax(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text(
        '# comment\n\nA=1\nexport B = "two words"\nC=\'single # not comment\'\nD=plain # trailing\nE="line\\nbreak"\nF=\n'
    )
    assert read_dotenv(path) == {
        "A": "1",
        "B": "two words",
        "C": "single # not comment",
        "D": "plain",
        "E": "line\nbreak",
        "F": "",
    }
    path.write_text("not a pair\n")
    with pytest.raises(ConfigurationError, match=r"x.env:1"):
        read_dotenv(path)


def test_missing_variable_names_connection_and_variable_never_a_value(tmp_path: Path) -> None:
    res, _ = resolver(tmp_path, {"MYSQL_PASSWORD": "sekrit-value"})
    with pytest.raises(ConfigurationError) as caught:
        res.resolve("@mysql.reports")
    message = str(caught.value)
    assert "@mysql.reports" in message and "REPORTS_PASSWORD" in message
    assert "sekrit-value" not in message


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("@oracle.main", "family 'oracle'"),
        ("@mysql.nope", "alias 'nope'"),
        ("mysql", "not '@family.alias'"),
    ],
)
def test_missing_family_or_alias(tmp_path: Path, ref: str, needle: str) -> None:
    res, _ = resolver(tmp_path, {})
    with pytest.raises(ConfigurationError, match=needle):
        res.resolve(ref)


def test_missing_connections_file(tmp_path: Path) -> None:
    res = ConnectionResolver(tmp_path / "absent.yaml", redactor=Redactor(), environ={})
    with pytest.raises(
        ConfigurationError, match=r"@duckdb.local: connections file .*absent.yaml does not exist"
    ):
        res.resolve("@duckdb.local")


def test_ambiguous_default(tmp_path: Path) -> None:
    (tmp_path / "osiris_connections.yaml").write_text(
        "version: 1\nconnections:\n  mysql:\n    a: {host: x}\n    b: {host: y}\n"
    )
    res, _ = resolver(tmp_path, {})
    with pytest.raises(ConfigurationError, match="no default mysql alias"):
        res.resolve("@mysql")


def test_read_connection_aliases_does_not_resolve(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONNECTIONS)
    aliases = read_connection_aliases(path)
    assert sorted(aliases) == ["duckdb", "mysql", "postgres"]
    assert aliases["mysql"]["shop"]["password"] == "${MYSQL_PASSWORD}"
    assert sorted(aliases["mysql"]) == ["reports", "shop"]


def test_secrets_registered_and_redacted(tmp_path: Path) -> None:
    password = "p@ss w/rd:42"
    res, redactor = resolver(tmp_path, {"MYSQL_PASSWORD": password, "PG_PASSWORD": "pg%secret"})
    res.resolve("@mysql.shop")
    res.resolve("@postgres")
    text = (
        f"auth failed for {password}; url mysql://app:p%40ss%20w%2Frd%3A42@h/db; "
        f'form p%40ss+w%2Frd%3A42; json "p@ss w/rd:42"; dsn postgresql://app:pg%secret@db:5432/app'
    )
    redacted = redactor.redact(text)
    assert password not in redacted and "p%40ss" not in redacted and "pg%secret" not in redacted
    assert redacted.count("***") >= 4
    assert "127.0.0.1" not in text or "127.0.0.1" in redactor.redact(
        "127.0.0.1"
    )  # non-secrets untouched


def test_dsn_password_inside_url_and_key_value(tmp_path: Path) -> None:
    redactor = Redactor()
    (tmp_path / "osiris_connections.yaml").write_text(
        "version: 1\nconnections:\n  postgres:\n"
        "    url: {url: 'postgresql://u:${P1}@h/db'}\n"
        "    kv: {conninfo: 'host=h password=${P2} user=u'}\n"
    )
    res = ConnectionResolver(
        tmp_path / "osiris_connections.yaml",
        redactor=redactor,
        environ={"P1": "hunter2x", "P2": "zebra77"},
    )
    res.resolve("@postgres.url")
    res.resolve("@postgres.kv")
    assert redactor.redact("hunter2x zebra77 u h") == "*** *** u h"


def _schema(family: str) -> dict[str, Any] | None:
    if family != "mysql":
        return None
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["host", "database"],
        "properties": {
            "host": {"type": "string"},
            "port": {"type": "integer"},
            "database": {"type": "string"},
            "user": {"type": "string"},
            "password": {"type": "string", "x-secret": True},
            "pin": {"type": "integer", "x-secret": True},
        },
    }


def test_validation_strict_warn_off(tmp_path: Path) -> None:
    (tmp_path / "osiris_connections.yaml").write_text(
        "version: 1\nconnections:\n  mysql:\n"
        "    good: {host: h, port: '${PORT}', database: d}\n"
        "    literal: {host: h, database: d, pin: 9876}\n"
        "    bad: {host: h, port: 'abc', colour: blue, password: '${PW}'}\n"
    )
    env = {"PORT": "3307", "PW": "very-secret-pw"}
    strict, _ = resolver(tmp_path, env, validation="strict", schema_for=_schema)
    good = strict.resolve("@mysql.good")
    assert good.fields["port"] == 3307  # coerced from the ${PORT} string
    with pytest.raises(ConfigurationError) as caught:
        strict.resolve("@mysql.bad")
    message = str(caught.value)
    assert "database" in message and "colour" in message and "port" in message
    assert "very-secret-pw" not in message and "abc" not in message
    with pytest.raises(ConfigurationError) as caught:  # a literal secret: an error when strict
        strict.resolve("@mysql.literal")
    assert "pin" in str(caught.value) and "${VAR}" in str(caught.value)
    assert "9876" not in str(caught.value)
    warn, redactor = resolver(tmp_path, env, validation="warn", schema_for=_schema)
    assert warn.resolve("@mysql.bad").warnings
    literal = warn.resolve("@mysql.literal")
    assert redactor.redact("9876") == "***"  # x-secret field registered even when not a string
    assert any("pin" in w and "literally" in w for w in literal.warnings)
    assert not any("9876" in w for w in literal.warnings)
    off, _ = resolver(tmp_path, env, validation="off", schema_for=_schema)
    assert off.resolve("@mysql.bad").warnings == ()


def test_validation_mode_from_environment() -> None:
    assert validation_mode(None, {"OSIRIS_VALIDATION": "off"}) == "off"
    assert validation_mode("strict", {"OSIRIS_VALIDATION": "off"}) == "strict"
    assert validation_mode(None, {}) == "warn"
    with pytest.raises(ConfigurationError):
        validation_mode("loud", {})
