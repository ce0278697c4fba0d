"""The canonical OML formatter: fixed key order and indentation, comments kept (ruamel round-trip)."""

from __future__ import annotations

import io
from typing import Any

from oml.diagnostics import DiagnosticList
from oml.span import SourceText
from oml.yamltree import parse_yaml

TOP_ORDER = ("oml_version", "name", "description", "metadata", "params", "profiles", "steps")
STEP_ORDER = ("id", "description", "component", "mode", "needs", "inputs", "config")
PARAM_ORDER = ("type", "default", "enum", "description")


def _reorder(mapping: Any, order: tuple[str, ...]) -> None:
    """Known keys first in canonical order, then other keys as they were, x-* extensions last."""
    keys = list(mapping.keys())
    known = [k for k in order if k in mapping]
    others = [k for k in keys if k not in order and not str(k).startswith("x-")]
    extensions = [k for k in keys if k not in order and str(k).startswith("x-")]
    wanted = known + others + extensions
    if wanted == keys:
        return
    for key in wanted:
        mapping.move_to_end(key)


def format_text(text: str, file: str = "<string>") -> tuple[str | None, DiagnosticList]:
    """Canonical text of an OML document, or None with diagnostics when it is not valid YAML."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    diagnostics = DiagnosticList()
    if parse_yaml(SourceText(file, text), diagnostics) is None or diagnostics.has_errors:
        return None, diagnostics
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    data = yaml.load(text)
    if isinstance(data, CommentedMap):
        _reorder(data, TOP_ORDER)
        version = data.get("oml_version")
        if isinstance(version, str) and not isinstance(version, DoubleQuotedScalarString):
            data["oml_version"] = DoubleQuotedScalarString(version)
        params = data.get("params")
        if isinstance(params, CommentedMap):
            for value in params.values():
                if isinstance(value, CommentedMap):
                    _reorder(value, PARAM_ORDER)
        steps = data.get("steps")
        if isinstance(steps, CommentedSeq):
            for step in steps:
                if isinstance(step, CommentedMap):
                    _reorder(step, STEP_ORDER)
    out = io.StringIO()
    yaml.dump(data, out)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n", diagnostics
