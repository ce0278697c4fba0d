"""Safe fixes for a processor query that reads a step it does not need (a failure class models
show): add the step to needs (flow list, block list, or a new `needs:` line), and write a
${STEP.df} in SQL as the step's table name."""

from __future__ import annotations

from functools import partial

import pytest

from osiris.compiler.fixes import fix_text
from osiris.compiler.frontend import check_text

BASE = """oml_version: "0.1.0"
name: needs-fixes
steps:
  - id: orders
    component: filesystem.csv_extractor
    mode: read
    config: {path: a.csv}
  - id: extract-customers
    component: filesystem.csv_extractor
    mode: read
    config: {path: b.csv}
  - id: joined
    component: duckdb.processor
    mode: transform
NEEDS    config:
      query: QUERY
  - id: out
    component: filesystem.csv_writer
    mode: write
    needs: [joined]
    config: {path: out.csv}
"""
JOIN = '"SELECT * FROM orders JOIN \\"extract-customers\\" c USING (id)"'


def fix(needs: str, query: str) -> tuple[str, list[str], bool]:
    text = BASE.replace("NEEDS", needs).replace("QUERY", query)
    outcome = fix_text(text, partial(check_text, file="p.oml"))
    return outcome.text, [f.code for f in outcome.applied], outcome.result.ok


@pytest.mark.parametrize(
    ("needs", "expected"),
    [
        ("    needs: [orders]\n", "    needs: [orders, extract-customers]\n    config:"),
        (
            "    needs:\n      - orders\n",
            "    needs:\n      - orders\n      - extract-customers\n    config:",
        ),
        ("", "    needs: [orders, extract-customers]\n    config:"),
    ],
)
def test_a_step_the_query_reads_is_added_to_needs(needs: str, expected: str) -> None:
    text, codes, ok = fix(needs, JOIN)
    assert ok, text
    assert expected in text and set(codes) == {"OML037"}


def test_df_reference_in_sql_becomes_the_table_name_then_a_need() -> None:
    text, codes, ok = fix("    needs: [orders]\n", '"SELECT * FROM ${extract-customers.df}"')
    assert ok, text
    assert 'query: "SELECT * FROM \\"extract-customers\\""' in text
    assert "needs: [orders, extract-customers]" in text and codes == ["OML037", "OML037"]
    text, _, ok = fix("    needs: [orders]\n", "SELECT * FROM x JOIN ${orders.df} USING (id)")
    assert "SELECT * FROM x JOIN orders USING (id)" in text


def test_not_safe_when_it_would_close_a_cycle_or_cannot_be_spelt() -> None:
    cyclic = BASE.replace("NEEDS", "    needs: [orders]\n").replace(
        "QUERY", '"SELECT * FROM orders JOIN out USING (id)"'
    )
    outcome = fix_text(cyclic, partial(check_text, file="p.oml"))
    assert not outcome.applied and not outcome.result.ok  # out reads joined: no edge back
    plain = BASE.replace("NEEDS", "    needs: [orders]\n").replace(
        "QUERY", "SELECT * FROM ${extract-customers.df}"
    )
    outcome = fix_text(plain, partial(check_text, file="p.oml"))
    assert not outcome.applied  # a plain scalar cannot start a quoted name safely


@pytest.mark.parametrize(("wrong", "fixed"), [("load", "write"), ("sink", "write")])
def test_a_mode_naming_the_components_role_is_fixed(wrong: str, fixed: str) -> None:
    text = BASE.replace("NEEDS", "    needs: [orders, extract-customers]\n").replace("QUERY", JOIN)
    broken = text.replace("    mode: write", f"    mode: {wrong}")
    outcome = fix_text(broken, partial(check_text, file="p.oml"))
    assert outcome.text == text and [f.code for f in outcome.applied] == ["OML015"]


def test_a_mode_of_another_role_is_not_fixed_by_rule() -> None:
    text = BASE.replace("NEEDS", "    needs: [orders, extract-customers]\n").replace("QUERY", JOIN)
    broken = text.replace("    mode: write", "    mode: read")  # a writer told to read: ask
    outcome = fix_text(broken, partial(check_text, file="p.oml"))
    assert not outcome.applied and not outcome.result.ok
