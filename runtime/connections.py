"""Connection resolution: osiris_connections.yaml + variables -> validated fields for one @family.alias."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from osiris.runtime.contract.config_file import ConfigFileError, read_config_text
from osiris.runtime.contract.connections import (
    DEFAULT_KEY,
    ConnectionRef,
    NoDefaultAlias,
    ValidationMode,
    coerce_scalars,
    default_alias,
    embedded_passwords,
    is_secret_field,
    literal_secrets,
    marked_defaults,
    parse_validation_mode,
    schema_problems,
    secret_fields,
    several_defaults_message,
)
from osiris.runtime.contract.connections import (
    VALIDATION_MODES as VALIDATION_MODES,  # re-exported: oml-run's --validation choices
)
from osiris.runtime.contract.project import CONNECTIONS_ENV, CONNECTIONS_FILE
from osiris.runtime.contract.yaml_limits import AliasBomb, safe_load_bounded
from osiris.runtime.errors import ConfigurationError
from osiris.runtime.secrets import (
    MIN_SECRET_LENGTH,
    Redactor,
    VariableSource,
    interpolate,
    is_short_secret,
    read_dotenv,
    referenced_variables,
)


@dataclass(frozen=True, slots=True)
class ResolvedConnection:
    """One connection with variables expanded; fields include secrets (never log them)."""

    ref: str
    family: str
    alias: str
    fields: Mapping[str, Any]
    warnings: tuple[str, ...] = ()
    # the fields its family's schema defines, plus those it has: a step may not set them
    # unless the contract lets it (contract.connections.pinned_overrides)
    defined: frozenset[str] = frozenset()


def validation_mode(value: str | None, environ: Mapping[str, str]) -> ValidationMode:
    """The --validation value, else $OSIRIS_VALIDATION, else 'warn' (contract's rule); a
    ConfigurationError for another value."""
    try:
        return parse_validation_mode(value, environ)
    except ValueError as err:
        raise ConfigurationError(str(err)) from None


def read_connection_aliases(path: Path | str) -> dict[str, dict[str, dict[str, Any]]]:
    """family -> alias -> raw fields as written (variables not expanded). For tools and the compiler."""
    path = Path(path)
    try:
        text = read_config_text(path, "connections file")
    except ConfigFileError as err:
        raise ConfigurationError(str(err)) from None
    try:
        document = safe_load_bounded(text)
    except AliasBomb as err:
        raise ConfigurationError(f"{path}:{err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigurationError(f"{path}{where}: not valid YAML") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path}: expected a mapping with 'version' and 'connections'")
    version = document.get("version", 1)
    if version != 1:
        raise ConfigurationError(f"{path}: version {version!r} is not supported (expected 1)")
    families = document.get("connections") or {}
    if not isinstance(families, dict):
        raise ConfigurationError(f"{path}: 'connections' must map family -> alias -> fields")
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for family, aliases in families.items():
        if not isinstance(aliases, dict):
            raise ConfigurationError(f"{path}: connections.{family} must map alias -> fields")
        result[str(family)] = {}
        for alias, fields in aliases.items():
            if not isinstance(fields, dict):
                raise ConfigurationError(f"{path}: connections.{family}.{alias} must be a mapping")
            result[str(family)][str(alias)] = dict(fields)
        marked = marked_defaults(result[str(family)])
        if len(marked) > 1:
            raise ConfigurationError(f"{path}: {several_defaults_message(str(family), marked)}")
    return result


def family_schema(family: str) -> dict[str, Any] | None:
    """specs/connections/<family>.json, or None when the specs package has none."""
    try:
        entry = resources.files("osiris.specs").joinpath("connections", f"{family}.json")
        if not entry.is_file():
            return None
        loaded = json.loads(entry.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


class ConnectionResolver:
    """Resolves @family.alias references for one run and registers their secrets (thread-safe).

    The connections file is read once. Variables are looked up when a connection is resolved:
    the --secrets-file and .env are read again whenever they changed (size, mtime, inode), so a
    connection opened after a secret rotated gets the new value; refresh() re-reads them even
    when they look unchanged (after the server rejected the credentials)."""

    def __init__(
        self,
        path: Path | None,
        *,
        redactor: Redactor,
        secrets_file: Path | None = None,
        dotenv: Path | None = None,
        environ: Mapping[str, str] | None = None,
        validation: ValidationMode = "warn",
        schema_for: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self.path = path
        self._schema_for = schema_for or family_schema
        self._redactor = redactor
        self._secrets_file = secrets_file
        self._dotenv = dotenv  # the project root's .env, read when it exists
        self._environ = dict(os.environ if environ is None else environ)
        self._validation = validation
        self._lock = threading.RLock()
        self._aliases: dict[str, dict[str, dict[str, Any]]] | None = None
        self._source: VariableSource | None = None
        self._seen: tuple[Any, ...] = ()  # the variable files' signatures when last read
        self._cache: dict[str, ResolvedConnection] = {}

    def _variable_files(self) -> list[Path]:
        """The files ${VAR} values come from, in precedence order (after the environment)."""
        files = [self._secrets_file] if self._secrets_file is not None else []
        return [*files, self._dotenv] if self._dotenv is not None else files

    def _load(self, *, reread: bool) -> tuple[dict[str, dict[str, dict[str, Any]]], VariableSource]:
        if self._aliases is None:
            assert self.path is not None
            self._aliases = read_connection_aliases(self.path)
        files = self._variable_files()
        seen = tuple(_signature(f) for f in files)
        if reread or self._source is None or seen != self._seen:
            layers: list[Mapping[str, str]] = [self._environ]
            if self._secrets_file is not None:
                layers.append(read_dotenv(self._secrets_file))
            if self._dotenv is not None and self._dotenv.exists():
                layers.append(read_dotenv(self._dotenv))
            self._source = VariableSource(tuple(layers))
            self._seen = seen
            self._cache.clear()
        return self._aliases, self._source

    def resolve(self, text: str) -> ResolvedConnection:
        """The connection's fields now (cached while the variable files stay unchanged)."""
        with self._lock:
            return self._resolve(text, reread=False)

    def refresh(self, text: str) -> ResolvedConnection:
        """Resolve text anew, reading the variable files again even if they look unchanged (a
        rewrite can keep size and mtime)."""
        with self._lock:
            return self._resolve(text, reread=True)

    def _resolve(self, text: str, *, reread: bool) -> ResolvedConnection:
        ref = ConnectionRef.parse(text)
        if ref is None:
            raise ConfigurationError(f"connection reference {text!r} is not '@family.alias'")
        if self.path is None:
            raise ConfigurationError(
                f"connection {ref}: no connections file (pass --connections FILE, set "
                f"{CONNECTIONS_ENV}, or create {CONNECTIONS_FILE} in the project directory)"
            )
        if self._aliases is None and not self.path.exists():
            raise ConfigurationError(
                f"connection {ref}: connections file {self.path} does not exist "
                f"(pass --connections FILE or create {CONNECTIONS_FILE} in the project directory)"
            )
        try:
            aliases, source = self._load(reread=reread)
        except ConfigurationError as err:
            raise ConfigurationError(f"connection {ref}: {err}") from None
        if text in self._cache:
            return self._cache[text]
        family = aliases.get(ref.family)
        if not family:
            raise ConfigurationError(
                f"connection {ref}: family '{ref.family}' is not in {self.path}"
            )
        try:
            alias = ref.alias or default_alias(ref.family, family)
        except NoDefaultAlias as err:
            raise ConfigurationError(f"connection {ref}: {err}") from None
        if alias not in family:
            known = ", ".join(sorted(family)) or "none"
            raise ConfigurationError(
                f"connection {ref}: alias '{alias}' is not defined for '{ref.family}' "
                f"in {self.path} (known: {known})"
            )
        raw = {k: v for k, v in family[alias].items() if k != DEFAULT_KEY}
        label = f"connection @{ref.family}.{alias}"
        fields = interpolate(raw, source, label)
        schema = self._schema_for(ref.family)
        marked = secret_fields(schema)
        short = self._register_secrets(fields, marked)
        fields, renamed = _our_names(fields, schema)
        warnings = tuple(
            f"{label}: secret field {name} is shorter than {MIN_SECRET_LENGTH} characters; "
            f"it is masked in messages only where it stands alone as a word (use a longer secret)"
            for name in short
        ) + tuple(
            f"{label}: {old} is upstream Osiris's name for {new}; write {new}"
            for old, new in renamed
        )
        defined = frozenset((schema or {}).get("properties") or ())
        literal = literal_secrets(raw, marked, defined)
        if literal and self._validation != "off":
            problem = (
                f"{label}: secret field(s) {', '.join(literal)} written literally in {self.path}; "
                f"write ${{VAR}} and set VAR in the environment, a --secrets-file or .env"
            )
            if self._validation == "strict":
                raise ConfigurationError(problem)
            warnings += (problem,)
        if schema is not None and self._validation != "off":
            fields = coerce_scalars(fields, schema)
            problems = [p.message for p in schema_problems(fields, schema)]
            if problems and self._validation == "strict":
                raise ConfigurationError(f"{label}: " + "; ".join(problems))
            warnings += tuple(f"{label}: {p}" for p in problems)
        resolved = ResolvedConnection(
            text, ref.family, alias, fields, warnings, (defined | frozenset(raw)) - {DEFAULT_KEY}
        )
        self._cache[text] = resolved
        return resolved

    def _register_secrets(
        self, fields: Mapping[str, Any], marked: frozenset[str], prefix: str = ""
    ) -> list[str]:
        """Register every secret value with the redactor; the names of the short ones."""
        short: list[str] = []
        for name, value in fields.items():
            if isinstance(value, Mapping):
                short += self._register_secrets(value, marked, f"{prefix}{name}.")
                continue
            secrets: list[str] = []
            if is_secret_field(prefix + name, marked) and value is not None and value != "":
                secrets.append(str(value))
            if isinstance(value, str):
                secrets += embedded_passwords(value)
            self._redactor.register_all(secrets)
            if any(is_short_secret(secret) for secret in secrets):
                short.append(prefix + name)
        return short


@dataclass(frozen=True, slots=True)
class LiveConnection:
    """A step's connection, resolved each time the step reads it (at connect time)."""

    resolver: ConnectionResolver
    ref: str

    @property
    def name(self) -> str:
        """'@family.alias' (the default alias filled in)."""
        resolved = self.resolver.resolve(self.ref)
        return f"@{resolved.family}.{resolved.alias}"

    def fields(self) -> Mapping[str, Any]:
        return self.resolver.resolve(self.ref).fields

    def refresh(self) -> None:
        """Read the secrets again now (the next fields() has what they hold)."""
        self.resolver.refresh(self.ref)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _our_names(
    fields: dict[str, Any], schema: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Fields under upstream Osiris's names (x-use in the schema, e.g. pg_dsn) renamed to ours."""
    props = (schema or {}).get("properties") or {}
    out = dict(fields)
    renamed = []
    for name, prop in props.items():
        target = prop.get("x-use") if isinstance(prop, dict) else None
        if isinstance(target, str) and name in out:
            value = out.pop(name)
            if target not in out:
                out[target] = value
                renamed.append((name, target))
    return out, renamed


@dataclass(frozen=True, slots=True)
class SandboxConnections:
    """What a run in a sandbox needs of the connections file: its text for the aliases the run
    uses (every ${VAR} kept as written, every literal secret replaced by a reference) and the
    values of the variables it references, which go to the sandbox only as environment."""

    text: str
    environ: Mapping[str, str]


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def sandbox_connections(resolver: ConnectionResolver, refs: list[str]) -> SandboxConnections:
    """The connections file and environment for a sandboxed run of the connections refs: the
    same file, the same variables (environment, --secrets-file, .env, in that order) and the
    same secret-field rule as a local run, restricted to those refs."""
    document: dict[str, dict[str, dict[str, Any]]] = {}
    environ: dict[str, str] = {}
    with resolver._lock:
        for ref in refs:
            # a missing alias or variable fails here, locally; its secrets join the redactor
            resolved = resolver.resolve(ref)
            aliases, source = resolver._load(reread=False)
            raw = dict(aliases[resolved.family][resolved.alias])
            schema = resolver._schema_for(resolved.family)
            marked = secret_fields(schema)
            defined = frozenset((schema or {}).get("properties") or ())
            # literal secrets (also members: auth.token) travel as variables, never in the file
            for name in literal_secrets(raw, marked, defined):
                variable = _secret_variable(resolved.family, resolved.alias, name)
                head, _, member = name.partition(".")
                if member:
                    raw[head] = holder = dict(raw[head])
                else:
                    holder, member = raw, name
                environ[variable] = str(holder[member])
                holder[member] = "${" + variable + "}"
            for variable in sorted(referenced_variables(raw)):
                found = source.lookup(variable)
                if found is not None:
                    environ[variable] = found
            document.setdefault(resolved.family, {})[resolved.alias] = raw
    text = yaml.safe_dump({"version": 1, "connections": document}, sort_keys=True)
    return SandboxConnections(text, environ)


def local_hosts(fields: Mapping[str, Any]) -> list[str]:
    """The fields of a resolved connection that point at this machine (a host or a URL's host):
    a cloud sandbox cannot reach them."""
    found = []
    for name, value in fields.items():
        if not isinstance(value, str):
            continue
        host = value
        if "://" in value:
            host = urlsplit(value).hostname or ""
        elif "host=" in value:  # a libpq key=value DSN
            host = next((p[5:] for p in value.split() if p.startswith("host=")), "")
        elif name not in {"host", "hostname", "server"}:
            continue
        if host.strip("[]").lower() in LOCAL_HOSTS:
            found.append(name)
    return found


def _secret_variable(family: str, alias: str, field: str) -> str:
    cleaned = "_".join(
        re.sub(r"[^A-Za-z0-9]+", "_", part).upper() for part in (family, alias, field)
    )
    return f"OSIRIS_SECRET_{cleaned}"
