"""The sandbox side of a sandboxed run: unpack the inputs, run the manifest, stream its events as
JSON lines on stdout, pack the records and the written files (`python -m osiris.runtime.engines.remote`)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any, TextIO

from osiris.runtime.cancel import CancelToken, cancel_on_signals
from osiris.runtime.runner import run_manifest

INPUT_ARCHIVE = "osiris-input.tar.gz"
OUTPUT_ARCHIVE = "osiris-output.tar.gz"
RUNS_MEMBER = "run/"  # records of the run, in the output archive
PROJECT_MEMBER = "project/"  # files the writers wrote, by project-relative path


class LineStream:
    """The observer of the run: every event, progress sample and warning as one JSON line."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, ensure_ascii=False, default=str) + "\n")
        self.out.flush()

    def on_event(self, event: dict[str, Any]) -> None:
        self.send({"event": event})

    def on_progress(self, step_id: str, rows: int) -> None:
        self.send({"progress": [step_id, rows]})

    def on_warning(self, message: str) -> None:
        self.send({"warning": message})


def pack(archive: Path, members: dict[str, Path]) -> None:
    """A tar.gz of the existing paths (files or folders) under their member names."""
    with tarfile.open(archive, "w:gz") as tar:
        for name, path in members.items():
            if path.exists():
                tar.add(path, arcname=name)


def unpack(data: bytes, target: Path) -> None:
    """Extract a tar.gz made by pack() into target (no absolute paths, no '..', no links out)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(target, filter="data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osiris-sandbox")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--output", action="append", default=[], help="a file a writer writes")
    parser.add_argument("--max-parallel", type=int)
    parser.add_argument("--validation")
    parser.add_argument("--materialize")
    parser.add_argument("--atomic", action="store_true")
    parser.add_argument("--allow-modified", action="store_true")
    parser.add_argument("--no-keep-intermediate", action="store_true")
    args = parser.parse_args(argv)
    project = Path.cwd()
    unpack((project / INPUT_ARCHIVE).read_bytes(), project)
    (project / INPUT_ARCHIVE).unlink()
    cancel = CancelToken()
    stream = LineStream(sys.stdout)
    with cancel_on_signals(cancel, lambda _signum, _repeated: None):
        outcome = run_manifest(
            project / "manifest.yaml",
            connections=project / "osiris_connections.yaml",
            project_dir=project,
            allow_modified=args.allow_modified,
            keep_intermediate=not args.no_keep_intermediate,
            max_parallel=args.max_parallel,
            validation=args.validation,
            materialize=args.materialize,
            atomic=args.atomic,
            observer=stream,
            cancel=cancel,
            engine=args.engine,
        )
    members = {PROJECT_MEMBER + out: project / out for out in args.output}
    if outcome.run_dir is not None:
        members[RUNS_MEMBER.rstrip("/")] = outcome.run_dir
    pack(project / OUTPUT_ARCHIVE, members)
    stream.send({"summary": outcome.summary()})
    return int(outcome.exit_code)


if __name__ == "__main__":
    sys.exit(main())
