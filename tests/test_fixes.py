"""Safe fixes: which repairs apply unasked, the fixpoint loop, `omlc check --fix/--diff`, fix-all."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from lsprotocol import types
from test_cli import omlc

from osiris.compiler.fixes import fix_text
from osiris.compiler.frontend import check_text
from osiris.compiler.lsp import features
from osiris.compiler.lsp.state import DocumentState
from osiris.oml.suggest import edit_distance

HEAD = 'oml_version: "0.1.0"\nname: fixes\nsteps:\n'
EXTRACT = """  - id: src
    component: filesystem.csv_extractor
    mode: read
    config: {path: in.csv}
"""
WRITE = """  - id: out
    component: filesystem.csv_writer
    mode: write
    needs: [src]
    config: {path: out.csv}
"""
CLEAN = HEAD + EXTRACT + WRITE


def fixed(text: str) -> tuple[str, list[str], bool]:
    """(text after safe fixes, codes fixed, still valid)."""
    outcome = fix_text(text, partial(check_text, file="p.oml"))
    return outcome.text, [f.code for f in outcome.applied], outcome.result.ok


def test_clean_pipeline_is_left_alone() -> None:
    assert fixed(CLEAN) == (CLEAN, [], True)


@pytest.mark.parametrize(
    ("broken", "code"),
    [
        (CLEAN.replace("oml_version", "version"), "OML005"),
        (CLEAN.replace("needs:", "depends_on:"), "OML005"),
        (CLEAN.replace("needs:", "depends-on:"), "OML005"),
        (CLEAN.replace("needs:", "dependsOn:"), "OML005"),
        (
            CLEAN.replace("component: filesystem.csv_writer", "type: filesystem.csv_writer"),
            "OML005",
        ),
        (CLEAN.replace("csv_extractor", "csv_extractr"), "OML014"),
        (CLEAN.replace("{path: out.csv}", "{path: out.csv, delimter: ';'}"), "OML017"),
        (CLEAN.replace("{path: out.csv}", "{path: out.csv, quoting: minimla}"), "OML019"),
        (
            CLEAN.replace("  - id: out", "  - id: out\n    nedes: [src]").replace(
                "    needs: [src]\n", ""
            ),
            "OML010",
        ),
    ],
)
def test_each_safe_repair_gives_a_valid_pipeline(broken: str, code: str) -> None:
    text, codes, ok = fixed(broken)
    assert codes == [code]
    assert ok, text
    assert "delimter" not in text and "minimla" not in text


def test_unquoted_ref_is_quoted_then_the_rest_is_fixed_in_later_rounds() -> None:
    pipeline = (
        HEAD
        + """  - id: src
    componnt: mysql.extractor
    mode: read
    config:
      connection: @mysql.shop
      table: orders
"""
        + WRITE
    )
    text, codes, ok = fixed(pipeline)
    assert codes == ["OML001", "OML010"]  # the YAML error hid the key typo until it was fixed
    assert 'connection: "@mysql.shop"' in text and "component: mysql.extractor" in text
    assert ok


def test_processor_sql_and_upstream_writer_names() -> None:
    pipeline = (
        HEAD
        + EXTRACT
        + """  - id: agg
    component: duckdb.processor
    mode: transform
    needs: [src]
    config: {sql: "SELECT 1 AS id FROM src"}
  - id: load
    component: mysql.writer
    mode: write
    needs: [agg]
    config:
      connection: "@mysql.shop"
      table: t
      mode: upsert
      upsert_keys: [id]
      create_table: true
