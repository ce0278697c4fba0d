"""A syrupy extension that keeps each golden snapshot at its own path under golden/.

Usage: ``snapshot.use_extension(GoldenFileExtension)(name="golden/<case>/manifest.yaml") == text``.
The snapshot *name* is the file's path relative to the repository root, so the expected output
lives next to the pipeline it belongs to (``golden/<case>/manifest.yaml``, ``cfg/<id>.json``,
``diagnostics.json``), readable and reviewed in diffs like any other file.

- Files are compared as exact UTF-8 text: no newline translation, no trailing-newline fix-ups.
- Without ``--snapshot-update`` a missing file is a failure, never created (syrupy's default).
- Syrupy's unused-snapshot discovery is switched off for this extension: golden/ also holds the
  inputs (pipeline.oml, args.json, connection files), and syrupy must never delete those. Stale
  expected files are found (and, with ``--snapshot-update``, removed) by tests/test_golden.py,
  which knows exactly which files each case produces.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from syrupy.data import SnapshotCollection, SnapshotCollections
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

if TYPE_CHECKING:
    from syrupy.location import PyTestLocation
    from syrupy.types import SerializableData, SerializedData, SnapshotIndex

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "golden"


def golden_path(name: SnapshotIndex) -> Path:
    """The file a snapshot name stands for; only relative paths inside golden/ are allowed."""
    if not isinstance(name, str):
        raise ValueError(f"golden snapshots need name='golden/<case>/<file>', got {name!r}")
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or rel.parts[:1] != ("golden",) or len(rel.parts) < 3:
        raise ValueError(f"golden snapshot name must be 'golden/<case>/<file>', got {name!r}")
    return ROOT.joinpath(*rel.parts)


class GoldenFileExtension(SingleFileSnapshotExtension):
    """One snapshot = one text file at golden/<case>/<relative path>."""

    _write_mode = WriteMode.TEXT
    file_extension = ""

    def serialize(self, data: SerializableData, **_: Any) -> SerializedData:
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data).decode("utf-8")  # strict: golden files are UTF-8 text
        if isinstance(data, str):
            return data
        raise TypeError(f"golden files hold str or UTF-8 bytes, not {type(data).__name__}")

    @classmethod
    def get_snapshot_name(cls, *, test_location: PyTestLocation, index: SnapshotIndex = 0) -> str:
        return f"{test_location.snapshot_name}[{index}]"

    @classmethod
    def get_location(cls, *, test_location: PyTestLocation, index: SnapshotIndex) -> str:
        return str(golden_path(index))

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(GOLDEN_DIR)

    @classmethod
    def matches_test_location(
        cls, *, test_location: PyTestLocation, snapshot_location: str
    ) -> bool:
        return Path(snapshot_location).is_relative_to(GOLDEN_DIR)

    def discover_snapshots(
        self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
    ) -> SnapshotCollections:
        return SnapshotCollections()  # see the module docstring: never report or delete inputs

    def delete_snapshots(self, *, snapshot_location: str, snapshot_names: set[str]) -> None:
        raise AssertionError(f"golden files are never deleted by syrupy ({snapshot_location})")

    def read_snapshot_collection(self, *, snapshot_location: str) -> SnapshotCollection:
        collection = SnapshotCollection(location=snapshot_location)
        return collection

    def read_snapshot_data_from_location(
        self, *, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> SerializableData | None:
        try:
            return Path(snapshot_location).read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None

    @classmethod
    def write_snapshot_collection(
        cls, *, snapshot_collection: SnapshotCollection, name_order: dict[str, int] | None = None
    ) -> None:
        data = next(iter(snapshot_collection)).data
        if not isinstance(data, str):
            raise TypeError(f"golden files hold text, not {type(data).__name__}")
        path = Path(snapshot_collection.location)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8"))
