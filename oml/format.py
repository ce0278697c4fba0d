"""The canonical OML formatter: fixed indentation and quoting, comments and key order kept (ruamel round-trip).

Like `terraform fmt`, it never moves keys: ruamel attaches an own-line comment to the key before
it, so reordering keys moves comments away from what they describe.
"""

from __future__ import annotations

import io

from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.span import SourceText
from osiris.oml.yamltree import parse_yaml


def format_text(text: str, file: str = "<string>") -> tuple[str | None, DiagnosticList]:
    """Canonical text of an OML document, or None with diagnostics when it is not valid YAML."""
    diagnostics = DiagnosticList()
    tree = parse_yaml(SourceText(file, text), diagnostics)
    if tree is None or diagnostics.has_errors:
        return None, diagnostics
    try:
        formatted = _format_once(text)
        again = _format_once(formatted)  # a second pass settles comment indentation
    except Exception:  # ruamel could not round-trip this text: leave it as it is
        return text, diagnostics
    if not _same_document(again, tree.to_python(), text):
        return text, diagnostics  # never hand back a changed meaning or a lost comment
    return again, diagnostics


def _format_once(text: str) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    data = yaml.load(text)
    if isinstance(data, CommentedMap):
        version = data.get("oml_version")
        if isinstance(version, str) and not isinstance(version, DoubleQuotedScalarString):
            data["oml_version"] = DoubleQuotedScalarString(version)
    out = io.StringIO()
    yaml.dump(data, out)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def _same_document(formatted: str, meaning: object, original: str) -> bool:
    """The output parses to the same data and keeps every comment line."""
    check = DiagnosticList()
    tree = parse_yaml(SourceText("<formatted>", formatted), check)
    if tree is None or check.has_errors or tree.to_python() != meaning:
        return False
    return sorted(_comments(formatted)) == sorted(_comments(original))


def _comments(text: str) -> list[str]:
    return [
        line.split("#", 1)[1].strip() for line in text.splitlines() if line.lstrip().startswith("#")
    ]
