"""`osiris components list|spec` through its own argparse wiring, in process and as a subprocess."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml

from osiris.compiler.components_cmd import add_parser
from osiris.compiler.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
EXTRACTORS = [
    "duckdb.extractor",
    "filesystem.csv_extractor",
    "filesystem.parquet_extractor",
    "mysql.extractor",
    "postgres.extractor",
    "supabase.extractor",
]
WRITERS = [
    "duckdb.writer",
    "filesystem.csv_writer",
    "filesystem.parquet_writer",
    "mysql.writer",
    "postgres.writer",
    "supabase.writer",
]
API_EXTRACTORS = ["graphql.extractor", "rest.extractor"]  # read and extract, never discover
READERS = sorted(EXTRACTORS + API_EXTRACTORS)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("OSIRIS_CACHE_DIR", str(tmp_path / "cache"))
    load_registry.cache_clear()
    yield
    load_registry.cache_clear()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="osiris")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def _names_in_table(out: str) -> list[str]:
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "MODES", "TITLE"]
    return [line.split()[0] for line in lines[1:]]


def test_list_shows_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "components", "list")
    assert (code, err) == (0, "")
    assert _names_in_table(out) == sorted(READERS + WRITERS + ["duckdb.processor"])
    assert "mysql.extractor               extract, discover  MySQL / MariaDB extractor" in out


def test_bare_components_lists_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "components")
    assert code == 0 and len(_names_in_table(out)) == 15


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("read", READERS),
        ("extract", READERS),
        ("discover", EXTRACTORS),
        ("write", WRITERS),
        ("transform", ["duckdb.processor"]),
    ],
)
def test_list_by_mode(capsys: pytest.CaptureFixture[str], mode: str, expected: list[str]) -> None:
    code, out, _ = run(capsys, "components", "list", "--mode", mode)
    assert code == 0
    assert _names_in_table(out) == expected


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "components", "list", "--mode", "read", "--format", "json")
    assert code == 0
    entries = json.loads(out)
    assert [e["name"] for e in entries] == READERS
    mysql = next(e for e in entries if e["name"] == "mysql.extractor")
    assert mysql["role"] == "extractor"
    assert mysql["modes"] == ["extract", "discover"]
    assert mysql["oml_modes"] == ["extract", "read"]
    assert mysql["connection_family"] == "mysql"
    assert mysql["capabilities"]["discover"] is True


def test_spec_yaml_is_the_file_as_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "components", "spec", "mysql.writer")
    assert (code, err) == (0, "")
    shipped = (
        resources.files("osiris.specs").joinpath("components/mysql.writer/spec.yaml").read_text()
    )
    assert out == shipped
    assert yaml.safe_load(out)["name"] == "mysql.writer"


def test_spec_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "components", "spec", "duckdb.processor", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["name"] == "duckdb.processor"
    assert list(doc)[:2] == ["name", "version"]  # the file's key order, not sorted
    assert doc["configSchema"]["required"] == ["query"]


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("mysql.extracter", "did you mean mysql.extractor?"),
        ("postgres.reader", "postgres.extractor"),
        ("supabase", "did you mean one of: supabase.extractor, supabase.writer?"),
        ("oracle.extractor", "unknown component 'oracle.extractor'"),
    ],
)
def test_unknown_spec_exits_2_with_did_you_mean(
    capsys: pytest.CaptureFixture[str], name: str, hint: str
) -> None:
    code, out, err = run(capsys, "components", "spec", name)
    assert code == 2
    assert out == ""
    assert f"unknown component '{name}'" in err
    assert hint in err


@pytest.fixture
def broken_root(tmp_path: Path) -> Path:
    root = tmp_path / "specs"
    shutil.copytree(
        Path(str(resources.files("osiris.specs"))), root, ignore=shutil.ignore_patterns("*.py")
    )
    spec = root / "components/mysql.writer/spec.yaml"
    spec.write_text(spec.read_text().replace("version: 1.0.0", "version: latest"))
    return root


def test_broken_spec_is_reported_by_list_and_spec(
    capsys: pytest.CaptureFixture[str], broken_root: Path
) -> None:
    code, out, err = run(capsys, "components", "--specs-root", str(broken_root), "list")
    assert code == 1
    assert "mysql.writer" not in _names_in_table(out)
    assert "components/mysql.writer/spec.yaml#/version" in err

    code, out, err = run(
        capsys, "components", "--specs-root", str(broken_root), "spec", "mysql.writer"
    )
    assert code == 1 and out == ""
    assert "the spec of component 'mysql.writer' failed to load" in err
    assert "'latest'" in err


def test_missing_specs_root_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "components", "--specs-root", str(tmp_path / "nope"), "list")
    assert code == 2 and out == ""
    assert "not a directory" in err


SCRIPT = """
import argparse, sys
from osiris.compiler.components_cmd import add_parser
parser = argparse.ArgumentParser(prog="osiris")
add_parser(parser.add_subparsers())
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["components", "spec", ""], 2),
        (["components", "spec", "../../etc/passwd"], 2),
        (["components", "spec", "mysql.extractor/../x"], 2),
        (["components", "spec", "ünïcødé.☃"], 2),
        (["components", "list", "--mode", "sideways"], 2),
        (["components", "spec", "mysql.extractor", "--format", "toml"], 2),
        (["components", "list", "--format", "json"], 0),
    ],
)
def test_no_traceback_for_any_input(argv: list[str], code: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "OSIRIS_CACHE_DIR": str(tmp_path / "cache"),
            "PYTHONIOENCODING": "utf-8",
            "TMPDIR": tempfile.gettempdir(),  # the session's, which must stay empty
        },
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("rest.extractor", {"path", "data_selector", "paginator", "incremental", "rate_limit"}),
        (
            "graphql.extractor",
            {"endpoint", "query", "pagination_enabled", "data_path", "auth_token"},
        ),
    ],
)
def test_api_extractors_are_listed_and_shown_with_their_fields(
    capsys: pytest.CaptureFixture[str], name: str, fields: set[str]
) -> None:
    code, out, _ = run(capsys, "components", "list", "--format", "json")
    assert code == 0
    (entry,) = [e for e in json.loads(out) if e["name"] == name]
    assert entry["connection_family"] == "http" and entry["modes"] == ["extract"]
    code, out, _ = run(capsys, "components", "spec", name, "--format", "json")
    assert code == 0
    schema = json.loads(out)["configSchema"]
    assert fields <= set(schema["properties"])
    if name == "rest.extractor":
        paginator = schema["properties"]["paginator"]["properties"]["type"]["enum"]
        assert paginator == [
            "cursor",
            "page_number",
            "offset",
            "json_link",
            "header_link",
            "single_page",
        ]
        assert set(schema["properties"]["incremental"]["properties"]) == {
            "cursor_path", "initial_value", "start_param", "lag",
        }  # fmt: skip
