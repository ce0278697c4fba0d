"""Load a compiled manifest, validate it against the contract, verify its fingerprints -> a VerifiedManifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from osiris.runtime.contract.cache import cache_dir
from osiris.runtime.contract.drivers import DRIVER_IDS
from osiris.runtime.contract.manifest import (
    MANIFEST_FILE,
    manifest_digest,
    manifest_schema_bytes,
    schema_problems,
    sha256_tag,
)
from osiris.runtime.contract.yaml_limits import AliasBomb, safe_load_bounded
from osiris.runtime.drivers.base import Role
from osiris.runtime.errors import ManifestError


@dataclass(frozen=True, slots=True)
class ManifestStep:
    """One step of the plan with its cfg file loaded."""

    id: str
    component: str
    component_version: str
    driver: str
    mode: str
    role: Role
    needs: tuple[str, ...]
    inputs: Mapping[str, str]
    connection: str | None
    cfg_path: str
    cfg_sha256: str
    config: Mapping[str, Any]
    cfg_bytes: bytes
    partition: Mapping[str, Any] | None = (
        None  # an extractor's `partition:` (runtime/partitions.py)
    )

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every upstream step id (needs plus inputs), in manifest order, without repeats."""
        seen = dict.fromkeys(self.needs)
        seen.update(dict.fromkeys(self.inputs.values()))
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class VerifiedManifest:
    """A manifest that passed the schema and fingerprint checks: what the planner plans."""

    manifest_path: Path
    root: Path
    pipeline_name: str
    fingerprint: str
    modified: bool
    manifest_bytes: bytes
    steps: tuple[ManifestStep, ...]


def manifest_file(path: Path) -> Path:
    """MANIFEST may be the manifest.yaml or the directory that holds it."""
    return path / MANIFEST_FILE if path.is_dir() else path


def load_manifest(path: Path | str, *, allow_modified: bool = False) -> VerifiedManifest:
    """Read, validate and verify; ManifestError (exit 3) on anything wrong.

    allow_modified skips only the fingerprint comparison, never schema or structure checks.
    """
    file = manifest_file(Path(path))
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"manifest {file} does not exist") from None
    except OSError as err:
        raise ManifestError(f"cannot read manifest {file}: {err.strerror}") from None
    try:
        document = safe_load_bounded(data)
    except AliasBomb as err:
        raise ManifestError(f"manifest {file}:{err}") from None
    except yaml.YAMLError:
        raise ManifestError(f"manifest {file} is not valid YAML") from None
    _validate(document, file, data)
    try:
        digest = manifest_digest(document)
    except (TypeError, ValueError):
        raise ManifestError(f"manifest {file} holds values that are not plain JSON") from None
    recorded = document["fingerprints"]["manifest"]
    modified = digest != recorded
    if modified and not allow_modified:
        raise ManifestError(
            f"manifest {file} was modified after compilation (fingerprint {recorded} "
            f"!= content {digest}); recompile it, or pass --allow-modified"
        )
    root = file.parent
    steps: list[ManifestStep] = []
    for raw in document["steps"]:
        step, cfg_modified = _load_step(raw, root, allow_modified)
        modified = modified or cfg_modified
        steps.append(step)
    _check_graph(steps, file)
    return VerifiedManifest(
        manifest_path=file,
        root=root,
        pipeline_name=document["pipeline"]["name"],
        fingerprint=recorded,
        modified=modified,
        manifest_bytes=data,
        steps=tuple(steps),
    )


def _validate(document: Any, file: Path, data: bytes) -> None:
    if not isinstance(document, dict):
        raise ManifestError(f"manifest {file} must be a mapping")
    marker = _validated_marker(data)
    if marker is not None and marker.is_file():
        return
    problems = schema_problems(document)
    if problems:
        raise ManifestError(
            f"manifest {file} does not match the manifest schema: " + "; ".join(problems)
        )
    if marker is not None:
        with contextlib.suppress(OSError):  # a cache that cannot be written is no error
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()


def _validated_marker(data: bytes) -> Path | None:
    """A cache entry recording that these exact manifest bytes passed this exact schema:
    validation is a pure function of the two, so a scheduled rerun skips it."""
    base = cache_dir()
    if base is None:
        return None
    key = hashlib.sha256(manifest_schema_bytes() + b"\0" + data).hexdigest()
    return base / "valid-manifests" / key


def _load_step(raw: dict[str, Any], root: Path, allow_modified: bool) -> tuple[ManifestStep, bool]:
    step_id = raw["id"]
    if raw["driver"] not in DRIVER_IDS:
        raise ManifestError(
            f"step {step_id}: driver {raw['driver']!r} is not known to this runtime"
        )
    cfg_file = root / raw["cfg"]
    try:
        cfg_data = cfg_file.read_bytes()
    except OSError:
        raise ManifestError(f"step {step_id}: cfg file {raw['cfg']} is missing") from None
    modified = sha256_tag(cfg_data) != raw["cfg_sha256"]
    if modified and not allow_modified:
        raise ManifestError(
            f"step {step_id}: {raw['cfg']} was modified after compilation "
            f"(does not match cfg_sha256); recompile it, or pass --allow-modified"
        )
    try:
        config = json.loads(cfg_data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ManifestError(f"step {step_id}: {raw['cfg']} is not valid JSON") from None
    if not isinstance(config, dict):
        raise ManifestError(f"step {step_id}: {raw['cfg']} must hold a JSON object")
    step = ManifestStep(
        id=step_id,
        component=raw["component"],
        component_version=raw["component_version"],
        driver=raw["driver"],
        mode=raw["mode"],
        role=raw["role"],
        needs=tuple(raw["needs"]),
        inputs=MappingProxyType(dict(raw["inputs"])),
        connection=raw["connection"],
        cfg_path=raw["cfg"],
        cfg_sha256=raw["cfg_sha256"],
        config=MappingProxyType(config),
        cfg_bytes=cfg_data,
        partition=MappingProxyType(dict(raw["partition"])) if raw.get("partition") else None,
    )
    return step, modified


def _check_graph(steps: list[ManifestStep], file: Path) -> None:
    seen: set[str] = set()
    cfg_paths: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise ManifestError(f"manifest {file}: step id {step.id!r} appears twice")
        if step.cfg_path in cfg_paths:
            raise ManifestError(f"manifest {file}: {step.cfg_path} is used by two steps")
        for upstream in step.upstream:
            if upstream not in seen:
                raise ManifestError(
                    f"manifest {file}: step {step.id!r} depends on {upstream!r}, "
                    "which is not an earlier step (steps must be in topological order)"
                )
        missing = sorted(set(step.inputs.values()) - set(step.needs))
        if missing:
            raise ManifestError(
                f"manifest {file}: step {step.id!r} has inputs from {', '.join(missing)} "
                "that are not listed in needs"
            )
        seen.add(step.id)
        cfg_paths.add(step.cfg_path)
