"""The discovery cache: one JSON entry per key under .osiris/cache/discovery/<family>.<alias>/.

The key is the SHA-256 of the canonical JSON of what the answer depends on (component, spec
fingerprint, connection identity without secrets, options); an entry also stores the live
catalog digest it was read under, which a hit must still match (docs/discovery.md)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osiris.runtime.catalog.model import Catalog, Column, ForeignKey, Table
from osiris.runtime.contract.connections import is_secret_field
from osiris.runtime.contract.manifest import canonical_json

CACHE_DIR = Path(".osiris") / "cache" / "discovery"
ENTRY_VERSION = 2
DEFAULT_MAX_AGE = 3600.0
# The fields that say where a connection points and as whom (never a secret one).
IDENTITY_FIELDS = ("host", "port", "database", "user", "path", "base_dir")
# The order in which a changed part is named as a miss's reason.
PARTS = ("connection", "spec", "options")


@dataclass(frozen=True, slots=True)
class KeyParts:
    """What a discovery's answer depends on; the key is their hash."""

    component: str
    spec: str
    connection: Mapping[str, Any]
    options: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "spec": self.spec,
            "connection": dict(self.connection),
            "options": dict(self.options),
        }

    @property
    def key(self) -> str:
        return hashlib.sha256(canonical_json(self.to_json())).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    parts: Mapping[str, Any]
    digest: str
    created: float
    catalog: Catalog

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.created)


def connection_identity(
    family: str, alias: str, fields: Mapping[str, Any], marked: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """family, alias and where/as whom it connects: never a secret field's value."""
    identity: dict[str, Any] = {"family": family, "alias": alias}
    for name in IDENTITY_FIELDS:
        value = fields.get(name)
        if value is None or value == "" or is_secret_field(name, marked):
            continue
        identity[name] = int(value) if name == "port" and str(value).isdigit() else value
    return identity


def options(tables: Sequence[str] | None, schema: str | None, samples: int) -> dict[str, Any]:
    return {"tables": sorted(set(tables)) if tables else None, "schema": schema, "samples": samples}


def connection_dir(project_root: Path, family: str, alias: str) -> Path:
    return project_root / CACHE_DIR / f"{family}.{alias}"


def entry_path(folder: Path, key: str) -> Path:
    return folder / f"{key}.json"


def read_entry(path: Path) -> Entry | None:
    """The entry at path; None when it is missing or unreadable (corrupt counts as missing).
    Parsed once per version of the file: the editor checks on every keystroke, and entries are
    only ever replaced whole (os.replace), which changes what stat says."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _parsed_entry(str(path), st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _parsed_entry(path: str, inode: int, mtime_ns: int, size: int) -> Entry | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != ENTRY_VERSION:
            return None
        return Entry(
            key=str(data["key"]),
            parts=dict(data["parts"]),
            digest=str(data["digest"]),
            created=float(data["created"]),
            catalog=_unpack(data["catalog"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_entry(path: Path, parts: KeyParts, digest: str, catalog: Catalog) -> Entry:
    """Write atomically: a temp file beside the entry, then os.replace (a reader sees the old
    entry or the new one, never half of one; of two concurrent writers the last one wins)."""
    entry = Entry(parts.key, parts.to_json(), digest, time.time(), catalog)
    document = {
        "version": ENTRY_VERSION,
        "key": entry.key,
        "parts": entry.parts,
        "digest": digest,
        "created": entry.created,
        "catalog": _pack(catalog),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as out:
            json.dump(document, out, ensure_ascii=False, sort_keys=True, default=str)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return entry


def prune(folder: Path, parts: KeyParts, *, stale_temp_s: float = 3600.0) -> None:
    """Remove the connection's entries that can no longer be hit (another connection identity
    or spec than the one just written: their tables must not reach checks either), and temp
    files that a killed writer left behind."""
    wanted = parts.to_json()
    now = time.time()
    try:
        paths = list(folder.iterdir())
    except OSError:
        return
    for path in paths:
        with contextlib.suppress(OSError):
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                if now - path.stat().st_mtime > stale_temp_s:
                    path.unlink()
                continue
            entry = read_entry(path) if path.suffix == ".json" else None
            if entry is not None and (
                _differs(entry.parts, wanted, "connection") or _differs(entry.parts, wanted, "spec")
            ):
                path.unlink()


def current(found: Sequence[Entry]) -> list[Entry]:
    """The entries (newest first) made with the newest one's connection identity and spec."""
    if not found:
        return []
    newest = found[0].parts
    return [
        e
        for e in found
        if not _differs(e.parts, newest, "connection") and not _differs(e.parts, newest, "spec")
    ]


def _pack(catalog: Catalog) -> dict[str, Any]:
    """The catalog with rows as arrays: a third of the JSON, read back in a third of the time
    (a hit parses the whole entry: 200 tables x 20 columns must stay cheap)."""
    return {
        "family": catalog.family,
        "server_version": catalog.server_version,
        "tables": [
            [
                t.name, t.schema, t.kind, list(t.primary_key), [list(k) for k in t.unique_keys],
                [[list(f.columns), f.ref_schema, f.ref_table, list(f.ref_columns)]
                 for f in t.foreign_keys],
                t.row_estimate, list(t.samples),
                [[c.name, c.db_type, c.arrow_type, c.nullable, c.default, c.primary_key_position]
                 for c in t.columns],
            ]
            for t in catalog.tables
        ],
    }  # fmt: skip


def _unpack(data: dict[str, Any]) -> Catalog:
    tables = tuple(
        Table(
            name=name, schema=schema, columns=tuple(Column(*c) for c in columns), kind=kind,
            primary_key=tuple(pk), unique_keys=tuple(tuple(k) for k in uniques),
            foreign_keys=tuple(ForeignKey(tuple(a), b, c, tuple(d)) for a, b, c, d in fks),
            row_estimate=estimate, samples=tuple(samples),
        )
        for name, schema, kind, pk, uniques, fks, estimate, samples, columns in data["tables"]
    )  # fmt: skip
    return Catalog(str(data["family"]), tables, data.get("server_version"))


def entries(folder: Path) -> list[Entry]:
    """Every readable entry of one connection's folder, newest first (corrupt ones left out)."""
    try:
        paths = [p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]
    except OSError:
        return []
    found = [e for e in (read_entry(p) for p in paths) if e is not None]
    return sorted(found, key=lambda e: e.created, reverse=True)


def _differs(stored: Mapping[str, Any], wanted: Mapping[str, Any], part: str) -> bool:
    if part == "spec":  # the component is part of what the spec says
        return (
            stored.get("spec") != wanted["spec"] or stored.get("component") != wanted["component"]
        )
    return stored.get(part) != wanted[part]


def changed_part(folder: Path, parts: KeyParts) -> str:
    """Why there is no entry under this key: the part that differs from the closest other entry
    of the connection (connection, spec, options, in that order), or 'new' when there is none."""
    wanted = parts.to_json()
    best: list[str] | None = None
    for entry in entries(folder):
        differing = [p for p in PARTS if _differs(entry.parts, wanted, p)]
        if differing and (best is None or len(differing) < len(best)):
            best = differing
    return best[0] if best else "new"
