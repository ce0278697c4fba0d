"""Determinism of the compiler output and of the -o directory handling.

- Byte-identical output across processes with different PYTHONHASHSEED values, working
  directories, input paths (relative, absolute, a renamed copy elsewhere) and registry caches.
- Byte-identical output when the source's mapping keys are permuted (hypothesis).
- Fingerprints move exactly when they should: params -> params (+oml, manifest); spec change ->
  specs (+manifest); comments / formatting / quoting / key order -> nothing at all.
- A failed compile leaves an existing -o DIR untouched; -o refuses a non-empty directory that
  holds no manifest.yaml.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import CANARY_VALUE, CANARY_VAR, check_compiled

from osiris.compiler.compile import compile_checked, compile_text
from osiris.compiler.frontend import check_text
from osiris.compiler.registry import load_registry
from osiris.oml.format import format_text

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "golden"
OMLC = [
    sys.executable,
    "-c",
    "import sys; from osiris.compiler.cli import omlc_main; sys.exit(omlc_main())",
]
FINGERPRINTS = ("oml", "specs", "params", "toolchain", "manifest")

# cases whose args.json exercises params, profiles and the environment
DET_CASES = ("postgres_marts_fanout", "lake_fanin_partitioned", "typed_params_env")


def case_args(case: str) -> dict[str, Any]:
    path = GOLDEN / case / "args.json"
    return yaml.safe_load(path.read_text("utf-8")) if path.exists() else {}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSIRIS_", "PYTHONHASHSEED"))}
    env[CANARY_VAR] = CANARY_VALUE
    env.update(extra)
    return env


def read_tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def snapshot_tree(path: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and directory below path with its bytes and mtime (to prove nothing changed)."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        out[rel] = (p.read_bytes() if p.is_file() else b"<dir>", p.stat().st_mtime_ns)
    return out


def omlc(
    args: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*OMLC, *args], cwd=cwd, env=dict(env), capture_output=True, check=False, timeout=120
    )


def compile_args(case: str) -> tuple[list[str], dict[str, str]]:
    args = case_args(case)
    flags: list[str] = []
    for p in args.get("params", []):
        flags += ["--param", p]
    if args.get("profile"):
        flags += ["--profile", args["profile"]]
    return flags, dict(args.get("environ", {}))


def compile_case_in_process(case: str, text: str | None = None, **overrides: Any) -> Any:
    args = case_args(case)
    source = text if text is not None else (GOLDEN / case / "pipeline.oml").read_text("utf-8")
    kwargs: dict[str, Any] = {
        "params": args.get("params", []),
        "profile": args.get("profile"),
        "environ": {CANARY_VAR: CANARY_VALUE, **args.get("environ", {})},
    }
    kwargs.update(overrides)
    return compile_text(source, f"golden/{case}/pipeline.oml", **kwargs)


# -- across processes, hash seeds, directories and paths --------------------------------------


@pytest.mark.parametrize("case", DET_CASES)
def test_byte_identical_across_processes_and_paths(case: str, tmp_path: Path) -> None:
    flags, environ = compile_args(case)
    rel_source = f"golden/{case}/pipeline.oml"
    copy_dir = tmp_path / "elsewhere" / "deep" / "dir"
    copy_dir.mkdir(parents=True)
    shutil.copy(GOLDEN / case / "pipeline.oml", copy_dir / "renamed.oml")
    (tmp_path / "cwd-a").mkdir()
    (tmp_path / "cwd-b").mkdir()
    variants = [
        # (hash seed, cwd, source path, output dir, extra env)
        ("0", ROOT, rel_source, str(tmp_path / "out0"), {}),
        ("1", tmp_path / "cwd-a", str(ROOT / rel_source), "build", {}),
        ("4242", tmp_path / "elsewhere", "deep/dir/renamed.oml", "../out2", {}),
        ("random", tmp_path / "cwd-b", "../elsewhere/deep/dir/renamed.oml", "o/u/t", {}),
        ("123", tmp_path / "cwd-a", str(copy_dir / "renamed.oml"), "cold", {}),
    ]
    extra_env = [
        {"OSIRIS_CACHE_DIR": str(tmp_path / "cache-cold")},
        {"OSIRIS_CACHE_DIR": ""},  # registry cache off
        {},
        {"OSIRIS_CACHE_DIR": str(tmp_path / "cache-cold")},  # warm by now (or racing: fine)
        {"OSIRIS_CACHE_DIR": str(tmp_path / "cache-other"), "LC_ALL": "C", "TZ": "Asia/Tokyo"},
    ]

    def run(i: int) -> dict[str, bytes]:
        seed, cwd, source, out, _ = variants[i]
        env = clean_env(PYTHONHASHSEED=seed, **environ, **extra_env[i])
        proc = omlc([source, "-o", out, *flags], cwd, env)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        return read_tree(cwd / out)

    with ThreadPoolExecutor(max_workers=len(variants)) as pool:
        trees = list(pool.map(run, range(len(variants))))
    assert trees[0], "nothing was written"
    for i, tree in enumerate(trees[1:], 1):
        assert tree == trees[0], f"variant {variants[i][:3]} differs from {variants[0][:3]}"
    # ... and equal to the reviewed golden files
    golden = read_tree(GOLDEN / case)
    assert {k: v for k, v in golden.items() if k in trees[0]} == trees[0]
    check_compiled(trees[0], source=(GOLDEN / case / "pipeline.oml").read_text("utf-8"))


def test_in_process_repeat_is_identical() -> None:
    """Compiling twice in one process (warm caches) gives the same bytes as the first time."""
    for case in DET_CASES:
        first = compile_case_in_process(case).emitted.files
        second = compile_case_in_process(case).emitted.files
        assert first == second


# -- permuted mapping keys ----------------------------------------------------------------------


def _rt_yaml() -> Any:
    from ruamel.yaml import YAML

    rt = YAML(typ="rt", pure=True)
    rt.preserve_quotes = True
    rt.width = 4096
    return rt


def _permute(mapping: Any, order: Sequence[int]) -> None:
    keys = list(mapping.keys())
    for i in order:
        mapping.move_to_end(keys[i])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_permuted_keys_compile_identically(data: st.DataObject) -> None:
    case = data.draw(st.sampled_from(DET_CASES), label="case")
    text = (GOLDEN / case / "pipeline.oml").read_text("utf-8")
    baseline = compile_case_in_process(case).emitted.files
    rt = _rt_yaml()
    doc = rt.load(text)

    def shuffle(mapping: Any, label: str) -> None:
        if mapping is None or not hasattr(mapping, "move_to_end") or len(mapping) < 2:
            return
        order = data.draw(st.permutations(range(len(mapping))), label=label)
        _permute(mapping, order)

    shuffle(doc, "top-level")
    shuffle(doc.get("params"), "params")
    for name, param in (doc.get("params") or {}).items():
        shuffle(param, f"param {name}")
    for name, profile in (doc.get("profiles") or {}).items():
        shuffle(profile, f"profile {name}")
        shuffle(profile.get("params") if hasattr(profile, "get") else None, f"{name} params")
    for step in doc["steps"]:
        shuffle(step, f"step {step['id']}")
        shuffle(step.get("config"), f"config {step['id']}")
        shuffle(step.get("inputs"), f"inputs {step['id']}")
    out = io.StringIO()
    rt.dump(doc, out)
    permuted = out.getvalue()
    result = compile_case_in_process(case, permuted)
    assert result.exit_code == 0, [d.summary for d in result.diagnostics]
    assert result.emitted.files == baseline


# -- fingerprints move exactly when they should -------------------------------------------------


def fingerprints(result: Any) -> dict[str, str]:
    assert result.exit_code == 0, [d.summary for d in result.diagnostics]
    return dict(result.emitted.manifest["fingerprints"])


def changed(a: Mapping[str, str], b: Mapping[str, str]) -> set[str]:
    return {k for k in FINGERPRINTS if a[k] != b[k]}


def test_param_change_moves_params_fingerprint() -> None:
    base = fingerprints(compile_case_in_process("postgres_marts_fanout"))
    args = case_args("postgres_marts_fanout")
    other = compile_case_in_process(
        "postgres_marts_fanout", params=[*args["params"], "month_start=2024-04-01"]
    )
    # the param is used in a config, so the OML after params changes as well
    assert changed(base, fingerprints(other)) == {"params", "oml", "manifest"}
    # the same value from a different source (env instead of --param) changes nothing
    same = compile_case_in_process(
        "postgres_marts_fanout",
        params=[],
        environ={
            "OSIRIS_PARAM_CHURN_DAYS": "45",
            "OSIRIS_PARAM_MONTH_START": "2024-03-01",
        },
    )
    assert changed(base, fingerprints(same)) == set()
    # a profile that sets different values
    dev = compile_case_in_process("postgres_marts_fanout", profile="dev", params=[], environ={})
    assert {"params", "oml", "manifest"} <= changed(base, fingerprints(dev))
    assert "specs" not in changed(base, fingerprints(dev))
    assert "toolchain" not in changed(base, fingerprints(dev))


def _registry_copy(tmp_path: Path, edit: str | None, old: str = "", new: str = "") -> Any:
    root = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", root, ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        spec = root / "components" / edit / "spec.yaml"
        text = spec.read_text("utf-8")
        assert old in text
        spec.write_text(text.replace(old, new, 1), "utf-8")
    return load_registry(root)


def _compile_with(registry: Any, case: str) -> Any:
    args = case_args(case)
    text = (GOLDEN / case / "pipeline.oml").read_text("utf-8")
    checked = check_text(text, f"golden/{case}/pipeline.oml", registry=registry)
    return compile_checked(
        checked,
        params=args.get("params", []),
        profile=args.get("profile"),
        environ=args.get("environ", {}),
    )


def test_spec_change_moves_specs_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSIRIS_CACHE_DIR", str(tmp_path / "cache"))
    case = "lake_fanin_partitioned"  # uses duckdb.processor, not mysql.writer
    base = fingerprints(_compile_with(_registry_copy(tmp_path / "a", None), case))
    assert base == fingerprints(compile_case_in_process(case))
    used = _registry_copy(
        tmp_path / "b", "duckdb.processor", "title: DuckDB SQL transform", "title: DuckDB SQL step"
    )
    assert changed(base, fingerprints(_compile_with(used, case))) == {"specs", "manifest"}
    unused = _registry_copy(
        tmp_path / "c", "mysql.writer", "title: MySQL / MariaDB writer", "title: MySQL writer"
    )
    assert changed(base, fingerprints(_compile_with(unused, case))) == set()


FORMATTED_A = """\
# Orders, the long way round.
oml_version: "0.1.0"
name: orders-daily   # the pipeline's name
params:
  since:
    type: string
    default: "2024-01-01"
  batch: {type: integer, default: 1000}
