"""`omlc fmt`: comments and key order kept, canonical indentation, idempotent, meaning unchanged.

The property tests generate valid pipelines as YAML text with random key orders, block and flow
styles, quoting styles, indentation and comments (own-line and trailing), then check that
format_text is idempotent, keeps every comment and the key order, indents steps canonically, keeps the YAML
data equal and never changes the compiled output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osiris.compiler.compile import compile_text
from osiris.oml.format import format_text

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "golden"
OMLC = [
    sys.executable,
    "-c",
    "import sys; from osiris.compiler.cli import omlc_main; sys.exit(omlc_main())",
]
PIPELINES = sorted(GOLDEN.glob("*/pipeline.oml"))

# -- a generator of realistic pipelines as text -------------------------------------------------

EXTRACTORS: list[dict[str, Any]] = [
    {
        "component": "filesystem.csv_extractor",
        "mode": "read",
        "config": {"path": "data/orders.csv", "delimiter": ";", "header": True, "skip_rows": 1},
    },
    {
        "component": "mysql.extractor",
        "mode": "read",
        "config": {
            "connection": "@mysql.shop",
            "table": "orders",
            "columns": ["id", "customer_id", "amount"],
            "where": "created_at >= '${params.since}'",
        },
    },
    {
        "component": "filesystem.parquet_extractor",
        "mode": "extract",
        "config": {"path": "lake/events/*.parquet", "batch_size": 20000},
    },
    {
        "component": "postgres.extractor",
        "mode": "read",
        "config": {"connection": "@postgres.crm", "schema": "sales", "table": "accounts"},
    },
]
WRITERS: list[dict[str, Any]] = [
    {
        "component": "filesystem.csv_writer",
        "mode": "write",
        "config": {"path": "out/report.csv.gz", "compression": "gzip", "columns": ["id", "n"]},
    },
    {
        "component": "filesystem.parquet_writer",
        "mode": "write",
        "config": {"path": "lake/marts/report", "partition_by": ["day"]},
    },
    {
        "component": "duckdb.writer",
        "mode": "write",
        "config": {
            "path": "warehouse.duckdb",
            "table": "report",
            "write_mode": "upsert",
            "primary_key": ["id"],
        },
    },
]

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./ -]*[A-Za-z0-9_/]|[A-Za-z]")
_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


class Emitter:
    """Renders a pipeline with styles and comments drawn from hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.comments: list[str] = []
        self.seq_indent = data.draw(st.sampled_from([0, 2]), label="sequence indent")

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        return self.data.draw(strategy, label=label)

    def comment(self, where: str) -> str:
        text = f"c{len(self.comments)} about {where}"
        self.comments.append(text)
        return f"# {text}"

    def maybe_comment_line(self, pad: str, where: str) -> list[str]:
        if self.draw(st.integers(0, 3), f"comment before {where}") == 0:
            return [pad + self.comment(where)]
        return []

    def trailing(self, where: str) -> str:
        if self.draw(st.integers(0, 4), f"trailing comment {where}") == 0:
            return "  " + self.comment(where)
        return ""

    def scalar(self, value: Any, where: str) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return json.dumps(value)
        assert isinstance(value, str)
        styles = ["double", "single"]
        if _PLAIN.fullmatch(value) and value.lower() not in _SPECIAL and ": " not in value:
            styles.append("plain")
        style = self.draw(st.sampled_from(styles), f"quoting {where}")
        if style == "plain":
            return value
        if style == "single":
            return "'" + value.replace("'", "''") + "'"
        return json.dumps(value, ensure_ascii=False)

    def flow(self, value: Any, where: str) -> str:
        if isinstance(value, dict):
            inner = ", ".join(f"{k}: {self.flow(v, f'{where}.{k}')}" for k, v in value.items())
            return "{" + inner + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.flow(v, where) for v in value) + "]"
        return self.scalar(value, where)

    def mapping(self, value: dict[str, Any], indent: int, where: str) -> list[str]:
        pad = " " * indent
        lines: list[str] = []
        for key, item in value.items():
            here = f"{where}.{key}"
            lines += self.maybe_comment_line(pad, here)
            lines += self.entry(pad, key, item, indent, here)
        return lines

    def entry(self, pad: str, key: str, item: Any, indent: int, here: str) -> list[str]:
        container = isinstance(item, dict | list) and item
        if container and not self.draw(st.booleans(), f"flow {here}"):
            head = f"{pad}{key}:{self.trailing(here)}"
            if isinstance(item, dict):
                return [head, *self.mapping(item, indent + 2, here)]
            if all(isinstance(i, dict) for i in item):
                return [head, *self.steps(item, indent + self.seq_indent, here)]
            seq_pad = " " * (indent + self.seq_indent)
            return [head, *(f"{seq_pad}- {self.scalar(i, here)}" for i in item)]
        return [f"{pad}{key}: {self.flow(item, here)}{self.trailing(here)}"]

    def steps(self, items: list[dict[str, Any]], indent: int, where: str) -> list[str]:
        pad = " " * indent
        lines: list[str] = []
        for n, step in enumerate(items):
            here = f"{where}[{n}]"
            lines += self.maybe_comment_line(pad, here)
            body = self.mapping(step, indent + 2, here)
            while body[0].lstrip().startswith("#"):  # "- " must start with a key
                lines.append(body.pop(0))
            lines.append(pad + "- " + body[0][indent + 2 :])
            lines += body[1:]
        return lines

    def document(self, doc: dict[str, Any]) -> str:
        lines: list[str] = []
        if self.draw(st.booleans(), "header comment"):
            lines.append(self.comment("the file"))
        lines += self.mapping(doc, 0, "doc")
        return "\n".join(lines) + "\n"


