"""The model's view of the registry: a compact, secret-free JSON context, cached by fingerprint."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from osiris.compiler.registry import ComponentSpec, Registry

# Bump when the context's shape changes: cached contexts of another version are rebuilt.
CONTEXT_VERSION = 2
PROMPTS_DIR = Path(".osiris") / "prompts"

RULES = (
    'Top: oml_version "0.1.0", name (kebab-case), description, params, steps.',
    "Step: id (kebab-case, unique), component, mode, config, and needs [ids] or inputs {df: "
    '"${id.df}"}; no other keys (never depends_on, type, version).',
    "Edges come only from needs/inputs (list order makes none). Extractor: no upstream; writer: "
    "exactly one; processor: one or more.",
    'connection: "@family.alias", quoted, one of the given aliases; never host/user/password '
    "inline: c supplies them.",
    "duckdb.processor query reads each upstream as a table named by its step id, double-quoted "
    'if it has a dash (FROM "extract-orders"); input only with exactly one upstream.',
    "Writers: write_mode append|replace|upsert; upsert needs primary_key. Use only listed fields.",
    'params: {name: {type: string|integer|number|boolean, default: v}}, used as "${params.name}".',
)
# Tuning knobs whose defaults fit: left out so the model's budget goes to fields that matter.
TUNING_FIELDS = frozenset(
    {"batch_size", "timeout", "max_retries", "retry_delay", "retry_backoff", "rate_limit",
     "validate_ssl", "row_group_size"}
)  # fmt: skip
USUAL_MODE = {"extractor": "read", "processor": "transform", "writer": "write"}
LEGEND = (
    "A name ending in extractor|processor|writer is that role, mode read|transform|write "
    '(else r role, m mode); c connection family (config connection: "@c.alias"), '
    "f other fields (s|i|n|b|o|[s] type, =default, a|b enum), "
    "req required; tuning fields (batch_size, timeouts, retries) omitted: defaults fit"
)
# The one tiny example: the shape of a whole pipeline, compact.
EXAMPLE = {
    "name": "orders-to-dwh",
    "steps": [
        {
            "id": "extract-orders",
            "component": "mysql.extractor",
            "mode": "read",
            "config": {"connection": "@mysql.shop", "table": "orders"},
        },
        {
            "id": "daily",
            "component": "duckdb.processor",
            "mode": "transform",
            "needs": ["extract-orders"],
            "config": {
                "query": 'SELECT day, sum(amount) AS total FROM "extract-orders" GROUP BY day'
            },
        },
        {
            "id": "load-daily",
            "component": "postgres.writer",
            "mode": "write",
            "needs": ["daily"],
            "config": {
                "connection": "@postgres.dwh",
                "table": "daily_totals",
                "write_mode": "upsert",
                "primary_key": ["day"],
            },
        },
    ],
}

_TYPE = {"string": "s", "integer": "i", "number": "n", "boolean": "b", "object": "o", "array": "[]"}


@dataclass(frozen=True, slots=True)
class Context:
    fingerprint: str
    data: dict[str, Any]
    text: str  # the JSON the model reads
    tokens: int  # estimate_tokens(text)
    cached: bool = False  # read from .osiris/prompts/


def estimate_tokens(text: str) -> int:
    """A conservative token estimate for JSON-ish English (Claude averages ~3.5 chars/token)."""
    return math.ceil(len(text) / 3.2)


def _field(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        kind = "|".join(str(v) for v in schema["enum"])
    else:
        raw = schema.get("type", "any")
        types = raw if isinstance(raw, list) else [raw]
        parts = []
        for t in types:
            if t == "array":
                inner = schema.get("items", {}).get("type", "any")
                parts.append(f"[{_TYPE.get(str(inner), str(inner))}]")
            else:
                parts.append(_TYPE.get(str(t), str(t)))
        kind = "|".join(parts)
    if "default" in schema:
        default = schema["default"]
        kind += "=" + (json.dumps(default) if not isinstance(default, str) else default)
    return kind


def component_entry(spec: ComponentSpec) -> dict[str, Any]:
    """One component: role, modes, what its connection supplies, its fields, one tiny example."""
    supplied = {f for f, rule in spec.connection_fields.items() if rule == "forbidden"}
    hidden = supplied | set(spec.secret_fields)
    fields = {}
    for name in spec.fields:
        schema = spec.field_schema(name) or {}
        # upstream names and upstream conveniences (`x-context: false`) have a field of ours
        # the model should use instead
        if name in hidden or name in TUNING_FIELDS or schema.get("deprecated"):
            continue
        if name == "connection" and spec.connection_family:  # "c" says it
            continue
        if schema.get("x-context") is False:
            continue
        fields[name] = _field(schema)
    entry: dict[str, Any] = {}
    if not (spec.name.endswith(spec.role) and spec.oml_modes[0] == USUAL_MODE.get(spec.role)):
        entry |= {"r": spec.role, "m": spec.oml_modes[0]}  # else the name says both
    if spec.connection_family:
        entry["c"] = f"@{spec.connection_family}"
    entry["f"] = fields
    if spec.required_fields:
        entry["req"] = list(spec.required_fields)
    return entry


def build_context(registry: Registry) -> dict[str, Any]:
    """The context document: rules, legend, every loaded component (sorted)."""
    return {
        "oml_version": "0.1.0",
        "rules": list(RULES),
        "legend": LEGEND,
        "example": EXAMPLE,
        "components": {spec.name: component_entry(spec) for spec in registry},
    }


def context_text(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def cache_file(project_root: Path, fingerprint: str) -> Path:
    digest = fingerprint.removeprefix("sha256:")[:16]
    return project_root / PROMPTS_DIR / f"context-v{CONTEXT_VERSION}-{digest}.json"


def load_context(registry: Registry, project_root: Path | None) -> Context:
    """The context for registry, from .osiris/prompts/ when a file for its fingerprint exists;
    built (and written there) otherwise. A spec change changes the fingerprint, so the
    context is rebuilt; a damaged cache file is rebuilt too."""
    fingerprint = registry.fingerprint()
    path = cache_file(project_root, fingerprint) if project_root is not None else None
    if path is not None and path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("fingerprint") == fingerprint and isinstance(stored.get("context"), dict):
                text = context_text(stored["context"])
                return Context(fingerprint, stored["context"], text, estimate_tokens(text), True)
        except (OSError, ValueError):
            pass
    data = build_context(registry)
    text = context_text(data)
    context = Context(fingerprint, data, text, estimate_tokens(text))
    if path is not None:
        _write(path, {"fingerprint": fingerprint, "version": CONTEXT_VERSION, "context": data})
    return context


def _write(path: Path, document: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only project still gets its context, only uncached