steps:
  # first the extract
  - id: extract-orders
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.shop"
      table: orders
      where: "created_at >= '${params.since}'"
      batch_size: ${params.batch}
  - id: daily
    component: duckdb.processor
    mode: transform
    needs: [extract-orders]
    config:
      query: >-
        SELECT date_trunc('day', created_at) AS day, sum(amount) AS total
        FROM "extract-orders" GROUP BY 1
  - id: save
    component: filesystem.parquet_writer
    mode: write
    inputs:
      df: "${daily.df}"
    config:
      path: out/daily.parquet
"""

FORMATTED_B = """\
steps:
- {id: extract-orders, mode: read, component: 'mysql.extractor', config: {batch_size: "${params.batch}", where: 'created_at >= ''${params.since}''', table: "orders", connection: '@mysql.shop'}}
- config: {query: "SELECT date_trunc('day', created_at) AS day, sum(amount) AS total FROM \\"extract-orders\\" GROUP BY 1"}
  needs:
    - extract-orders
  mode: transform
  component: duckdb.processor
  id: daily
- id: save
  inputs: {df: '${daily.df}'}
  component: filesystem.parquet_writer
  mode: write
  config: {path: "out/daily.parquet"}


params: {batch: {default: 1000, type: integer}, since: {default: '2024-01-01', type: string}}
name: 'orders-daily'
oml_version: '0.1.0'
"""


def test_formatting_and_comments_change_no_fingerprint() -> None:
    results = {
        "block, comments": compile_text(FORMATTED_A, "a.oml"),
        "flow, other quoting and order": compile_text(FORMATTED_B, "elsewhere/b.oml"),
        "omlc fmt": compile_text(format_text(FORMATTED_B)[0] or "", "c.oml"),
        "CRLF line ends": compile_text(FORMATTED_A.replace("\n", "\r\n"), "d.oml"),
    }
    base = results.pop("block, comments")
    assert base.exit_code == 0, [d.summary for d in base.diagnostics]
    for label, result in results.items():
        assert result.exit_code == 0, (label, [d.summary for d in result.diagnostics])
        assert changed(fingerprints(base), fingerprints(result)) == set(), label
        assert result.emitted.files == base.emitted.files, label


def test_quoted_whole_param_reference_keeps_type() -> None:
    """`batch_size: "${params.batch}"` and `batch_size: ${params.batch}` mean the same."""
    plain = compile_text(FORMATTED_A, "a.oml")
    quoted = compile_text(
        FORMATTED_A.replace("batch_size: ${params.batch}", 'batch_size: "${params.batch}"'),
        "a.oml",
    )
    assert plain.emitted is not None and quoted.emitted is not None
    assert quoted.emitted.files == plain.emitted.files


# -- the -o directory -------------------------------------------------------------------------


def test_failed_compile_leaves_output_dir_untouched(tmp_path: Path) -> None:
    env = clean_env()
    out = tmp_path / "build"
    ok = omlc([str(GOLDEN / "csv_duckdb_parquet" / "pipeline.oml"), "-o", str(out)], tmp_path, env)
    assert ok.returncode == 0, ok.stderr.decode()
    (out / "notes.txt").write_text("a file someone put here\n")
    before = snapshot_tree(tmp_path)

    invalid = omlc(
        [str(GOLDEN / "invalid_processor_sql" / "pipeline.oml"), "-o", str(out)], tmp_path, env
    )
    assert invalid.returncode == 2
    compile_error = omlc(
        [str(GOLDEN / "compile_param_missing_value" / "pipeline.oml"), "-o", str(out)],
        tmp_path,
        env,
    )
    assert compile_error.returncode == 3
    bad_param = omlc(
        [str(GOLDEN / "csv_duckdb_parquet" / "pipeline.oml"), "-o", str(out), "--param", "x=1"],
        tmp_path,
        env,
    )
    assert bad_param.returncode == 3
    assert snapshot_tree(tmp_path) == before, "a failed compile touched the output directory"


def test_output_dir_replaced_atomically_on_success(tmp_path: Path) -> None:
    env = clean_env()
    out = tmp_path / "build"
    first = omlc([str(GOLDEN / "mysql_to_csv_tables" / "pipeline.oml"), "-o", str(out)], ROOT, env)
    assert first.returncode == 0
    second = omlc([str(GOLDEN / "csv_duckdb_parquet" / "pipeline.oml"), "-o", str(out)], ROOT, env)
    assert second.returncode == 0
    expected = {
        k: v
        for k, v in read_tree(GOLDEN / "csv_duckdb_parquet").items()
        if k == "manifest.yaml" or k.startswith("cfg/")
    }
    assert read_tree(out) == expected, "old cfg files survived the replace"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"], "staging left behind"


def test_output_refuses_foreign_directory(tmp_path: Path) -> None:
    env = clean_env()
    source = str(GOLDEN / "csv_duckdb_parquet" / "pipeline.oml")
    foreign = tmp_path / "my-documents"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("do not delete\n")
    (foreign / "sub").mkdir()
    before = snapshot_tree(tmp_path)
    proc = omlc([source, "-o", str(foreign)], tmp_path, env)
    assert proc.returncode == 2
    assert b"refusing" in proc.stderr
    assert snapshot_tree(tmp_path) == before

    a_file = tmp_path / "plain-file"
    a_file.write_text("x")
    proc = omlc([source, "-o", str(a_file)], tmp_path, env)
    assert proc.returncode == 2
    assert a_file.read_text() == "x"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert omlc([source, "-o", str(empty)], tmp_path, env).returncode == 0
    assert (empty / "manifest.yaml").is_file()


def test_compile_with_broken_connections_file_fails(tmp_path: Path) -> None:
    """BUG (reported to the lead): `omlc FILE -o DIR --connections BROKEN` prints error[OML040]
    and 'Invalid: 1 error.' yet exits 0 and writes DIR; `omlc check` exits 2 on the same input."""
    broken = tmp_path / "osiris_connections.yaml"
    broken.write_text("connections:\n  - mysql\n", encoding="utf-8")
    out = tmp_path / "build"
    source = str(GOLDEN / "mysql_duckdb_supabase" / "pipeline.oml")
    proc = omlc([source, "-o", str(out), "--connections", str(broken)], tmp_path, clean_env())
    assert b"OML040" in proc.stdout + proc.stderr
    assert proc.returncode != 0, "an error diagnostic was printed, but the compile exited 0"
    assert not out.exists()
