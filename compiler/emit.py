"""The canonical emitter: IR to manifest.yaml + cfg/<step>.json bytes, fingerprinted and validated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from osiris.compiler.ir import PipelineIR
from osiris.runtime.contract.manifest import (
    MANIFEST_FILE,
    MANIFEST_VERSION,
    SCHEMA_FILE,
    canonical_json,
    cfg_bytes,
    manifest_bytes,
    manifest_digest,
    schema_problems,
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
        return self.files[MANIFEST_FILE]


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
                **({"partition": s.partition} if s.partition else {}),
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
        if node.partition:
            step["partition"] = dict(node.partition)
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
    files[MANIFEST_FILE] = manifest_bytes(manifest)
    return Emitted(manifest, files)


class ManifestInvalid(AssertionError):
    """The emitter produced a manifest that breaks its own schema: a toolchain bug."""


def validate_manifest(manifest: dict[str, Any]) -> None:
    problems = schema_problems(manifest, limit=1)
    if problems:
        raise ManifestInvalid(f"emitted manifest breaks {SCHEMA_FILE}: {problems[0]}")
