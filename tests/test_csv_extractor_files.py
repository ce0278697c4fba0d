"""filesystem.csv_extractor on real files: bz2, zip and xz compression, upstream Osiris's
parse_dates / dtype / skip_blank_lines, and a base directory from a @filesystem connection."""

from __future__ import annotations

import bz2
import lzma
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oml_cases import extract, pipeline

from osiris.compiler.compile import compile_text
from osiris.compiler.connections import index_connections
from osiris.compiler.frontend import check_text
from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import SourceText

ROWS = "id,name\n1,a\n2,b\n"
TYPED = (
    "id,name,day,ts,amount\n"
    "1,a,2024-01-02,2024-01-02 10:00:00,1.5\n"
    "\n"  # skipped (skip_blank_lines: true, the only behaviour)
    "2,b,2024-01-03,2024-01-03 11:30:00,2.25\n"
)
CONNECTIONS = "connections:\n  filesystem:\n    lake: {base_dir: lake}\n"

# step id -> csv_extractor config; each is written to out/<id>.parquet by one run
EXTRACTS = {
    "bz2_auto": "{path: data/in.csv.bz2}",
    "xz_infer": "{path: data/in.csv.xz, compression: infer}",
    "zip_auto": "{path: data/in.zip}",
    "zip_named": "{path: data/packed.bin, compression: zip}",
    "bz2_named": "{path: data/bz.dat, compression: bz2}",
    "xz_named": "{path: data/xz.dat, compression: xz}",
    "glob_mixed": '{path: "data/in.csv.*"}',
    "dates_detected": "{path: data/typed.csv, parse_dates: true, skip_blank_lines: true}",
    "dates_listed": "{path: data/typed.csv, parse_dates: [day]}",
    "dates_off": "{path: data/typed.csv, parse_dates: false}",
    "dtypes": (
        "{path: data/typed.csv, dtype: {id: int32, amount: float32, name: object, day: str, "
        'ts: "datetime64[ns]"}}'
    ),
    "dtype_and_column_types": (
        "{path: data/typed.csv, dtype: {id: int16, amount: float64}, column_types: {id: VARCHAR}}"
    ),
    "from_lake": '{connection: "@filesystem.lake", path: in.csv}',
    "from_lake_glob": '{connection: "@filesystem.lake", path: "sub/*.csv"}',
}