def _shuffled(data: st.DataObject, mapping: dict[str, Any], label: str) -> dict[str, Any]:
    keys = data.draw(st.permutations(list(mapping)), label=f"key order {label}")
    return {k: mapping[k] for k in keys}


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[dict[str, Any], Emitter, str]:
    data = draw(st.data())
    extract = [
        dict(EXTRACTORS[i])
        for i in draw(st.lists(st.integers(0, len(EXTRACTORS) - 1), min_size=1, max_size=3))
    ]
    steps: list[dict[str, Any]] = []
    for n, step in enumerate(extract):
        steps.append({"id": f"source-{n}", **step})
    ids = [s["id"] for s in steps]
    query = "SELECT count(*) AS n, 1 AS id, current_date AS day FROM " + ", ".join(
        f'"{i}"' for i in ids
    )
    steps.append(
        {"id": "combine", "component": "duckdb.processor", "mode": "transform", "needs": ids}
        | ({"description": "Count rows."} if draw(st.booleans()) else {})
        | {"config": {"query": query}}
    )
    for n, w in enumerate(draw(st.lists(st.sampled_from(WRITERS), min_size=1, max_size=2))):
        edge = (
            {"inputs": {"df": "${combine.df}"}} if draw(st.booleans()) else {"needs": ["combine"]}
        )
        steps.append({"id": f"save-{n}", "component": w["component"], "mode": w["mode"]} | edge)
        steps[-1]["config"] = dict(w["config"])
    steps = [
        _shuffled(data, s | {"config": _shuffled(data, s["config"], f"config {s['id']}")}, s["id"])
        for s in steps
    ]
    doc: dict[str, Any] = {"oml_version": "0.1.0", "name": "generated-pipeline", "steps": steps}
    if draw(st.booleans()):
        doc["description"] = "A generated pipeline: extract, combine, save."
    if any("params.since" in json.dumps(s) for s in steps) or draw(st.booleans()):
        doc["params"] = {
            "since": _shuffled(
                data, {"type": "string", "default": "2024-01-01", "description": "First day"}, "p"
            )
        }
        if draw(st.booleans()):
            doc["profiles"] = {"prod": {"params": {"since": "2023-01-01"}}}
    if draw(st.booleans()):
        doc["metadata"] = {"owner": "data-team"}
    if draw(st.booleans()):
        doc["x-schedule"] = "nightly"
    doc = _shuffled(data, doc, "top level")
    emitter = Emitter(data)
    text = emitter.document(doc)
    return doc, emitter, text


