"""Invariants every compiler output must satisfy, checked on each golden case (sqlglot-style).

`check_compiled` takes the exact files of one compile (relative path -> bytes) and raises
AssertionError with a precise message for the first broken rule:

- manifest.yaml validates against specs/manifest.schema.json;
- fingerprints.manifest == manifest_digest(manifest);
- every step has cfg/<id>.json, it exists, hashes to cfg_sha256 and is in canonical form;
- every need/input names an earlier step (topological order), needs are ordered by position,
  the graph is acyclic, and there are no stray files;
- no absolute path the toolchain made up (pipeline-provided values aside), no timestamps;
- no secret of the test environment in any byte of any output.

`check_diagnostics_output` applies the path/secret rules to a diagnostics envelope.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from osiris.runtime.contract.manifest import cfg_bytes, manifest_digest, sha256_tag

ROOT = Path(__file__).resolve().parent.parent

# The canary: tests put it into the environment (and reference it from a connections file as
# ${OSIRIS_TEST_CANARY_PASSWORD}); no output may ever contain it.
CANARY_VAR = "OSIRIS_TEST_CANARY_PASSWORD"
CANARY_VALUE = "canary-Zq7#pW9!never-in-a-manifest"

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?")
_EPOCH_KEYS = re.compile(
    r"(^|_)(ts|time|timestamp|date|created|generated|compiled|built|when|at)$", re.I
)
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")


@functools.cache
def manifest_validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "specs" / "manifest.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def _machine_paths() -> list[str]:
    """Paths of this machine that must never leak into an output."""
    found = {str(ROOT), os.getcwd(), str(Path.home()), tempfile.gettempdir(), "/tmp/"}
    return sorted(p for p in found if p and p not in ("/", "."))


def check_no_leaks(
    files: Mapping[str, bytes],
    *,
    source: str = "",
    secrets: Iterable[str] = (),
    allowed: Iterable[str] = (),
) -> None:
    """No secret, machine path, made-up absolute path or timestamp in any output byte.

    source: the pipeline text; values that appear in it (or in allowed, e.g. resolved params)
    were provided by the user and may legitimately be absolute paths or dates.
    """
    allowed = [a for a in allowed if a]
    secret_list = [s for s in (CANARY_VALUE, f"${{{CANARY_VAR}", *secrets) if s]
    today = dt.date.today().isoformat()

    def provided(text: str) -> bool:
        return text in source or any(text in a for a in allowed)

    for rel, data in sorted(files.items()):
        assert not rel.startswith("/") and ".." not in Path(rel).parts, f"bad output path {rel}"
        text = data.decode("utf-8")
        for secret in secret_list:
            assert secret not in text, f"{rel} contains a secret from the environment"
        for path in _machine_paths():
            if path in text and not provided(path):
                raise AssertionError(f"{rel} contains the machine path {path!r}")
        value = yaml.safe_load(text) if rel.endswith(".yaml") else json.loads(text)
        for s in strings(value):
            # a pipeline-provided value may be embedded: "/data/lake/x.parquet" from params
            embedded = any(a.startswith("/") and a in s for a in allowed)
            if (s.startswith("/") or _WINDOWS_ABS.match(s)) and not provided(s) and not embedded:
                raise AssertionError(f"{rel} holds an absolute path the toolchain made: {s!r}")
            for match in _DATETIME.finditer(s):
                assert provided(match.group(0)), f"{rel} holds a timestamp {match.group(0)!r}"
            if today in s and not provided(today):
                raise AssertionError(f"{rel} holds today's date ({today}) in {s!r}")


def _walk_keys(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield f"{path}/{k}", v
            yield from _walk_keys(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_keys(item, f"{path}/{i}")


def check_manifest(manifest: dict[str, Any], files: Mapping[str, bytes]) -> None:
    """Schema, fingerprint, cfg files, graph and file-set rules of one compiled manifest."""
    errors = sorted(manifest_validator().iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, "manifest.yaml breaks manifest.schema.json: " + "; ".join(
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )
    assert manifest["fingerprints"]["manifest"] == manifest_digest(manifest), (
        "fingerprints.manifest does not match the manifest body"
    )
    # volatile facts never belong to the plan: no key that looks like a time stamp
    for key_path, _ in _walk_keys({k: v for k, v in manifest.items() if k != "params"}):
        last = key_path.rsplit("/", 1)[-1]
        assert not _EPOCH_KEYS.search(last), f"manifest key {key_path} looks volatile"

    steps = manifest["steps"]
    position: dict[str, int] = {}
    for i, step in enumerate(steps):
        sid = step["id"]
        assert sid not in position, f"step id {sid!r} appears twice"
        position[sid] = i
    expected_files = {"manifest.yaml"}
    for i, step in enumerate(steps):
        sid = step["id"]
        assert step["cfg"] == f"cfg/{sid}.json", f"{sid}: cfg is {step['cfg']!r}"
        expected_files.add(step["cfg"])
        data = files.get(step["cfg"])
        assert data is not None, f"{sid}: {step['cfg']} is missing"
        assert sha256_tag(data) == step["cfg_sha256"], f"{sid}: cfg_sha256 does not match"
        assert cfg_bytes(json.loads(data)) == data, f"{sid}: {step['cfg']} is not canonical"
        for need in step["needs"]:
            assert need in position, f"{sid}: need {need!r} is not a step"
            assert position[need] < i, f"{sid}: need {need!r} comes later (not topological)"
        ranks = [position[n] for n in step["needs"]]
        assert ranks == sorted(ranks), f"{sid}: needs are not in topological order"
        for name, upstream in step["inputs"].items():
            assert upstream in step["needs"], f"{sid}: input {name}={upstream} not in needs"
        if step["role"] == "extractor":
            assert not step["needs"], f"extractor {sid} has upstream steps"
        elif step["role"] == "writer":
            assert len(step["needs"]) == 1, f"writer {sid} must have exactly one input"
        else:
            assert step["needs"], f"processor {sid} has no input"
        if step["connection"] is not None:
            cfg = json.loads(data)
            assert cfg.get("connection") == step["connection"], f"{sid}: connection differs"
    assert set(files) == expected_files, (
        f"stray or missing files: {sorted(set(files) ^ expected_files)}"
    )
    _check_acyclic({s["id"]: list(s["needs"]) for s in steps})


def _check_acyclic(needs: Mapping[str, list[str]]) -> None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, "cycle: " + " -> ".join([*trail, node])
        state[node] = 1
        for up in needs.get(node, []):
            visit(up, [*trail, node])
        state[node] = 2

    for node in needs:
        visit(node, [])


def check_compiled(
    files: Mapping[str, bytes],
    *,
    source: str = "",
    params: Mapping[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> dict[str, Any]:
    """All invariants of one compile; returns the parsed manifest."""
    assert "manifest.yaml" in files, "no manifest.yaml"
    manifest = yaml.safe_load(files["manifest.yaml"])
    assert isinstance(manifest, dict), "manifest.yaml is not a mapping"
    check_manifest(manifest, files)
    param_values = [s for s in strings(params or {})]
    check_no_leaks(files, source=source, secrets=secrets, allowed=param_values)
    return manifest


def check_diagnostics_output(
    envelope: Mapping[str, Any], data: bytes, *, source: str = "", secrets: Iterable[str] = ()
) -> None:
    """The diagnostics envelope is consistent and leaks nothing."""
    diagnostics = envelope["diagnostics"]
    errors = sum(1 for d in diagnostics if d["severity"] == "error")
    warnings = sum(1 for d in diagnostics if d["severity"] == "warning")
    assert envelope["error_count"] == errors and envelope["warning_count"] == warnings
    assert envelope["valid"] is (errors == 0)
    for d in diagnostics:
        assert re.fullmatch(r"OML\d{3}", d["code"]), d["code"]
        rng = d.get("range")
        if rng is not None:
            assert not Path(rng["filename"]).is_absolute(), "diagnostic with an absolute path"
            start, end = rng["start"], rng["end"]
            assert (start["line"], start["byte"]) <= (end["line"], end["byte"]), d
    check_no_leaks({"diagnostics.json": data}, source=source, secrets=secrets)