def _project(root: Path) -> Path:
    data, lake = root / "data", root / "lake"
    (lake / "sub").mkdir(parents=True)
    data.mkdir()
    (data / "in.csv.bz2").write_bytes(bz2.compress(ROWS.encode()))
    (data / "bz.dat").write_bytes(bz2.compress(ROWS.encode()))
    (data / "in.csv.xz").write_bytes(lzma.compress(ROWS.encode()))
    (data / "xz.dat").write_bytes(lzma.compress(ROWS.encode()))
    for name in ("in.zip", "packed.bin"):
        with zipfile.ZipFile(data / name, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("in.csv", ROWS)
    (data / "typed.csv").write_text(TYPED)
    (lake / "in.csv").write_text("id,name\n7,lake\n")
    (lake / "sub" / "x.csv").write_text("id,name\n8,sub\n")
    (root / "osiris_connections.yaml").write_text(CONNECTIONS)
    steps = "".join(extract(config=config, step_id=step) for step, config in EXTRACTS.items())
    steps += "".join(
        textwrap.dedent(
            f"""\
            - id: out_{step}
              component: filesystem.parquet_writer
              mode: write
              needs: [{step}]
              config: {{path: out/{step}.parquet}}
            """
        )
        for step in EXTRACTS
    )
    (root / "pipeline.oml").write_text(pipeline(steps))
    return root


def osiris(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after one `osiris run` of every extract above."""
    project = _project(tmp_path_factory.mktemp("csv-files"))
    run = osiris("run", "pipeline.oml", cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    return project


def table(project: Path, step: str) -> pa.Table:
    return pq.read_table(project / "out" / f"{step}.parquet")


def types(project: Path, step: str) -> dict[str, Any]:
    return {f.name: f.type for f in table(project, step).schema}


@pytest.mark.parametrize(
    "step", ["bz2_auto", "xz_infer", "zip_auto", "zip_named", "bz2_named", "xz_named"]
)
def test_bz2_zip_and_xz_are_read(ran: Path, step: str) -> None:
    assert table(ran, step).to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_a_glob_over_compressed_files_reads_each(ran: Path) -> None:
    rows = table(ran, "glob_mixed").to_pylist()
    assert sorted(r["id"] for r in rows) == [1, 1, 2, 2]


def test_parse_dates(ran: Path) -> None:
    detected = types(ran, "dates_detected")
    assert detected["day"] == pa.date32() and detected["ts"] == pa.timestamp("us")
    listed = types(ran, "dates_listed")
    assert listed["day"] == pa.timestamp("us") and listed["ts"] == pa.timestamp("us")
    off = table(ran, "dates_off")
    assert off.schema.field("day").type == pa.string()
    assert off.schema.field("ts").type == pa.string()
    assert off.column("day").to_pylist() == ["2024-01-02", "2024-01-03"]  # the blank line skipped
    assert off.schema.field("amount").type == pa.float64()


def test_dtype_names_become_sql_types(ran: Path) -> None:
    found = types(ran, "dtypes")
    assert found == {
        "id": pa.int32(),
        "name": pa.string(),
        "day": pa.string(),
        "ts": pa.timestamp("us"),
        "amount": pa.float32(),
    }
    assert table(ran, "dtypes").column("amount").to_pylist() == [1.5, 2.25]


def test_column_types_win_over_dtype(ran: Path) -> None:
    found = types(ran, "dtype_and_column_types")
    assert found["id"] == pa.string() and found["amount"] == pa.float64()


def test_relative_paths_resolve_against_the_connections_base_dir(ran: Path) -> None:
    assert table(ran, "from_lake").to_pylist() == [{"id": 7, "name": "lake"}]
    assert table(ran, "from_lake_glob").to_pylist() == [{"id": 8, "name": "sub"}]


def test_decompressed_copies_do_not_outlive_the_run(ran: Path) -> None:
    leftovers = [p for p in ran.rglob("*") if p.name.startswith("csv-") or p.suffix == ".part"]
    assert leftovers == []


def test_a_base_dir_from_a_variable_and_an_absolute_path(tmp_path: Path) -> None:
    lake = tmp_path / "elsewhere"
    lake.mkdir()
    (lake / "in.csv").write_text("id\n5\n")
    absolute = tmp_path / "abs.csv"
    absolute.write_text("id\n6\n")
    (tmp_path / "osiris_connections.yaml").write_text(
        "connections:\n  filesystem:\n    lake: {base_dir: '${LAKE_DIR}'}\n"
    )
    steps = extract(config='{connection: "@filesystem.lake", path: in.csv}', step_id="a")
    steps += extract(config=f'{{connection: "@filesystem.lake", path: "{absolute}"}}', step_id="b")
    steps += (
        "- {id: j, component: duckdb.processor, mode: transform, needs: [a, b], "
        "config: {query: 'SELECT * FROM a UNION ALL SELECT * FROM b ORDER BY id'}}\n"
        "- {id: w, component: filesystem.csv_writer, mode: write, needs: [j], "
        "config: {path: o.csv}}\n"
    )
    (tmp_path / "pipeline.oml").write_text(pipeline(steps))
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())",
            "run",
            "pipeline.oml",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**__import__("os").environ, "LAKE_DIR": str(lake)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "o.csv").read_text() == "id\n5\n6\n"


def test_a_zip_of_two_files_is_a_clear_run_error(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a.csv", ROWS)
        archive.writestr("b.csv", ROWS)
    steps = extract(config="{path: two.zip}") + (
        "- {id: w, component: filesystem.csv_writer, mode: write, needs: [src], "
        "config: {path: o.csv}}\n"
    )
    (tmp_path / "pipeline.oml").write_text(pipeline(steps))
    run = osiris("run", "pipeline.oml", cwd=tmp_path)
    assert run.returncode == 4
    assert "holds 2 files" in run.stdout + run.stderr and "Traceback" not in run.stderr


# -- check time --------------------------------------------------------------------------------


def _index(text: str = CONNECTIONS) -> Any:
    index = index_connections(SourceText("osiris_connections.yaml", text), DiagnosticList())
    assert index is not None
    return index


def test_unknown_dtype_is_a_check_error_with_did_you_mean() -> None:
    text = pipeline(extract(config="{path: x.csv, dtype: {id: int46, ok: float64}}"))
    (d,) = check_text(text, "p.oml").diagnostics
    assert d.code == "OML140" and "'int46'" in d.summary and "'int64'" in d.why
    assert d.span is not None and text.encode()[d.span.start.byte : d.span.end.byte] == b"int46"
    assert [s.replacement for s in d.suggestions][:1] == ['"int64"']


def test_skip_blank_lines_false_is_a_check_error() -> None:
    text = pipeline(extract(config="{path: x.csv, skip_blank_lines: false}"))
    (d,) = check_text(text, "p.oml").diagnostics
    assert d.code == "OML021" and "skip_blank_lines: false is not supported" in d.summary


def test_no_upstream_warning_for_honoured_fields() -> None:
    text = pipeline(
        extract(
            config="{path: x.csv, parse_dates: [d], dtype: {id: int64}, skip_blank_lines: true}"
        )
    )
    assert not check_text(text, "p.oml").diagnostics


def test_filesystem_connection_alias_must_exist() -> None:
    text = pipeline(extract(config='{connection: "@filesystem.laek", path: in.csv}'))
    found = check_text(text, "p.oml", connections=_index()).diagnostics
    assert [d.code for d in found] == ["OML027"]
    assert "lake" in found[0].why + found[0].fix + str(found[0].suggestions)
    ok = pipeline(extract(config='{connection: "@filesystem.lake", path: in.csv}'))
    assert not check_text(ok, "p.oml", connections=_index()).diagnostics


def test_only_base_dir_is_pinned_by_a_filesystem_connection() -> None:
    text = pipeline(
        extract(config='{connection: "@filesystem", path: in.csv, delimiter: ";", header: true}')
    )
    assert not check_text(text, "p.oml", connections=_index()).diagnostics


def test_a_mysql_reference_is_the_wrong_family() -> None:
    text = pipeline(extract(config='{connection: "@mysql.shop", path: in.csv}'))
    assert "OML026" in {d.code for d in check_text(text, "p.oml").diagnostics}


def test_the_manifest_keeps_the_reference() -> None:
    text = pipeline(extract(config='{connection: "@filesystem.lake", path: in.csv}'))
    result = compile_text(text, "p.oml")
    assert result.emitted is not None, [(d.code, d.summary) for d in result.diagnostics]
    (node,) = result.emitted.manifest["steps"]
    assert node["connection"] == "@filesystem.lake"