def _load(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


FMT_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FMT_SETTINGS
@given(case=pipelines())
def test_fmt_idempotent_keeps_comments_and_meaning(
    case: tuple[dict[str, Any], Emitter, str],
) -> None:
    doc, emitter, text = case
    assert _load(text) == doc, "the generator wrote something else than it meant"
    formatted, diagnostics = format_text(text, "gen.oml")
    assert formatted is not None, [d.summary for d in diagnostics]
    # idempotent
    again, _ = format_text(formatted, "gen.oml")
    assert again == formatted, "formatting the formatted text changed it"
    # meaning kept
    assert _load(formatted) == doc
    # every comment kept, exactly once
    for comment in emitter.comments:
        assert formatted.count(comment) == 1, f"comment {comment!r} lost or duplicated"
    # key order kept, everywhere
    loaded = _load(formatted)
    assert list(loaded) == list(doc)
    for step, original in zip(loaded["steps"], doc["steps"], strict=True):
        assert list(step) == list(original)
    # canonical layout: block sequences are indented under their key, never at column 0
    assert not re.search(r"^-", formatted, flags=re.MULTILINE), formatted


@settings(FMT_SETTINGS, max_examples=40)
@given(case=pipelines())
def test_fmt_never_changes_compiled_output(case: tuple[dict[str, Any], Emitter, str]) -> None:
    _, _, text = case
    formatted = format_text(text, "gen.oml")[0]
    assert formatted is not None
    before = compile_text(text, "gen.oml", environ={})
    after = compile_text(formatted, "gen.oml", environ={})
    assert before.exit_code == 0, [d.summary for d in before.diagnostics]
    assert after.exit_code == 0, [d.summary for d in after.diagnostics]
    assert after.emitted.files == before.emitted.files


COMMENT_BEFORE_LATE_ID = """\
oml_version: "0.1.0"
name: n
steps:
  - component: filesystem.csv_extractor
    mode: read
    config: {path: x.csv}
    # about the id
    id: a
"""


def test_fmt_idempotent_with_comment_before_a_late_id() -> None:
    """Regression: a comment above a step's late `id` used to move on every pass."""
    once = format_text(COMMENT_BEFORE_LATE_ID)[0]
    assert once is not None
    assert format_text(once)[0] == once


# -- golden pipelines and the command line ------------------------------------------------------


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.parent.name)
def test_golden_pipelines_format_stably(path: Path) -> None:
    text = path.read_text("utf-8")
    formatted, diagnostics = format_text(text, str(path))
    if formatted is None:  # YAML-broken cases: fmt refuses, with the same diagnostic as check
        assert diagnostics.has_errors
        return
    assert format_text(formatted)[0] == formatted
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            assert line.strip() in formatted, f"comment lost: {line.strip()}"
    assert _load(formatted) == _load(text)


@pytest.mark.parametrize(
    "path",
    [p for p in PIPELINES if not p.parent.name.startswith(("invalid_", "compile_"))],
    ids=lambda p: p.parent.name,
)
def test_formatting_never_changes_the_manifest(path: Path) -> None:
    args_path = path.parent / "args.json"
    args = json.loads(args_path.read_text()) if args_path.exists() else {}
    kwargs = {
        "params": args.get("params", []),
        "profile": args.get("profile"),
        "environ": args.get("environ", {}),
    }
    text = path.read_text("utf-8")
    formatted = format_text(text)[0]
    assert formatted is not None
    before = compile_text(text, "p.oml", **kwargs)
    after = compile_text(formatted, "p.oml", **kwargs)
    assert before.emitted is not None and after.emitted is not None
    assert after.emitted.files == before.emitted.files


MESSY = """\
# keep me
name: messy   # and me
steps:
- mode: read
  component: filesystem.csv_extractor
  id: orders
  config: {path: data/orders.csv}
oml_version: '0.1.0'
"""


def omlc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMLC, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


def test_fmt_check_and_rewrite(tmp_path: Path) -> None:
    messy = tmp_path / "messy.oml"
    messy.write_text(MESSY, encoding="utf-8")
    tidy = tmp_path / "tidy.oml"
    tidy.write_text(format_text(MESSY)[0] or "", encoding="utf-8")

    proc = omlc("fmt", "--check", "messy.oml", "tidy.oml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "messy.oml" in proc.stdout and "tidy.oml" not in proc.stdout
    assert messy.read_text("utf-8") == MESSY, "--check must not write"

    assert omlc("fmt", "--check", "tidy.oml", cwd=tmp_path).returncode == 0

    proc = omlc("fmt", "messy.oml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert messy.read_text("utf-8") == tidy.read_text("utf-8")
    assert "# keep me" in messy.read_text() and "# and me" in messy.read_text()
    assert omlc("fmt", "--check", "messy.oml", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messy.oml", "tidy.oml"]

    broken = tmp_path / "broken.oml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    proc = omlc("fmt", "--check", "broken.oml", cwd=tmp_path)
    assert proc.returncode == 2
    assert broken.read_text() == "name: [unclosed\n"


def test_fmt_check_on_golden_tree_is_clean_or_reports(tmp_path: Path) -> None:
    """`omlc fmt --check DIR` walks .oml files; its verdict matches format_text per file."""
    proc = omlc("fmt", "--check", "golden", cwd=ROOT)
    would = {line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("would")}
    expected = set()
    broken = False
    for path in PIPELINES:
        formatted = format_text(path.read_text("utf-8"))[0]
        if formatted is None:
            broken = True
        elif formatted != path.read_text("utf-8"):
            expected.add(str(path.relative_to(ROOT)))
    assert would == expected
    assert proc.returncode == (2 if broken else 1 if expected else 0)
