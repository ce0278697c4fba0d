"""The manifest contract shared by compiler and runtime: canonical bytes and fingerprints."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

MANIFEST_VERSION = "0.1.0"


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


def manifest_digest(manifest: dict[str, Any]) -> str:
    """Fingerprint of a manifest body: everything except fingerprints.manifest itself."""
    body = copy.deepcopy(manifest)
    body.get("fingerprints", {}).pop("manifest", None)
    return sha256_tag(canonical_json(body))
