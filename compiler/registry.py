"""Component spec registry: loads, validates and fingerprints specs/components/*/spec.yaml."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from osiris.compiler.modes import oml_modes_of, role_of
from osiris.oml.suggest import close_matches
from osiris.runtime.contract.cache import cache_dir
from osiris.runtime.contract.connections import DEFAULT_KEY, is_pinned_field
from osiris.runtime.contract.drivers import DRIVER_IDS
from osiris.runtime.contract.manifest import canonical_json, sha256_tag

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    import referencing
    from jsonschema.protocols import Validator

META_SCHEMA_FILE = "spec.schema.json"
COMPONENTS_DIR = "components"
CONNECTIONS_DIR = "connections"
SPEC_FILE = "spec.yaml"

_ROLE_SYNONYMS: Mapping[str, str] = MappingProxyType(
    {
        "reader": "extractor",
        "read": "extractor",
        "source": "extractor",
        "extract": "extractor",
        "loader": "writer",
        "load": "writer",
        "sink": "writer",
        "write": "writer",
        "transform": "processor",
        "transformer": "processor",
        "sql": "processor",
    }
)


def role_of_word(word: str) -> str | None:
    """The role a word names ('load' -> writer, 'source' -> extractor), or None."""
    wanted = word.strip().lower()
    if wanted in ("extractor", "writer", "processor"):
        return wanted
    return _ROLE_SYNONYMS.get(wanted)


# Bump when validation rules change in a way the source hash of this file would not show.
_VALIDATION_CACHE_VERSION = b"osiris-spec-registry/2"


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """Why a spec (or a schema next to it) could not be loaded."""

    file: str  # relative to the specs root, POSIX separators: components/mysql.extractor/spec.yaml
    pointer: str  # JSON pointer into the file's document; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}#{self.pointer}" if self.pointer else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """One validated component spec. The mappings are shared: read them, never mutate them."""

    name: str
    version: str
    title: str
    description: str
    modes: tuple[str, ...]
    capabilities: Mapping[str, bool] = field(hash=False)
    connection_family: str | None
    config_schema: dict[str, Any] = field(hash=False, repr=False)
    secrets: tuple[str, ...]
    connection_fields: Mapping[str, str] = field(hash=False)  # field -> allowed|forbidden|warning
    constraints: tuple[dict[str, Any], ...] = field(hash=False, repr=False)
    examples: tuple[dict[str, Any], ...] = field(hash=False, repr=False)
    llm_hints: Mapping[str, tuple[str, ...]] = field(hash=False, repr=False)
    driver: str
    path: str  # relative to the specs root: components/<name>/spec.yaml
    sha256: str  # "sha256:<hex>" of the spec file's exact bytes
    document: dict[str, Any] = field(hash=False, compare=False, repr=False)  # the parsed file

    @property
    def role(self) -> str:
        """extractor, writer or processor (the meta-schema guarantees exactly one primary mode)."""
        role = role_of(self.modes)
        assert role is not None, f"{self.name} has no primary mode"
        return role

    @property
    def oml_modes(self) -> tuple[str, ...]:
        """OML step modes that select this component, the usual one first: ("read", "extract")."""
        return oml_modes_of(self.modes)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(self.config_schema.get("required", ()))

    @property
    def fields(self) -> tuple[str, ...]:
        """Config field names in spec order."""
        return tuple(self.config_schema.get("properties", {}))

    @property
    def secret_fields(self) -> frozenset[str]:
        """Top-level config fields named by `secrets`."""
        return frozenset(_unescape(p.split("/")[1]) for p in self.secrets)

    def field_schema(self, name: str) -> dict[str, Any] | None:
        """The schema of one top-level config field, or None when the spec has no such field."""
        return self.schema_at((name,))

    def schema_at(self, path: Sequence[str]) -> dict[str, Any] | None:
        """The schema of a config field or of a field nested in object fields (("paginator",
        "type")); () is the config schema itself. None when the spec has no such field."""
        schema: Any = self.config_schema
        for name in path:
            properties = schema.get("properties") if isinstance(schema, dict) else None
            schema = properties.get(name) if isinstance(properties, dict) else None
        return schema if isinstance(schema, dict) else None


class Registry:
    """The loaded specs, connection schemas and load problems of one specs root."""

    __slots__ = (
        "_connections",
        "_problems",
        "_refs",
        "_schemas",
        "_sources",
        "_specs",
        "_validators",
    )

    def __init__(
        self,
        specs: Mapping[str, ComponentSpec],
        connections: Mapping[str, dict[str, Any]],
        schemas: Mapping[str, dict[str, Any]],
        problems: Iterable[SpecProblem],
        sources: Mapping[str, str],
    ) -> None:
        self._specs = dict(sorted(specs.items()))
        self._connections = dict(connections)
        self._schemas = dict(schemas)  # $id -> schema: what `$ref` may point at
        self._problems = tuple(problems)
        self._sources = dict(sources)
        self._validators: dict[str, Validator] = {}
        self._refs: referencing.Registry[Any] | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ComponentSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        """Names of the specs that loaded, sorted."""
        return list(self._specs)

    def get(self, name: str) -> ComponentSpec | None:
        return self._specs.get(name)

    def source(self, name: str) -> str:
        """The spec file's text exactly as shipped (KeyError for an unknown name)."""
        return self._sources[name]

    @property
    def problems(self) -> tuple[SpecProblem, ...]:
        """Every spec or schema that failed to load, in file order."""
        return self._problems

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        """Did-you-mean candidates for an unknown component name, best first."""
        names = list(self._specs)
        wanted = name.strip().lower()
        family, _, rest = wanted.rpartition(".")
        found: list[str] = []
        # another word for the role: postgres.reader -> postgres.extractor
        role = _ROLE_SYNONYMS.get(rest)
        if family and role and f"{family}.{role}" in self._specs:
            found.append(f"{family}.{role}")
        # a bare part: "mysql", "csv_extractor"
        found += [n for n in names if wanted and wanted in n.split(".")]
        if found:
            return list(dict.fromkeys(found))[:limit]
        return close_matches(wanted, names, n=limit, band=0.1)

    def fingerprint(self, names: Iterable[str] | None = None) -> str:
        """sha256 over the spec files of the given components (all when None); KeyError if unknown."""
        chosen = sorted(set(self._specs if names is None else names))
        digests = {}
        for name in chosen:
            spec = self._specs.get(name)
            if spec is None:
                raise KeyError(f"unknown component {name!r}")
            digests[name] = spec.sha256
        return sha256_tag(canonical_json(digests))

    def connection_families(self) -> list[str]:
        return sorted(self._connections)

    def connection_schema(self, family: str) -> dict[str, Any] | None:
        """JSON Schema of one entry connections.<family>.<alias> of osiris_connections.yaml."""
        return self._connections.get(family)

    def config_validator(self, name: str) -> Validator:
        """A cached Draft 2020-12 validator of a component's configSchema (KeyError if unknown).

        `$ref` resolves against Osiris's own schemas only; nothing is ever fetched.
        """
        validator = self._validators.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator

            spec = self._specs.get(name)
            if spec is None:
                raise KeyError(f"unknown component {name!r}")
            validator = Draft202012Validator(spec.config_schema, registry=self.ref_registry())
            self._validators[name] = validator
        return validator

    def ref_registry(self) -> referencing.Registry[Any]:
        """A `referencing.Registry` of our schemas whose retrieval of anything else fails."""
        if self._refs is None:
            self._refs = _ref_registry(self._schemas)
        return self._refs


