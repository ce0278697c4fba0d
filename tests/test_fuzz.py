"""No input crashes the checker: random bytes, random YAML and mutated pipelines give diagnostics and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oml_cases import CHECK_CASES, CSV_TO_CSV, VALID_CASES

from osiris.compiler.cli import omlc_main
from osiris.compiler.frontend import check_text

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (
    [CSV_TO_CSV]
    + [c[1] for c in VALID_CASES]
    + [c[1] for c in CHECK_CASES]
    + [p.read_text() for p in sorted(ROOT.glob("golden/*/pipeline.oml"))]
)

yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _assert_well_formed(text: str) -> None:
    result = check_text(text, "fuzz.oml")
    for d in result.diagnostics:
        assert d.code.startswith("OML") and d.summary
        if d.span is not None:
            assert (
                0
                <= d.span.start.byte
                <= d.span.end.byte
                <= len(text.encode("utf-8", "surrogatepass"))
            )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "random.oml"
    path.write_bytes(data)
    assert omlc_main(["check", str(path), "--format", "json"]) in (0, 2)


@settings(max_examples=150, deadline=None)
@given(yaml_values)
def test_random_yaml_never_crashes(value) -> None:
    import yaml

    _assert_well_formed(yaml.safe_dump(value, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_pipelines_never_crash(seed: str, data) -> None:
    text = seed
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["delete", "insert", "swap-lines", "dup-line"]))
        if op == "delete" and text:
            i = data.draw(st.integers(0, len(text) - 1))
            text = text[:i] + text[i + data.draw(st.integers(1, 10)) :]
        elif op == "insert":
            i = data.draw(st.integers(0, len(text)))
            text = (
                text[:i]
                + data.draw(
                    st.sampled_from(
                        [
                            "${",
                            "@",
                            ":",
                            "- ",
                            "\n  ",
                            "{",
                            "]",
                            "'",
                            '"',
                            "&a",
                            "*a",
                            "\t",
                            "é🎉",
                            "${params.",
                            "!!binary ",
                            "<<: ",
                        ]
                    )
                )
                + text[i:]
            )
        else:
            lines = text.splitlines(keepends=True)
            if len(lines) > 1:
                i = data.draw(st.integers(0, len(lines) - 2))
                if op == "swap-lines":
                    lines[i], lines[i + 1] = lines[i + 1], lines[i]
                else:
                    lines.insert(i, lines[i])
                text = "".join(lines)
    _assert_well_formed(text)


def test_cli_never_prints_a_traceback(tmp_path: Path) -> None:
    samples = {
        "bytes.oml": b"\xff\xfe\x00garbage",
        "tabs.oml": b"name:\t[\n",
        "ok.oml": CSV_TO_CSV.encode(),
    }
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-m", "osiris.compiler.cli", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "OML000" in proc.stdout and "OML001" in proc.stdout
