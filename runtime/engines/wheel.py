"""The runtime wheel sent to a sandbox: osiris.runtime* and osiris.specs only, cached by content."""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import zipfile
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from osiris.runtime.contract.cache import cache_dir

NAME = "osiris_runtime"
VERSION = "0.1.0"
# What the runtime imports (runtime/ never imports the compiler, the LSP or an LLM SDK).
REQUIRES = ("duckdb", "pyarrow", "pyyaml", "jsonschema", "referencing", "rich")
EXTRAS = {"postgres": ("psycopg[binary]",), "mysql": ("pymysql", "connectorx")}
DRIVER_EXTRAS = {"postgres": "postgres", "supabase": "postgres", "mysql": "mysql"}
_DIST = {"pyyaml": "PyYAML", "psycopg[binary]": "psycopg"}
_SPEC_SUFFIXES = (".json",)  # the runtime reads the manifest and connection schemas only


def extras_for(drivers: list[str]) -> tuple[str, ...]:
    """The wheel extras a manifest's drivers need (postgres, mysql)."""
    return tuple(
        sorted(
            {DRIVER_EXTRAS[d.split(".")[0]] for d in drivers if d.split(".")[0] in DRIVER_EXTRAS}
        )
    )


def _requirement(name: str) -> str:
    """name pinned to the version installed here, so the sandbox runs what a local run runs."""
    try:
        return f"{name}=={metadata.version(_DIST.get(name, name))}"
    except metadata.PackageNotFoundError:
        return name


def _files() -> list[tuple[str, bytes]]:
    """(path in the wheel, bytes) of the runtime and specs packages, sorted."""
    found: list[tuple[str, bytes]] = []

    def walk(node: Traversable, prefix: str, keep: tuple[str, ...]) -> None:
        for child in node.iterdir():
            if child.is_dir():
                if child.name != "__pycache__":
                    walk(child, f"{prefix}/{child.name}", keep)
            elif child.name.endswith(keep):
                found.append((f"{prefix}/{child.name}", child.read_bytes()))

    walk(resources.files("osiris.runtime"), "osiris/runtime", (".py", "py.typed"))
    walk(resources.files("osiris.specs"), "osiris/specs", _SPEC_SUFFIXES)
    if not any(path == "osiris/specs/__init__.py" for path, _ in found):
        found.append(("osiris/specs/__init__.py", b""))  # a regular package: one folder, found
    return sorted(found)


def _metadata() -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {NAME}", f"Version: {VERSION}"]
    lines += ["Summary: the Osiris runtime (oml-run) for sandboxes", "Requires-Python: >=3.11"]
    lines += [f"Requires-Dist: {_requirement(r)}" for r in REQUIRES]
    for extra, names in sorted(EXTRAS.items()):
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {_requirement(n)}; extra == "{extra}"' for n in names]
    return "\n".join(lines) + "\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def runtime_wheel() -> Path:
    """The wheel for this runtime's sources, built once per content hash (in the user cache
    directory, else a temp directory)."""
    files = _files()
    meta = _metadata()
    digest = hashlib.sha256(meta.encode())
    for path, data in files:
        digest.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    tag = digest.hexdigest()[:16]
    base = cache_dir()
    folder = base if base is not None else Path(tempfile.gettempdir()) / "osiris-cache"
    folder = folder / "sandbox" / "wheels"
    wheel = folder / f"{NAME}-{VERSION}+{tag}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{NAME}-{VERSION}+{tag}.dist-info"
    entries = [*files]
    entries.append((f"{info}/METADATA", meta.encode()))
    entries.append(
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: osiris\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
    )
    entries.append(
        (f"{info}/entry_points.txt", b"[console_scripts]\noml-run = osiris.runtime.cli:main\n")
    )
    record = [_record_line(p, d) for p, d in entries] + [f"{info}/RECORD,,"]
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries:
            item = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            item.external_attr = 0o644 << 16
            archive.writestr(item, data, zipfile.ZIP_DEFLATED)
    os.replace(tmp, wheel)
    return wheel


def wheel_tag(wheel: Path) -> str:
    """The content hash in a runtime wheel's name."""
    return wheel.name.split("+", 1)[1].split("-", 1)[0]
