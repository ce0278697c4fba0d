"""Params, lowering and the emitter: precedence, typing, defaults, symbolic connections, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from oml_cases import CSV_TO_CSV, extract, mysql_writer, pipeline

from osiris.compiler.compile import OutputRefused, compile_text, write_output
from osiris.runtime.contract.manifest import manifest_digest

PARAMS = (
    "params:\n  n: {type: integer, default: 500}\n  day: {type: string}\n  rate: {type: number}\n"
)
WITH_PARAMS = PARAMS + pipeline(
    extract(config='{path: "data/${params.day}/in.csv", batch_size: "${params.n}"}')
    + "- {id: p, component: duckdb.processor, mode: transform, needs: [src], "
    "config: {query: 'SELECT * FROM src LIMIT ${params.rate}'}}\n"
)

# (case id, text, --param values, profile, environment, expected compile-stage codes)
COMPILE_CASES = [
    ("no-value", WITH_PARAMS, ["rate=1"], None, {}, {"OML060"}),
    ("wrong-type", WITH_PARAMS, ["day=d", "rate=1", "n=many"], None, {}, {"OML061"}),
    ("unknown-param", WITH_PARAMS, ["day=d", "rate=1", "nn=3"], None, {}, {"OML062"}),
    ("unknown-profile", WITH_PARAMS, ["day=d", "rate=1"], "prod", {}, {"OML063"}),
    ("malformed-param", WITH_PARAMS, ["day"], None, {}, {"OML064"}),
    (
        "invalid-after-params",
        "params:\n  size: {type: number}\n"
        + pipeline(extract(config='{path: x, batch_size: "${params.size}"}')),
        ["size=2.5"],
        None,
        {},
        {"OML065"},
    ),
    (
        "nul-in-sql-param",
        "params:\n  v: {type: string}\n"
        + pipeline(
            "- {id: src, component: mysql.extractor, mode: read, config: "
            """{connection: "@mysql.shop", query: "SELECT '${params.v}'"}}\n"""
        ),
        ["v=a\x00b"],
        None,
        {},
        {"OML112"},
    ),
    (
        "partition-count-after-params",
        "params:\n  n: {type: integer}\n"
        + pipeline(
            "- {id: src, component: mysql.extractor, mode: read, config: "
            '{connection: "@mysql.shop", table: orders}, partition: {column: id, count: "${params.n}"}}\n'
        ),
        ["n=0"],
        None,
        {},
        {"OML171"},
    ),
]


def config_of(result, step: str) -> dict:
    return json.loads(result.emitted.files[f"cfg/{step}.json"])


@pytest.mark.parametrize(
    ("case", "text", "params", "profile", "env", "expected"),
    COMPILE_CASES,
    ids=[c[0] for c in COMPILE_CASES],
)
def test_compile_errors_exit_3(case, text, params, profile, env, expected) -> None:
    result = compile_text(text, "p.oml", params=params, profile=profile, environ=env)
    assert result.exit_code == 3
    assert expected <= {d.code for d in result.diagnostics}
    assert result.emitted is None


def test_invalid_oml_exits_2_without_compiling() -> None:
    result = compile_text(CSV_TO_CSV.replace("needs: [src]", "needs: [x]"), "p.oml")
    assert result.exit_code == 2 and result.ir is None


def test_param_precedence_default_profile_env_cli() -> None:
    text = (
        "params:\n  n: {type: integer, default: 1}\n"
        "profiles:\n  big: {params: {n: 2}}\n"
        + pipeline(extract(config='{path: x, batch_size: "${params.n}"}'))
    )

    def n(**kw) -> int:
        result = compile_text(text, "p.oml", **kw)
        assert result.exit_code == 0, result.diagnostics
        assert result.emitted.manifest["params"]["n"] == config_of(result, "src")["batch_size"]
        return config_of(result, "src")["batch_size"]

    assert n(environ={}) == 1
    assert n(profile="big", environ={}) == 2
    assert n(profile="big", environ={"OSIRIS_PARAM_N": "3"}) == 3
    assert n(profile="big", environ={"OSIRIS_PARAM_N": "3"}, params=["n=4"]) == 4


def test_whole_scalar_keeps_type_and_interpolation_makes_text() -> None:
    result = compile_text(WITH_PARAMS, "p.oml", params=["day=2024-06-01", "rate=0.5"], environ={})
    assert result.exit_code == 0, result.diagnostics
    src = config_of(result, "src")
    assert src["batch_size"] == 500 and isinstance(src["batch_size"], int)
    assert src["path"] == "data/2024-06-01/in.csv"
    assert config_of(result, "p")["query"] == "SELECT * FROM src LIMIT 0.5"


def test_escaped_dollar_becomes_literal() -> None:
    result = compile_text(pipeline(extract(config='{path: "a/$${b}.csv"}')), "p.oml", environ={})
    assert config_of(result, "src")["path"] == "a/${b}.csv"


def test_spec_defaults_explicit_but_not_for_connection_fields() -> None:
    text = pipeline(extract() + mysql_writer('{connection: "@mysql.shop", table: t}'))
    result = compile_text(text, "p.oml", environ={})
    load = config_of(result, "load")
    assert load["write_mode"] == "append" and load["create_if_missing"] is True
    assert "host" not in load and "port" not in load and "password" not in load
    assert load["connection"] == "@mysql.shop"
    step = result.emitted.manifest["steps"][1]
    assert step["connection"] == "@mysql.shop" and step["mode"] == "write"


def test_read_and_extract_mode_compile_identically() -> None:
    a = compile_text(CSV_TO_CSV, "p.oml", environ={})
    b = compile_text(CSV_TO_CSV.replace("mode: read", "mode: extract"), "p.oml", environ={})
    assert a.emitted.files == b.emitted.files


def test_topological_order_ignores_list_order_and_breaks_ties_by_source() -> None:
    text = pipeline(
        "- {id: out, component: filesystem.csv_writer, mode: write, needs: [p], config: {path: o.csv}}\n"
        "- {id: p, component: duckdb.processor, mode: transform, needs: [b, a], config: {query: 'SELECT * FROM a, b'}}\n"
        + extract(step_id="b")
        + extract(step_id="a")
    )
    result = compile_text(text, "p.oml", environ={})
    assert result.exit_code == 0, result.diagnostics
    order = [s["id"] for s in result.emitted.manifest["steps"]]
    assert order == ["b", "a", "p", "out"]
    assert result.emitted.manifest["steps"][2]["needs"] == ["b", "a"]


def test_manifest_fingerprint_covers_body() -> None:
    result = compile_text(CSV_TO_CSV, "p.oml", environ={})
    manifest = result.emitted.manifest
    assert manifest["fingerprints"]["manifest"] == manifest_digest(manifest)
    assert all(v.startswith("sha256:") and len(v) == 71 for v in manifest["fingerprints"].values())


def test_write_output_is_atomic_and_refuses_foreign_dirs(tmp_path: Path) -> None:
    result = compile_text(CSV_TO_CSV, "p.oml", environ={})
    out = tmp_path / "build"
    write_output(result.emitted, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "cfg/out.json",
        "cfg/src.json",
        "manifest.yaml",
    ]
    (out / "cfg" / "stale.json").write_text("{}")
    write_output(result.emitted, out)  # a recompile replaces the whole directory
    assert not (out / "cfg" / "stale.json").exists()
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputRefused):
        write_output(result.emitted, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pure_and_c_yaml_emitters_agree() -> None:
    import yaml

    from osiris.runtime.contract.manifest import manifest_bytes

    manifest = compile_text(CSV_TO_CSV, "p.oml", environ={}).emitted.manifest
    manifest["pipeline"]["description"] = "ünïcode ☕ 'quotes' \"double\" : colon # hash\nnew line"
    pure = yaml.dump(
        manifest,
        Dumper=yaml.SafeDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
        indent=2,
        line_break="\n",
    )
    assert manifest_bytes(manifest) == pure.encode()


def test_partition_is_lowered_into_the_ir_and_the_manifest_only_when_given() -> None:
    step = (
        "- {id: src, component: mysql.extractor, mode: read, config: "
        '{connection: "@mysql.shop", table: orders}PARTITION}\n'
        "- {id: out, component: filesystem.csv_writer, mode: write, needs: [src], "
        "config: {path: o.csv}}\n"
    )
    head = "params:\n  n: {type: integer, default: 6}\n"
    given = ', partition: {column: id, count: "${params.n}", lower: 1, upper: 900}'
    with_it = compile_text(head + pipeline(step.replace("PARTITION", given)), "p.oml")
    plain = compile_text(pipeline(step.replace("PARTITION", "")), "p.oml")
    assert with_it.exit_code == 0 and plain.exit_code == 0, with_it.diagnostics
    expected = {"column": "id", "count": 6, "lower": 1, "upper": 900}
    assert with_it.ir.nodes["src"].partition == expected
    assert with_it.ir.to_dict()["steps"][0]["partition"] == expected
    assert with_it.emitted.manifest["steps"][0]["partition"] == expected
    assert b"partition:" in with_it.emitted.manifest_yaml
    assert "partition" not in plain.ir.to_dict()["steps"][0]
    assert b"partition" not in plain.emitted.manifest_yaml
    # the partition is part of the pipeline's meaning: another count is another fingerprint
    other = compile_text(
        head.replace("default: 6", "default: 3") + pipeline(step.replace("PARTITION", given)),
        "p.oml",
    )
    assert (
        other.emitted.manifest["fingerprints"]["oml"]
        != with_it.emitted.manifest["fingerprints"]["oml"]
    )


@pytest.mark.parametrize(
    ("writer", "warned"),
    [("filesystem.parquet_writer", False), ("filesystem.csv_writer", True)],
)
def test_partition_into_a_file_writer_warns_only_when_it_cannot_stage(
    writer: str, warned: bool
) -> None:
    """OML175: the Parquet writer stages partitions (one file each); the CSV writer does not."""
    text = pipeline(
        "- {id: src, component: mysql.extractor, mode: read, config: "
        '{connection: "@mysql.shop", table: orders}, partition: {column: id, count: 4}}\n'
        f"- {{id: out, component: {writer}, mode: write, needs: [src], config: {{path: o.out}}}}\n"
    )
    result = compile_text(text, "p.oml")
    assert result.exit_code == 0, result.diagnostics
    assert ("OML175" in {d.code for d in result.diagnostics}) is warned


def test_parquet_dataset_layout_with_partition_by_is_a_check_error() -> None:
    text = pipeline(
        "- {id: src, component: filesystem.csv_extractor, mode: read, config: {path: a.csv}}\n"
        "- {id: out, component: filesystem.parquet_writer, mode: write, needs: [src], "
        "config: {path: lake/o, layout: dataset, partition_by: [day]}}\n"
    )
    result = compile_text(text, "p.oml")
    assert result.exit_code != 0
    (found,) = [d for d in result.diagnostics if d.code == "OML021"]
    assert "layout dataset cannot be combined with partition_by" in found.summary
    fine = compile_text(text.replace("layout: dataset, ", ""), "p.oml")
    assert fine.exit_code == 0, fine.diagnostics
