"""The manifest contract: version, schema and validation, canonical bytes and fingerprints."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from importlib import resources
from typing import Any

MANIFEST_VERSION = "0.1.0"
MANIFEST_FILE = "manifest.yaml"
SCHEMA_FILE = "manifest.schema.json"  # in osiris.specs


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the byte form every fingerprint is taken over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_tag(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cfg_bytes(config: Any) -> bytes:
    """The exact bytes of a cfg/<step>.json file."""
    text = json.dumps(config, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes of manifest.yaml: sorted keys, block style, no line folding, UTF-8, '\\n'."""
    import yaml

    # libyaml's emitter writes the same bytes as the pure-Python one, ~10x faster.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(
        manifest,
        Dumper=dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
        indent=2,
        line_break="\n",
    )
    return text.encode("utf-8")


def manifest_digest(manifest: dict[str, Any]) -> str:
    """Fingerprint of a manifest body: everything except fingerprints.manifest itself."""
    body = copy.deepcopy(manifest)
    body.get("fingerprints", {}).pop("manifest", None)
    return sha256_tag(canonical_json(body))


@functools.cache
def manifest_schema_bytes() -> bytes:
    """specs/manifest.schema.json, exactly as shipped."""
    return resources.files("osiris.specs").joinpath(SCHEMA_FILE).read_bytes()


def schema_problems(manifest: Any, limit: int = 5) -> list[str]:
    """Where the document breaks the manifest schema, as "path: message" lines (at most limit,
    plus a "+N more" line); [] when it is valid."""
    errors = sorted(_validator().iter_errors(manifest), key=lambda e: list(map(str, e.path)))
    shown = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        shown.append(f"+{len(errors) - limit} more")
    return shown


@functools.cache
def _validator() -> Any:
    import jsonschema  # ~55 ms of start-up: loaded only when a manifest is validated

    return jsonschema.Draft202012Validator(json.loads(manifest_schema_bytes()))
