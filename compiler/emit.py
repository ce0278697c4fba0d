"""The canonical emitter: IR to manifest.yaml + cfg/<step>.json bytes, fingerprinted and validated."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from osiris.compiler.ir import PipelineIR
from osiris.runtime.contract.manifest import (
    MANIFEST_VERSION,
    canonical_json,
    cfg_bytes,
    manifest_digest,
    sha256_tag,
)
from osiris.runtime.contract.version import TOOLCHAIN_NAME, toolchain_version


@dataclass(frozen=True, slots=True)
class Emitted:
    """The files of a compiled pipeline: relative path -> exact bytes."""

    manifest: dict[str, Any]
    files: dict[str, bytes]

    @property
    def manifest_yaml(self) -> bytes:
        return self.files["manifest.yaml"]


def dump_yaml(value: Any) -> bytes:
    """Canonical YAML: sorted keys, block style, no line folding, UTF-8, '\\n' line ends."""
    import yaml

    # libyaml's emitter writes the same bytes as the pure-Python one, ~10x faster.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(
        value,
        Dumper=dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
        indent=2,
        line_break="\n",
    )
    return text.encode("utf-8")


def toolchain_fingerprint() -> str:
    return sha256_tag(
        canonical_json(
            {
                "name": TOOLCHAIN_NAME,
                "version": toolchain_version(),
                "manifest_version": MANIFEST_VERSION,
            }
        )
    )


def oml_fingerprint(ir: PipelineIR) -> str:
    """The pipeline's meaning after params: independent of formatting, comments and key order."""
    body = {
        "oml_version": ir.oml_version,
        "name": ir.name,
        "description": ir.description,
        "steps": [
            {
                "id": s.id,
                "component": s.component,
                "mode": s.mode,
                "config": s.config,
                "needs": list(s.needs),
                "inputs": dict(s.inputs),
            }
            for s in ir.steps()
        ],
    }
    return sha256_tag(canonical_json(body))


def emit(ir: PipelineIR, specs_fingerprint: str) -> Emitted:
    files: dict[str, bytes] = {}
    steps = []
    for node in ir.steps():
        cfg_path = f"cfg/{node.id}.json"
        data = cfg_bytes(dict(node.config))
        files[cfg_path] = data
        step: dict[str, Any] = {
            "id": node.id,
            "component": node.component,
            "component_version": node.component_version,
            "driver": node.driver,
            "mode": node.mode,
            "role": node.role,
            "needs": list(node.needs),
            "inputs": dict(node.inputs),
            "connection": node.connection,
            "cfg": cfg_path,
            "cfg_sha256": sha256_tag(data),
        }
        if node.description:
            step["description"] = node.description
        steps.append(step)
    pipeline: dict[str, Any] = {
        "name": ir.name,
        "oml_version": ir.oml_version,
        "profile": ir.profile,
    }
    if ir.description:
        pipeline["description"] = ir.description
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "pipeline": pipeline,
        "toolchain": {"name": TOOLCHAIN_NAME, "version": toolchain_version()},
        "params": dict(ir.params),
        "fingerprints": {
            "oml": oml_fingerprint(ir),
            "specs": specs_fingerprint,
            "params": sha256_tag(canonical_json(dict(ir.params))),
            "toolchain": toolchain_fingerprint(),
        },
        "steps": steps,
    }
    manifest["fingerprints"]["manifest"] = manifest_digest(manifest)
    validate_manifest(manifest)
    files["manifest.yaml"] = dump_yaml(manifest)
    return Emitted(manifest, files)


@functools.cache
def _manifest_validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(
        resources.files("osiris.specs").joinpath("manifest.schema.json").read_text("utf-8")
    )
    return Draft202012Validator(schema)


class ManifestInvalid(AssertionError):
    """The emitter produced a manifest that breaks its own schema: a toolchain bug."""


def validate_manifest(manifest: dict[str, Any]) -> None:
    errors = sorted(_manifest_validator().iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path)
        raise ManifestInvalid(
            f"emitted manifest breaks manifest.schema.json at /{where}: {errors[0].message}"
        )