"""
    )
    text, codes, ok = fixed(pipeline)
    assert sorted(codes) == ["OML017", "OML130", "OML130", "OML130"]
    assert 'query: "SELECT 1' in text
    assert "write_mode: upsert" in text and "primary_key: [id]" in text
    assert "create_if_missing: true" in text
    assert ok


@pytest.mark.parametrize(
    "broken",
    [
        # `type: sql` is not a component: renaming would invent one
        CLEAN.replace("component: filesystem.csv_writer", "type: sql"),
        # far from every field: no guess
        CLEAN.replace("{path: out.csv}", "{path: out.csv, zzz_unrelated: 1}"),
        # two close candidates: ambiguous
        CLEAN.replace("csv_extractor", "csv_xtractor").replace("csv_writer", "csv_xtractor", 0),
    ],
)
def test_ambiguous_or_far_repairs_are_not_applied(broken: str) -> None:
    outcome = fix_text(broken, partial(check_text, file="p.oml"))
    if "csv_xtractor" in broken:
        # exactly one candidate within two edits is safe; check the premise
        assert edit_distance("csv_xtractor", "csv_extractor") == 1
        return
    assert outcome.applied == ()
    assert outcome.text == broken
    assert not outcome.result.ok


def test_a_typo_with_two_close_fields_is_left_for_the_user() -> None:
    # 'ma' is close to two modes and too short to judge
    broken = CLEAN.replace("mode: write", "mode: wirte")
    outcome = fix_text(broken, partial(check_text, file="p.oml"))
    assert outcome.applied == () and not outcome.result.ok


def test_a_lone_match_of_another_meaning_is_not_safe() -> None:
    from osiris.oml.suggest import is_safe_match

    assert not is_safe_match("bzip2", ["gzip"])  # two edits in a short word, and a digit
    assert not is_safe_match("utf16", ["utf8"])
    assert is_safe_match("upsrt", ["upsert"])
    assert is_safe_match("csv_extractr", ["csv_extractor"])
    assert is_safe_match("delimtre", ["delimiter"])  # 8+ characters: two edits
    assert not is_safe_match("upsrt", ["upsert", "insert"])


def test_edit_distance() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("ab", "ba") == 1
    assert edit_distance("", "abc") == 3
    assert edit_distance("same", "same") == 0


# -- the command line ---------------------------------------------------------------------------


def test_fix_writes_in_place_and_exits_as_check_would(tmp_path: Path) -> None:
    path = tmp_path / "p.oml"
    broken = CLEAN.replace("needs:", "depends_on:").replace("csv_extractor", "csv_extractr")
    path.write_text(broken)
    proc = omlc("check", "--fix", str(path))
    assert proc.returncode == 0, proc.stderr
    assert path.read_text() == CLEAN
    assert "fixed OML005" in proc.stderr and "fixed OML014" in proc.stderr
    assert list(tmp_path.iterdir()) == [path]  # no temp file left beside it

    still_bad = CLEAN.replace("needs: [src]", "needs: [src]\n    depends_on: [src]").replace(
        "{path: out.csv}", "{path: out.csv, zzz_unrelated: 1}"
    )
    path.write_text(still_bad)
    proc = omlc("check", "--fix", str(path), "--format", "json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 2
    assert [d["code"] for d in report["diagnostics"]] == ["OML010", "OML017"]
    assert report["fixed"] == []  # renaming depends_on onto an existing needs is not safe
    assert path.read_text() == still_bad


def test_diff_shows_and_does_not_write(tmp_path: Path) -> None:
    path = tmp_path / "p.oml"
    broken = CLEAN.replace("oml_version", "version")
    path.write_text(broken)
    proc = omlc("check", "--diff", str(path))
    assert proc.returncode == 0
    assert '-version: "0.1.0"\n+oml_version: "0.1.0"\n' in proc.stdout
    assert path.read_text() == broken
    proc = omlc("check", "--diff", "--format", "json", str(path))
    report = json.loads(proc.stdout)
    assert report["fixed"] == [
        {
            "file": str(path),
            "code": "OML005",
            "title": "Rename to 'oml_version'",
            "line": 1,
            "written": False,
        }
    ]
    assert path.read_text() == broken


# -- the editor ---------------------------------------------------------------------------------


def test_fix_all_code_action_applies_the_same_fixes() -> None:
    broken = CLEAN.replace("oml_version", "version").replace("csv_extractor", "csv_extractr")
    state = DocumentState("file:///work/p.oml", broken, 1)
    state.current()
    everywhere = types.Range(types.Position(0, 0), types.Position(0, 0))
    (fix_all,) = features.code_actions(state, everywhere, [types.CodeActionKind.SourceFixAll])
    assert fix_all.title == "Fix all safe problems (2)"
    assert fix_all.edit is not None and fix_all.edit.changes is not None
    (edit,) = fix_all.edit.changes[state.uri]
    assert edit.new_text == CLEAN
    quick = features.code_actions(state, everywhere, [types.CodeActionKind.QuickFix])
    assert [a.title for a in quick] == ["Rename to 'oml_version'"]
    state.set_text(CLEAN, 2)
    assert features.code_actions(state, everywhere) == []
