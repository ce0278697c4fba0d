"""The spec registry: problem reporting, fingerprints, offline $ref resolution and the load cache."""

from __future__ import annotations

import hashlib
import shutil
import sys
import urllib.request
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from osiris.compiler.registry import Registry, SpecProblem, load_registry

MYSQL_EXTRACTOR = "components/mysql.extractor/spec.yaml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own validation cache directory and a clean load_registry cache."""
    monkeypatch.setenv("OSIRIS_CACHE_DIR", str(tmp_path / "cache"))
    load_registry.cache_clear()
    yield
    load_registry.cache_clear()


@pytest.fixture
def specs_copy(tmp_path: Path) -> Path:
    """A private copy of the packaged specs tree."""
    root = tmp_path / "specs"
    source = Path(str(resources.files("osiris.specs")))
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return root


def _edit(root: Path, rel: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = root / rel
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _problems_for(registry: Registry, rel: str) -> list[SpecProblem]:
    return [p for p in registry.problems if p.file == rel]


# -- broken specs are reported, never silently skipped -------------------------------------------


def _set_examples(doc: dict[str, Any]) -> None:
    doc["examples"] = [doc["examples"][0]] * 3


def _bad_regex(doc: dict[str, Any]) -> None:
    doc["configSchema"]["properties"]["table"]["pattern"] = "[unclosed"


def _example_breaks_constraint(doc: dict[str, Any]) -> None:
    doc["examples"][1]["config"]["table"] = "orders"  # example 2 already has query


@pytest.mark.parametrize(
    ("change", "pointer", "words"),
    [
        (lambda d: d.pop("name"), "", "'name' is a required property"),
        (lambda d: d.__setitem__("version", "1.0"), "/version", "Semantic version"),
        (
            lambda d: d["configSchema"]["properties"]["limit"].__setitem__("type", "int"),
            "/configSchema/properties/limit/type",
            "",
        ),
        (_bad_regex, "/configSchema/properties/table/pattern", "not a valid JSON Schema"),
        (
            lambda d: d["configSchema"]["properties"]["where"].pop("description"),
            "/configSchema/properties/where",
            "'description' is a required property",
        ),
        (
            lambda d: d["x-runtime"].__setitem__("driver", "mysql.extractr"),
            "/x-runtime/driver",
            "did you mean 'mysql.extractor'",
        ),
        (_set_examples, "/examples", "is too long"),
        (
            lambda d: d.__setitem__("modes", ["extract", "write"]),
            "/modes",
            "",
        ),
        (lambda d: d.__setitem__("name", "mysql.reader"), "/name", "differs from its directory"),
        (lambda d: d.__setitem__("secrets", ["/passwd"]), "/secrets/0", "does not name a field"),
        (
            lambda d: d["x-connection-fields"][4].__setitem__("override", "allowed"),
            "/x-connection-fields/4/override",
            "is secret",
        ),
        (_example_breaks_constraint, "/examples/1/config", "breaks constraint"),
        (
            lambda d: d["examples"][0]["config"].__setitem__("password", "hunter2"),
            "/examples/0/config/password",
            "must not inline secrets",
        ),
        (lambda d: d.__setitem__("x-connection-family", "oracle"), "/x-connection-family", ""),
        (lambda d: d.__setitem__("colour", "blue"), "", "colour"),
    ],
)
def test_a_broken_spec_is_reported_with_its_file_and_the_rest_still_loads(
    specs_copy: Path, change: Callable[[dict[str, Any]], None], pointer: str, words: str
) -> None:
    _edit(specs_copy, MYSQL_EXTRACTOR, change)
    registry = load_registry(specs_copy)
    problems = _problems_for(registry, MYSQL_EXTRACTOR)
    assert problems, registry.problems
    assert any(p.pointer == pointer and words in p.message for p in problems), problems
    assert all(p.file == MYSQL_EXTRACTOR for p in registry.problems)
    assert "mysql.extractor" not in registry
    assert registry.get("mysql.extractor") is None
    assert len(registry.names()) == 14
    assert MYSQL_EXTRACTOR in str(problems[0])


def test_yaml_syntax_error_names_file_and_line(specs_copy: Path) -> None:
    path = specs_copy / "components/duckdb.processor/spec.yaml"
    path.write_text(path.read_text().replace("modes: [transform]", "modes: [transform"))
    registry = load_registry(specs_copy)
    (problem,) = registry.problems
    assert problem.file == "components/duckdb.processor/spec.yaml"
    assert "not valid YAML at line" in problem.message
    assert "duckdb.processor" not in registry


def test_non_json_yaml_values_are_rejected(specs_copy: Path) -> None:
    path = specs_copy / "components/duckdb.processor/spec.yaml"
    path.write_text(path.read_text() + "released: 2024-01-01\n")  # a YAML date
    (problem,) = load_registry(specs_copy).problems
    assert problem.pointer == "/released"
    assert "not JSON data" in problem.message


def test_directory_without_spec_file_is_reported(specs_copy: Path) -> None:
    (specs_copy / "components/oracle.extractor").mkdir()
    registry = load_registry(specs_copy)
    assert [p.file for p in registry.problems] == ["components/oracle.extractor/spec.yaml"]
    assert len(registry.names()) == 15


def test_missing_meta_schema_blocks_every_spec(specs_copy: Path) -> None:
    (specs_copy / "spec.schema.json").unlink()
    registry = load_registry(specs_copy)
    assert registry.names() == []
    files = {p.file for p in registry.problems}
    assert "spec.schema.json" in files
    assert MYSQL_EXTRACTOR in files and len(files) == 16


def test_broken_connection_schema_is_reported(specs_copy: Path) -> None:
    (specs_copy / "connections/duckdb.json").write_text("{not json")
    registry = load_registry(specs_copy)
    files = sorted({p.file for p in registry.problems})
    assert files == [
        "components/duckdb.extractor/spec.yaml",
        "components/duckdb.writer/spec.yaml",
        "connections/duckdb.json",
    ]
    assert registry.connection_schema("duckdb") is None
    assert "mysql.writer" in registry


# -- $ref: our own schemas only, never the network -----------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the registry tried to fetch a remote schema")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr("socket.create_connection", refuse)


def _add_ref(ref: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["configSchema"]["properties"]["table"]["$ref"] = ref

    return change


def test_remote_ref_is_a_problem_not_a_fetch(specs_copy: Path, no_network: None) -> None:
    _edit(specs_copy, MYSQL_EXTRACTOR, _add_ref("https://example.com/schemas/table.json"))
    registry = load_registry(specs_copy)
    (problem,) = registry.problems
    assert problem.file == MYSQL_EXTRACTOR
    assert problem.pointer == "/configSchema/properties/table/$ref"
    assert "cannot be resolved" in problem.message and "never fetched" in problem.message


def test_dangling_local_ref_is_a_problem(specs_copy: Path) -> None:
    _edit(specs_copy, MYSQL_EXTRACTOR, _add_ref("#/$defs/missing"))
    (problem,) = load_registry(specs_copy).problems
    assert problem.pointer == "/configSchema/properties/table/$ref"


def test_ref_into_our_own_schemas_resolves_offline(specs_copy: Path, no_network: None) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["configSchema"]["properties"]["host"]["$ref"] = (
            "https://osiris.dev/schemas/connections/mysql.json#/properties/host"
        )
        doc["configSchema"]["properties"]["host"].pop("minLength")
        doc["configSchema"]["$defs"] = {"name": {"type": "string", "pattern": "^[a-z_]+$"}}
        doc["configSchema"]["properties"]["table"]["$ref"] = "#/$defs/name"

    _edit(specs_copy, MYSQL_EXTRACTOR, change)
    registry = load_registry(specs_copy)
    assert registry.problems == ()
    validator = registry.config_validator("mysql.extractor")
    base = {"connection": "@mysql.shop"}
    assert validator.is_valid({**base, "table": "orders", "host": "db"})
    assert not validator.is_valid({**base, "table": "orders", "host": ""})  # minLength via $ref
    assert not validator.is_valid({**base, "table": "Orders"})  # pattern via local $ref


# -- fingerprints ---------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_follows_the_spec_bytes(specs_copy: Path) -> None:
    packaged = load_registry()
    copy = load_registry(specs_copy)
    assert copy.fingerprint() == packaged.fingerprint()  # location does not matter
    assert packaged.fingerprint() == packaged.fingerprint()
    assert packaged.fingerprint().startswith("sha256:") and len(packaged.fingerprint()) == 71
    pair = packaged.fingerprint(["mysql.writer", "duckdb.processor"])
    assert pair == packaged.fingerprint(["duckdb.processor", "mysql.writer", "mysql.writer"])
    assert pair != packaged.fingerprint(["mysql.writer"]) != packaged.fingerprint()

    data = (specs_copy / "components/mysql.writer/spec.yaml").read_bytes()
    spec = copy.get("mysql.writer")
    assert spec is not None
    assert spec.sha256 == "sha256:" + hashlib.sha256(data).hexdigest()

    (specs_copy / "components/mysql.writer/spec.yaml").write_bytes(data + b"# reviewed\n")
    load_registry.cache_clear()
    edited = load_registry(specs_copy)
    assert edited.problems == ()
    assert edited.fingerprint() != packaged.fingerprint()
    assert edited.fingerprint(["mysql.writer"]) != packaged.fingerprint(["mysql.writer"])
    others = [n for n in packaged.names() if n != "mysql.writer"]
    assert edited.fingerprint(others) == packaged.fingerprint(others)


def test_fingerprint_of_unknown_component_raises() -> None:
    with pytest.raises(KeyError, match=r"nope\.extractor"):
        load_registry().fingerprint(["nope.extractor"])


# -- the load cache -------------------------------------------------------------------------------


def test_warm_load_equals_cold_load_and_skips_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = load_registry()
    cache_files = list((tmp_path / "cache" / "spec-registry").glob("*.json"))
    assert len(cache_files) == 1
    load_registry.cache_clear()
    monkeypatch.delitem(sys.modules, "jsonschema", raising=False)  # a warm load must not need it
    warm = load_registry()
    assert "jsonschema" not in sys.modules
    assert warm.names() == cold.names() and warm.problems == cold.problems == ()
    for name in cold.names():
        assert warm.get(name) == cold.get(name)
        assert list(warm.get(name).document) == list(cold.get(name).document)  # type: ignore[union-attr]
    assert warm.fingerprint() == cold.fingerprint()


def test_cache_never_hides_a_broken_edit(specs_copy: Path, tmp_path: Path) -> None:
    assert load_registry(specs_copy).problems == ()
    _edit(specs_copy, MYSQL_EXTRACTOR, lambda d: d.__setitem__("version", "one"))
    load_registry.cache_clear()
    broken = load_registry(specs_copy)
    assert [p.pointer for p in broken.problems] == ["/version"]
    assert len(list((tmp_path / "cache" / "spec-registry").glob("*.json"))) == 1  # not cached


def test_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OSIRIS_CACHE_DIR", "")
    assert load_registry().problems == ()
    assert not (tmp_path / "cache").exists()


# -- lookups -------------------------------------------------------------------------------------


def test_lookups_and_suggestions() -> None:
    registry = load_registry()
    assert load_registry() is registry  # cached per root
    assert "mysql.extractor" in registry and "mysql.reader" not in registry
    assert registry.get("mysql.reader") is None
    assert registry.suggest("mysql.extracter") == ["mysql.extractor"]
    assert registry.suggest("postgres.reader")[0] == "postgres.extractor"
    assert registry.suggest("csv_writer") == ["filesystem.csv_writer"]
    assert set(registry.suggest("supabase")) == {"supabase.extractor", "supabase.writer"}
    assert registry.suggest("zzzz") == []
    assert registry.connection_families() == [
        "duckdb",
        "filesystem",
        "http",
        "mysql",
        "postgres",
        "supabase",
    ]
    assert registry.connection_schema("oracle") is None


def test_config_validator_is_cached_and_real() -> None:
    registry = load_registry()
    validator = registry.config_validator("mysql.writer")
    assert registry.config_validator("mysql.writer") is validator
    assert validator.is_valid({"connection": "@mysql.w", "table": "t", "write_mode": "upsert"})
    errors = list(validator.iter_errors({"table": "t", "write_mode": "merge", "extra": 1}))
    assert sorted(e.validator for e in errors) == ["additionalProperties", "enum"]
    with pytest.raises(KeyError):
        registry.config_validator("nope.writer")


def test_spec_accessors() -> None:
    spec = load_registry().get("postgres.writer")
    assert spec is not None
    assert spec.required_fields == ("table",)
    assert spec.field_schema("write_mode")["default"] == "append"  # type: ignore[index]
    assert spec.field_schema("nope") is None
    assert spec.secret_fields == {"password", "dsn"}
    assert spec.connection_fields["password"] == "forbidden"
    assert spec.connection_fields["schema"] == "allowed"
    assert spec.capabilities["transactions"] is True
    assert "\n" not in spec.description
    assert hash(spec) == hash(load_registry().get("postgres.writer"))
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]