# -- loading ----------------------------------------------------------------------------------


def default_root() -> Traversable:
    """The installed `specs` package (a directory in a checkout, wheel or editable install)."""
    return resources.files("osiris.specs")


@functools.cache
def load_registry(root: Path | None = None) -> Registry:
    """Load and validate every spec under root (default: the installed specs), cached per root.

    Problems are collected, never raised: a broken spec is left out and reported in `problems`.
    A fully valid set of files is remembered by content hash in the user cache directory
    (OSIRIS_CACHE_DIR, default $XDG_CACHE_HOME/osiris; OSIRIS_CACHE_DIR="" turns it off), so a
    warm start reads and hashes the files without re-running JSON Schema validation.
    """
    return _Loader(default_root() if root is None else Path(root)).load()


class _Loader:
    """One pass over a specs root: read, (maybe) validate, build."""

    def __init__(self, root: Traversable) -> None:
        self.root = root
        self.problems: list[SpecProblem] = []
        self.meta: dict[str, Any] | None = None
        self.schemas: dict[str, dict[str, Any]] = {}  # $id -> document
        self.connections: dict[str, dict[str, Any]] = {}
        self.connection_files: dict[str, str] = {}  # family -> relative path
        self.docs: dict[str, tuple[str, bytes, dict[str, Any]]] = {}  # dir -> (path, bytes, doc)
        self.digest = hashlib.sha256(_VALIDATION_CACHE_VERSION)
        self.digest.update(_own_source())
        self.digest.update(canonical_json(sorted(DRIVER_IDS)))

    def problem(self, file: str, pointer: str, message: str) -> None:
        self.problems.append(SpecProblem(file, pointer, message))

    def load(self) -> Registry:
        self._read_schemas()
        raw = self._read_spec_files()
        cache = None if self.problems else _cache_path(self.digest.hexdigest())
        cached = _read_cache(cache) if cache is not None else None
        if cached is not None and cached.keys() == raw.keys():
            self.docs = {name: (rel, data, cached[name]) for name, (rel, data) in raw.items()}
        else:
            for name, (rel, data) in raw.items():
                doc = _parse_yaml(data, rel, self.problems)
                if doc is not None:
                    self.docs[name] = (rel, data, doc)
            self._validate()
            if not self.problems and cache is not None:
                _write_cache(cache, {name: doc for name, (_, _, doc) in self.docs.items()})
        broken = {p.file for p in self.problems}
        specs = {
            name: _build(rel, data, doc)
            for name, (rel, data, doc) in self.docs.items()
            if rel not in broken
        }
        sources = {name: data.decode("utf-8", "replace") for name, (_, data) in raw.items()}
        return Registry(specs, self.connections, self.schemas, self.problems, sources)

    # reading ---------------------------------------------------------------------------------

    def _read_json(self, item: Traversable, rel: str) -> dict[str, Any] | None:
        data = item.read_bytes()
        self.digest.update(f"\0{rel}\0{len(data)}\0".encode())
        self.digest.update(data)
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            self.problem(rel, "", f"not valid JSON: {err}")
            return None
        if not isinstance(doc, dict):
            self.problem(rel, "", "a schema must be a JSON object")
            return None
        if isinstance(doc.get("$id"), str):
            self.schemas[doc["$id"]] = doc
        return doc

    def _read_schemas(self) -> None:
        if not self.root.joinpath(META_SCHEMA_FILE).is_file():
            self.problem(META_SCHEMA_FILE, "", "the component spec meta-schema is missing")
        for item in sorted(self.root.iterdir(), key=lambda i: i.name):
            if item.is_file() and item.name.endswith(".json"):
                doc = self._read_json(item, item.name)
                if item.name == META_SCHEMA_FILE:
                    self.meta = doc
        folder = self.root.joinpath(CONNECTIONS_DIR)
        if folder.is_dir():
            for item in sorted(folder.iterdir(), key=lambda i: i.name):
                if item.is_file() and item.name.endswith(".json"):
                    rel = f"{CONNECTIONS_DIR}/{item.name}"
                    doc = self._read_json(item, rel)
                    if doc is not None:
                        family = item.name.removesuffix(".json")
                        self.connections[family] = doc
                        self.connection_files[family] = rel

    def _read_spec_files(self) -> dict[str, tuple[str, bytes]]:
        """component directory name -> (relative path, exact bytes of its spec.yaml)."""
        found: dict[str, tuple[str, bytes]] = {}
        folder = self.root.joinpath(COMPONENTS_DIR)
        if not folder.is_dir():
            self.problem(COMPONENTS_DIR, "", "no components directory")
            return found
        for item in sorted(folder.iterdir(), key=lambda i: i.name):
            if not item.is_dir() or item.name.startswith((".", "_")):
                continue
            rel = f"{COMPONENTS_DIR}/{item.name}/{SPEC_FILE}"
            spec_file = item.joinpath(SPEC_FILE)
            if not spec_file.is_file():
                self.problem(rel, "", f"component directory {item.name} has no {SPEC_FILE}")
                continue
            data = spec_file.read_bytes()
            self.digest.update(f"\0{rel}\0{len(data)}\0".encode())
            self.digest.update(data)
            found[item.name] = (rel, data)
        return found

    # validation ------------------------------------------------------------------------------

    def _validate(self) -> None:
        from jsonschema import Draft202012Validator

        refs = _ref_registry(self.schemas)
        for family, schema in self.connections.items():
            rel = self.connection_files[family]
            self._check_schema(schema, rel, "", refs)
        if self.meta is not None:
            try:
                Draft202012Validator.check_schema(self.meta)
            except Exception as err:  # jsonschema.SchemaError
                self.problem(META_SCHEMA_FILE, "", f"not a valid JSON Schema: {_message(err)}")
                self.meta = None
        if self.meta is None:
            for rel, _, _ in self.docs.values():
                self.problem(
                    rel, "", f"cannot be validated: {META_SCHEMA_FILE} is missing or broken"
                )
            return
        meta = Draft202012Validator(self.meta, registry=refs)
        for name, (rel, _, doc) in self.docs.items():
            errors = sorted(meta.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
            for error in errors:
                self.problem(rel, _pointer(error.absolute_path), _message(error))
            if not errors:
                _SpecChecker(self, name, rel, doc, refs).run()

    def _check_schema(
        self, schema: dict[str, Any], rel: str, pointer: str, refs: referencing.Registry[Any]
    ) -> bool:
        """check_schema plus: every $ref resolves without leaving our own schemas."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as err:
            where = pointer + _pointer(err.absolute_path)
            self.problem(rel, where, f"not a valid JSON Schema: {_message(err)}")
            return False
        ok = True
        for ref_pointer, ref in _refs_in(schema):
            message = _unresolvable(schema, ref, refs)
            if message is not None:
                self.problem(rel, pointer + ref_pointer, message)
                ok = False
        return ok


class _SpecChecker:
    """Checks the meta-schema cannot express, for one spec that already matches it."""

    def __init__(
        self,
        loader: _Loader,
        name: str,
        rel: str,
        doc: dict[str, Any],
        refs: referencing.Registry[Any],
    ) -> None:
        self.loader = loader
        self.dirname = name
        self.rel = rel
        self.doc = doc
        self.refs = refs
        self.properties: dict[str, Any] = doc["configSchema"]["properties"]

    def problem(self, pointer: str, message: str) -> None:
        self.loader.problem(self.rel, pointer, message)

    def run(self) -> None:
        doc = self.doc
        if doc["name"] != self.dirname:
            self.problem(
                "/name", f"name {doc['name']!r} differs from its directory {self.dirname!r}"
            )
        driver = doc["x-runtime"]["driver"]
        if driver not in DRIVER_IDS:
            self.problem(
                "/x-runtime/driver",
                f"unknown driver {driver!r}: not one of the runtime's driver ids"
                + _did_you_mean(driver, DRIVER_IDS),
            )
        schema_ok = self.loader._check_schema(
            doc["configSchema"], self.rel, "/configSchema", self.refs
        )
        self._check_connection()
        self._check_secrets()
        constraints_ok = self._check_constraints()
        if schema_ok and constraints_ok:
            self._check_examples()

    def _check_connection(self) -> None:
        family = self.doc.get("x-connection-family")
        if family is not None:
            if family not in self.loader.connections:
                self.problem(
                    "/x-connection-family",
                    f"no connection schema for family {family!r} (expected connections/{family}.json)",
                )
            if "connection" not in self.properties:
                self.problem(
                    "/configSchema/properties",
                    "a component with x-connection-family needs a 'connection' config field",
                )
        elif "connection" in self.properties:
            self.problem(
                "/configSchema/properties/connection",
                "a 'connection' field needs x-connection-family to say which family it takes",
            )
        secrets = {_unescape(p.split("/")[1]) for p in self.doc.get("secrets", ())}
        schema = self.loader.connections.get(family) if family else None
        defined = frozenset((schema or {}).get("properties") or ()) - {DEFAULT_KEY}
        for i, entry in enumerate(self.doc.get("x-connection-fields", ())):
            name = entry["field"]
            if name not in self.properties:
                self.problem(f"/x-connection-fields/{i}/field", f"{name!r} is not a config field")
            elif name in secrets and entry["override"] != "forbidden":
                self.problem(
                    f"/x-connection-fields/{i}/override",
                    f"{name!r} is secret, so a step must not override it: use 'forbidden'",
                )
            elif is_pinned_field(name, defined) and entry["override"] != "forbidden":
                self.problem(
                    f"/x-connection-fields/{i}/override",
                    f"{name!r} says where or as whom the connection connects, so a step must "
                    "not override it: use 'forbidden'",
                )

    def _check_secrets(self) -> None:
        for i, pointer in enumerate(self.doc.get("secrets", ())):
            if _resolve_config_pointer(self.doc["configSchema"], pointer) is None:
                self.problem(f"/secrets/{i}", f"{pointer!r} does not name a field of configSchema")

    def _check_constraints(self) -> bool:
        ok = True
        for i, constraint in enumerate(self.doc.get("constraints", ())):
            for key in constraint.get("when", {}):
                if key not in self.properties:
                    self.problem(f"/constraints/{i}/when/{key}", f"{key!r} is not a config field")
                    ok = False
            target = constraint.get("path")
            if target is not None and target not in self.properties:
                self.problem(f"/constraints/{i}/path", f"{target!r} is not a config field")
            ok &= self.loader._check_schema(
                constraint["must"], self.rel, f"/constraints/{i}/must", self.refs
            )
        return ok

    def _check_examples(self) -> None:
        from jsonschema import Draft202012Validator

        doc = self.doc
        validator = Draft202012Validator(doc["configSchema"], registry=self.refs)
        accepted = oml_modes_of(doc["modes"])
        secrets = {_unescape(p.split("/")[1]) for p in doc.get("secrets", ())}
        for i, example in enumerate(doc.get("examples", ())):
            at = f"/examples/{i}"
            if example["component"] != doc["name"]:
                self.problem(f"{at}/component", f"example uses {example['component']!r}")
            if example["mode"] not in accepted:
                self.problem(
                    f"{at}/mode",
                    f"mode {example['mode']!r} is not one of {sorted(accepted)}",
                )
            config = example["config"]
            for error in sorted(
                validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))
            ):
                self.problem(f"{at}/config{_pointer(error.absolute_path)}", _message(error))
            for j, constraint in enumerate(doc.get("constraints", ())):
                when = constraint.get("when", {})
                if all(config.get(k) == v for k, v in when.items()) and not Draft202012Validator(
                    constraint["must"], registry=self.refs
                ).is_valid(config):
                    self.problem(f"{at}/config", f"breaks constraint {j}: {constraint['error']}")
            for name in sorted(secrets & set(config)):
                self.problem(f"{at}/config/{name}", "examples must not inline secrets")


def _build(rel: str, data: bytes, doc: dict[str, Any]) -> ComponentSpec:
    hints = doc.get("llmHints", {})
    return ComponentSpec(
        name=doc["name"],
        version=doc["version"],
        title=doc["title"],
        description=" ".join(doc["description"].split()),
        modes=tuple(doc["modes"]),
        capabilities=MappingProxyType(dict(doc["capabilities"])),
        connection_family=doc.get("x-connection-family"),
        config_schema=doc["configSchema"],
        secrets=tuple(doc.get("secrets", ())),
        connection_fields=MappingProxyType(
            {e["field"]: e["override"] for e in doc.get("x-connection-fields", ())}
        ),
        constraints=tuple(doc.get("constraints", ())),
        examples=tuple(doc.get("examples", ())),
        llm_hints=MappingProxyType({k: tuple(v) for k, v in hints.items()}),
        driver=doc["x-runtime"]["driver"],
        path=rel,
        sha256=sha256_tag(data),
        document=doc,
    )


# -- helpers ----------------------------------------------------------------------------------


def _parse_yaml(data: bytes, rel: str, problems: list[SpecProblem]) -> dict[str, Any] | None:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(data, Loader=loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(err, "problem", None) or str(err)
        problems.append(SpecProblem(rel, "", f"not valid YAML{where}: {reason}"))
        return None
    if not isinstance(doc, dict):
        problems.append(SpecProblem(rel, "", "a spec must be a YAML mapping"))
        return None
    odd = _not_json(doc, "")
    if odd is not None:
        pointer, what = odd
        problems.append(
            SpecProblem(rel, pointer, f"{what} is not JSON data; quote dates, times and odd keys")
        )
        return None
    return doc


def _not_json(value: Any, pointer: str) -> tuple[str, str] | None:
    """(pointer, type) of the first value that would not survive a JSON round trip."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (pointer, repr(value))
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _not_json(item, f"{pointer}/{i}")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return pointer, f"key {key!r} ({type(key).__name__})"
            found = _not_json(item, f"{pointer}/{_escape(key)}")
            if found:
                return found
        return None
    return pointer, f"a {type(value).__name__} value"


def _ref_registry(schemas: Mapping[str, dict[str, Any]]) -> referencing.Registry[Any]:
    import referencing
    import referencing.jsonschema

    registry: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]
    return registry.with_resources(
        (uri, referencing.Resource.from_contents(doc, referencing.jsonschema.DRAFT202012))
        for uri, doc in schemas.items()
    ).crawl()


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _refs_in(schema: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(pointer, value) of every $ref in a schema, skipping data keywords (enum, const, ...)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("enum", "const", "default", "examples"):
                continue
            here = f"{pointer}/{_escape(key)}"
            if key == "$ref" and isinstance(value, str):
                yield here, value
            else:
                yield from _refs_in(value, here)
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _refs_in(value, f"{pointer}/{i}")


def _unresolvable(root: dict[str, Any], ref: str, refs: referencing.Registry[Any]) -> str | None:
    import referencing
    import referencing.jsonschema

    resolver = refs.resolver_with_root(
        referencing.Resource.from_contents(root, referencing.jsonschema.DRAFT202012)
    )
    try:
        resolver.lookup(ref)
    except Exception as err:  # referencing.exceptions.Unresolvable and friends
        remote = "://" in ref and not ref.startswith("https://osiris.dev/schemas/")
        why = (
            "remote schemas are never fetched; use a local #/$defs/... or one of Osiris's own schemas"
            if remote
            else f"{type(err).__name__}"
        )
        return f"$ref {ref!r} cannot be resolved: {why}"
    return None


def _resolve_config_pointer(schema: dict[str, Any], pointer: str) -> dict[str, Any] | None:
    """The subschema a JSON pointer into a config lands on (through properties/items)."""
    node: Any = schema
    for raw in pointer.split("/")[1:]:
        part = _unescape(raw)
        if not isinstance(node, dict):
            return None
        props = node.get("properties")
        if isinstance(props, dict) and part in props:
            node = props[part]
        elif part.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
        else:
            return None
    return node if isinstance(node, dict) else None


def _message(error: Any) -> str:
    """A jsonschema error message, with a long echo of the offending value shortened."""
    message = str(getattr(error, "message", error))
    schema = getattr(error, "schema", None)
    if getattr(error, "validator", None) == "pattern" and len(str(error.validator_value)) > 60:
        message = f"{_summary(error.instance)} does not have the required form"
    if isinstance(schema, dict) and isinstance(schema.get("description"), str):
        message += f" ({schema['description'].rstrip('.')})"
    if len(message) > 160 and hasattr(error, "instance"):
        echoed = repr(error.instance)
        if len(echoed) > 60 and echoed in message:
            message = message.replace(echoed, _summary(error.instance))
    return message if len(message) <= 300 else message[:297] + "..."


def _summary(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:6]))
        return f"{{{keys}{', ...' if len(value) > 6 else ''}}}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _pointer(parts: Iterable[Any]) -> str:
    return "".join(f"/{_escape(str(p))}" for p in parts)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


@functools.cache
def _own_source() -> bytes:
    try:
        return Path(__file__).read_bytes()
    except OSError:  # pragma: no cover - zipped install: fall back to the version tag alone
        return b""


def _cache_path(key: str) -> Path | None:
    """Where the parsed documents of a fully valid set of spec files live (None = caching off)."""
    base = cache_dir()
    return None if base is None else base / "spec-registry" / f"{key}.json"


def _read_cache(path: Path) -> dict[str, dict[str, Any]] | None:
    try:
        docs = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(docs, dict) or not all(isinstance(d, dict) for d in docs.values()):
        return None
    return docs


def _write_cache(path: Path, docs: dict[str, dict[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        # insertion order kept: a warm load yields the very same documents as a cold one
        tmp.write_bytes(json.dumps(docs, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        os.replace(tmp, path)
    except OSError:
        pass  # read-only home, sandbox: validate again next time
