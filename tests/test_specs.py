"""The shipped component specs, connection schemas and OML schema: valid, complete and consistent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from osiris.compiler.registry import ComponentSpec, Registry, load_registry
from osiris.runtime.contract.connections import secret_fields
from osiris.runtime.contract.drivers import DRIVER_IDS

EXPECTED = {
    "mysql.extractor",
    "mysql.writer",
    "supabase.extractor",
    "supabase.writer",
    "postgres.extractor",
    "postgres.writer",
    "duckdb.processor",
    "duckdb.extractor",
    "duckdb.writer",
    "filesystem.csv_extractor",
    "filesystem.csv_writer",
    "filesystem.parquet_extractor",
    "filesystem.parquet_writer",
    "rest.extractor",
    "graphql.extractor",
}
SQL_EXTRACTORS = ["mysql.extractor", "postgres.extractor", "supabase.extractor", "duckdb.extractor"]
SQL_WRITERS = ["mysql.writer", "postgres.writer", "supabase.writer", "duckdb.writer"]
SECRET_WORDS = ("password", "dsn", "key", "service_role_key", "anon_key", "token", "secret")


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """The packaged specs, fully validated (no validation cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSIRIS_CACHE_DIR", "")
        load_registry.cache_clear()
        yield load_registry()
    load_registry.cache_clear()


def _spec(registry: Registry, name: str) -> ComponentSpec:
    spec = registry.get(name)
    assert spec is not None, name
    return spec


def _constraints_ok(spec: ComponentSpec, config: dict[str, Any]) -> list[str]:
    """Errors of the constraints that apply to config (the checker's semantics)."""
    broken = []
    for constraint in spec.constraints:
        when = constraint.get("when", {})
        applies = all(config.get(k) == v for k, v in when.items())
        if applies and not Draft202012Validator(constraint["must"]).is_valid(config):
            broken.append(constraint["error"])
    return broken


def _valid(registry: Registry, name: str, config: dict[str, Any]) -> bool:
    spec = _spec(registry, name)
    schema_ok = registry.config_validator(name).is_valid(config)
    return schema_ok and not _constraints_ok(spec, config)


def test_all_thirteen_specs_load_without_problems(registry: Registry) -> None:
    assert registry.problems == ()
    assert set(registry.names()) == EXPECTED
    assert registry.names() == sorted(EXPECTED)


def test_package_data_is_found_through_importlib_resources() -> None:
    root = resources.files("osiris.specs")
    found = {
        item.name
        for item in root.joinpath("components").iterdir()
        if item.is_dir() and item.joinpath("spec.yaml").is_file()
    }
    assert found == EXPECTED
    assert root.joinpath("spec.schema.json").is_file()
    assert root.joinpath("oml.schema.json").is_file()
    families = {i.name for i in root.joinpath("connections").iterdir() if i.name.endswith(".json")}
    assert families == {
        "mysql.json",
        "postgres.json",
        "supabase.json",
        "duckdb.json",
        "filesystem.json",
        "http.json",
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_is_complete_and_consistent(registry: Registry, name: str) -> None:
    spec = _spec(registry, name)
    assert spec.path == f"components/{name}/spec.yaml"
    assert spec.driver in DRIVER_IDS
    Draft202012Validator.check_schema(spec.config_schema)
    assert spec.config_schema["additionalProperties"] is False
    for field_name, field in spec.config_schema["properties"].items():
        assert "type" in field and len(field.get("description", "")) > 10, field_name
        if "default" in field:  # a default must itself be a valid value
            assert Draft202012Validator(field).is_valid(field["default"]), field_name
    assert 1 <= len(spec.examples) <= 2
    for example in spec.examples:
        assert example["component"] == name
        assert example["mode"] in spec.oml_modes
        assert registry.config_validator(name).is_valid(example["config"])
        assert not _constraints_ok(spec, example["config"])
    assert spec.llm_hints.get("prefer") or spec.llm_hints.get("notes")
    assert len(spec.description) > 100


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_secret_looking_fields_are_declared_secret(registry: Registry, name: str) -> None:
    spec = _spec(registry, name)
    for field_name in spec.fields:
        if field_name in SECRET_WORDS:
            assert f"/{field_name}" in spec.secrets, field_name
            if spec.connection_family:
                assert spec.connection_fields.get(field_name) == "forbidden", field_name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_connection_components_reference_a_family_and_never_require_inline_fields(
    registry: Registry, name: str
) -> None:
    spec = _spec(registry, name)
    family = {
        "mysql": "mysql",
        "postgres": "postgres",
        "supabase": "supabase",
        "duckdb": "duckdb",
        "filesystem": None,
        "rest": "http",
        "graphql": "http",
    }[name.split(".")[0]]
    if name == "duckdb.processor":
        family = None
    if name == "filesystem.csv_extractor":
        family = "filesystem"
    assert spec.connection_family == family
    if family is None:
        assert "connection" not in spec.fields
        assert not spec.connection_fields
        return
    assert registry.connection_schema(family) is not None
    connection = spec.field_schema("connection")
    assert connection is not None
    pattern = Draft202012Validator(connection)
    assert pattern.is_valid(f"@{family}.main") and pattern.is_valid(f"@{family}")
    assert not pattern.is_valid(f"{family}.main")
    assert not set(spec.required_fields) & set(spec.connection_fields)
    # a step with only a connection reference passes the connection rule
    assert not any("connection" in e for e in _constraints_ok(spec, {"connection": "@x.y"}))
    # a step with neither a connection nor inline fields does not (a filesystem connection is
    # optional: it only supplies a base directory)
    if family != "filesystem":
        assert _constraints_ok(spec, {})


@pytest.mark.parametrize("name", ["mysql.extractor", "postgres.extractor", "supabase.extractor"])
def test_legacy_inline_connection_fields_still_validate(registry: Registry, name: str) -> None:
    inline = {"host": "db.local", "port": 3307, "database": "shop", "user": "etl", "table": "t"}
    assert _valid(registry, name, inline)
    assert not _valid(registry, name, {**inline, "port": "not-a-port"})


@pytest.mark.parametrize("name", SQL_EXTRACTORS)
def test_extractors_read_exactly_one_of_table_or_query(registry: Registry, name: str) -> None:
    base = {"connection": f"@{name.split('.')[0]}.main"}
    assert _valid(registry, name, {**base, "table": "orders"})
    assert _valid(registry, name, {**base, "query": "SELECT 1"})
    assert _valid(registry, name, {**base, "table": "o", "columns": ["id"], "where": "id > 1"})
    assert not _valid(registry, name, base)
    assert not _valid(registry, name, {**base, "table": "orders", "query": "SELECT 1"})
    for extra in ({"columns": ["id"]}, {"where": "id > 1"}, {"limit": 10}):
        assert not _valid(registry, name, {**base, "query": "SELECT 1", **extra}), extra
    assert not _valid(registry, name, {**base, "table": "o", "batch_size": 0})
    assert not _valid(registry, name, {**base, "table": "o", "batch_size": 1_000_001})
    assert not _valid(registry, name, {**base, "table": "o", "limit": -1})
    assert not _valid(registry, name, {**base, "table": "o", "tabel": "typo"})


@pytest.mark.parametrize("name", SQL_WRITERS)
def test_writers_need_primary_key_for_upsert(registry: Registry, name: str) -> None:
    base = {"connection": f"@{name.split('.')[0]}.main", "table": "customers"}
    assert _valid(registry, name, base)
    assert _valid(registry, name, {**base, "write_mode": "replace"})
    assert _valid(registry, name, {**base, "write_mode": "upsert", "primary_key": ["id"]})
    errors = _constraints_ok(_spec(registry, name), {**base, "write_mode": "upsert"})
    assert errors == ["write_mode 'upsert' needs primary_key: the columns that identify a row"]
    assert not _valid(registry, name, {**base, "write_mode": "upsert", "primary_key": []})
    assert not _valid(registry, name, {**base, "write_mode": "merge"})
    assert not _valid(registry, name, {"connection": base["connection"]})  # table is required


@pytest.mark.parametrize("name", ["duckdb.extractor", "duckdb.writer"])
def test_duckdb_takes_a_connection_or_a_path_not_both(registry: Registry, name: str) -> None:
    what = {"table": "t"}
    assert _valid(registry, name, {"connection": "@duckdb.lake", **what})
    assert _valid(registry, name, {"path": "x.duckdb", **what})
    assert not _valid(registry, name, what)
    assert not _valid(registry, name, {"connection": "@duckdb.lake", "path": "x.duckdb", **what})


def test_file_component_fields(registry: Registry) -> None:
    assert _valid(registry, "filesystem.csv_extractor", {"path": "a.csv", "encoding": "latin-1"})
    assert not _valid(registry, "filesystem.csv_extractor", {"path": "a.csv", "encoding": "ascii"})
    assert not _valid(registry, "filesystem.csv_extractor", {"delimiter": ";"})  # path required
    assert _valid(registry, "filesystem.csv_writer", {"path": "o.csv", "write_mode": "append"})
    assert not _valid(registry, "filesystem.csv_writer", {"path": "o.csv", "compression": "auto"})
    assert _valid(registry, "filesystem.parquet_writer", {"path": "d", "partition_by": ["day"]})
    assert not _valid(registry, "filesystem.parquet_writer", {"path": "f", "write_mode": "append"})
    assert _spec(registry, "filesystem.parquet_writer").field_schema("compression") == {
        "type": "string",
        "enum": ["snappy", "zstd", "gzip", "lz4", "none"],
        "default": "zstd",
        "description": "Column chunk compression codec.",
    }
    assert not _valid(registry, "duckdb.processor", {})
    assert _valid(registry, "duckdb.processor", {"query": "SELECT 1"})


def test_roles_and_oml_modes(registry: Registry) -> None:
    roles = {spec.name: spec.role for spec in registry}
    assert roles["mysql.extractor"] == "extractor"
    assert roles["supabase.writer"] == "writer"
    assert roles["duckdb.processor"] == "processor"
    assert sum(r == "extractor" for r in roles.values()) == 8
    assert sum(r == "writer" for r in roles.values()) == 6
    assert _spec(registry, "mysql.extractor").oml_modes == ("read", "extract")
    assert _spec(registry, "mysql.writer").oml_modes == ("write",)
    assert _spec(registry, "duckdb.processor").oml_modes == ("transform",)
    assert "discover" not in _spec(registry, "postgres.extractor").oml_modes


# -- connection schemas -------------------------------------------------------------------------

SECRETS = {
    "mysql": {"password"},
    "postgres": {"password", "dsn"},
    "supabase": {"password", "dsn", "pg_dsn", "key", "service_role_key", "anon_key"},
    "duckdb": set(),
    "filesystem": set(),
}


@pytest.mark.parametrize("family", sorted(SECRETS))
def test_connection_schema(registry: Registry, family: str) -> None:
    schema = registry.connection_schema(family)
    assert schema is not None
    Draft202012Validator.check_schema(schema)
    assert secret_fields(registry.connection_schema(family)) == SECRETS[family]
    assert schema["properties"]["default"]["type"] == "boolean"
    validator = Draft202012Validator(schema)
    assert not validator.is_valid({"default": True, "bogus_field": 1})


def test_connection_entries_as_people_write_them(registry: Registry) -> None:
    def ok(family: str, entry: dict[str, Any]) -> bool:
        schema = registry.connection_schema(family)
        assert schema is not None
        return Draft202012Validator(schema).is_valid(entry)

    mysql = {"host": "db", "database": "shop", "user": "etl", "password": "${MYSQL_PASSWORD}"}
    assert ok("mysql", {**mysql, "port": 3306, "default": True})
    assert ok("mysql", {**mysql, "port": "${MYSQL_PORT:-3306}"})
    assert not ok("mysql", {**mysql, "port": "3306"})
    assert not ok("mysql", {"host": "db"})
    assert ok("postgres", {"dsn": "${PG_DSN}"})
    assert ok("postgres", {"host": "h", "database": "d", "user": "u", "sslmode": "verify-full"})
    assert not ok("postgres", {"host": "h", "database": "d", "user": "u", "sslmode": "on"})
    assert ok("supabase", {"url": "https://abcd.supabase.co", "service_role_key": "${SB_KEY}"})
    assert ok("supabase", {"dsn": "${SUPABASE_DSN}", "project_ref": "abcd", "pooler": "session"})
    assert ok("duckdb", {"path": "lake.duckdb", "read_only": True})
    assert not ok("duckdb", {"read_only": True})


# -- the OML schema -------------------------------------------------------------------------------

DESIGN_EXAMPLE = """
oml_version: "0.1.0"
name: orders-to-warehouse
params:
  since: {type: string, default: "2024-01-01"}
profiles:
  dev: {params: {since: "2024-06-01"}, description: small sample}
x-owner: data-team
steps:
  - id: extract-orders
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.shop"
      query: "SELECT * FROM orders WHERE created_at >= '${params.since}'"
  - id: daily
    component: duckdb.processor
    mode: transform
    needs: [extract-orders]
    config: {query: "SELECT 1"}
  - id: load
    component: supabase.writer
    mode: write
    inputs: {df: "${daily.df}"}
    config: {connection: "@supabase.main", table: daily_totals, write_mode: upsert, primary_key: [day]}
"""


@pytest.fixture(scope="module")
def oml_validator() -> Draft202012Validator:
    schema = json.loads(
        Path(str(resources.files("osiris.specs").joinpath("oml.schema.json"))).read_text()
    )
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_oml_schema_accepts_the_design_example(oml_validator: Draft202012Validator) -> None:
    doc = yaml.safe_load(DESIGN_EXAMPLE)
    assert list(oml_validator.iter_errors(doc)) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.pop("steps"), "steps"),
        (lambda d: d.__setitem__("steps", []), "steps"),
        (lambda d: d.__setitem__("oml_version", "0.2.0"), "oml_version"),
        (lambda d: d.__setitem__("tasks", []), "tasks"),
        (lambda d: d["steps"][0].__setitem__("id", "1st"), "id"),
        (lambda d: d["steps"][0].__setitem__("mode", "discover"), "mode"),
        (lambda d: d["steps"][0].__setitem__("cfg", {}), "cfg"),
        (lambda d: d["params"]["since"].__setitem__("type", "datetime"), "type"),
    ],
)
def test_oml_schema_rejects_broken_documents(
    oml_validator: Draft202012Validator, change: Any, where: str
) -> None:
    doc = yaml.safe_load(DESIGN_EXAMPLE)
    change(doc)
    errors = list(oml_validator.iter_errors(doc))
    assert errors
    described = [" ".join(map(str, e.absolute_path)) + " " + e.message for e in errors]
    assert any(where in text for text in described), described
