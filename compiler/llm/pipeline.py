"""The structured answer: the forced tool's input schema (from the registry) and its rendering as OML."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from osiris.compiler.registry import Registry

TOOL_NAME = "emit_pipeline"
_TOP_ORDER = ("oml_version", "name", "description", "params", "profiles", "steps")
_STEP_ORDER = ("id", "component", "mode", "description", "needs", "inputs", "config")


def tool_definition(registry: Registry) -> dict[str, Any]:
    """The one tool the model must call: a pipeline as JSON, components and modes from the
    registry. Unknown keys are not refused here on purpose: the compiler reports them with a
    fix the loop can apply or send back, which is better than an API error."""
    modes = sorted({m for spec in registry for m in spec.oml_modes})
    step = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
            "component": {"type": "string", "enum": registry.names()},
            "mode": {"type": "string", "enum": modes},
            "needs": {"type": "array", "items": {"type": "string"}},
            "inputs": {"type": "object", "additionalProperties": {"type": "string"}},
            "config": {"type": "object"},
        },
        "required": ["id", "component", "mode", "config"],
    }
    return {
        "name": TOOL_NAME,
        "description": "Emit the complete OML pipeline (every step, not a diff).",
        "input_schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                "description": {"type": "string"},
                "params": {"type": "object"},
                "steps": {"type": "array", "minItems": 1, "items": step},
            },
            "required": ["name", "steps"],
        },
    }


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    out = {k: data[k] for k in order if k in data}
    out.update((k, v) for k, v in data.items() if k not in out)
    return out


def comment_line(request: str, limit: int = 160) -> str:
    """`# request: …` on one line: control characters and newlines become spaces."""
    text = " ".join("".join(c if c.isprintable() else " " for c in request).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"# request: {text}"


def render_pipeline(answer: Any, request: str | None = None) -> str:
    """The tool input as OML text in `omlc fmt`'s canonical layout (which `omlc fmt` leaves as
    it is). Strings that could be misread are double-quoted, so `@family.alias` and `${…}`
    are always quoted and the text always parses; what it means is for the compiler to judge
    (unknown keys are kept for it to report)."""
    data = dict(answer) if isinstance(answer, dict) else {"steps": answer}
    if "oml_version" not in data and "version" not in data:
        data["oml_version"] = "0.1.0"
    data = _ordered(data, _TOP_ORDER)
    if isinstance(data.get("steps"), list):
        data["steps"] = [
            _ordered(s, _STEP_ORDER) if isinstance(s, dict) else s for s in data["steps"]
        ]
    lines: list[str] = [comment_line(request)] if request else []
    _block_map(data, 0, lines, None)
    return "\n".join(lines) + "\n"


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*(?: [A-Za-z0-9_./()-]+)*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_RESERVED = frozenset(["true", "false", "null", "yes", "no", "on", "off", "y", "n"])


def _string(value: str) -> str:
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    return _quoted(value)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _quoted(value: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, the rest escaped."""
    out = []
    for c in value:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c.isprintable():
            out.append(c)
        else:
            code = ord(c)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return '"' + "".join(out) + '"'


def _key(key: Any) -> str:
    text = str(key)
    return text if _KEY.fullmatch(text) and text.lower() not in _RESERVED else _quoted(text)


def _flow(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return json.dumps(value)


def _nested(value: dict[str, Any]) -> bool:
    """A mapping written in block style: a long one, or one holding non-empty collections."""
    return len(value) > 3 or any(isinstance(v, (dict, list)) and v for v in value.values())


def _block_map(data: dict[str, Any], indent: int, lines: list[str], first: str | None) -> None:
    """Mappings in block style; sequences of mappings as `- ` items; short scalar lists flow."""
    pad = " " * indent
    for i, (key, value) in enumerate(data.items()):
        head = first if first is not None and i == 0 else pad
        if isinstance(value, dict) and value and (indent == 0 or key == "config" or _nested(value)):
            lines.append(f"{head}{_key(key)}:")
            _block_map(value, indent + 2, lines, None)
        elif isinstance(value, list) and any(isinstance(v, dict) and v for v in value):
            lines.append(f"{head}{_key(key)}:")
            for item in value:
                if isinstance(item, dict) and item:
                    _block_map(item, indent + 4, lines, " " * (indent + 2) + "- ")
                else:
                    lines.append(f"{pad}  - {_flow(item)}")
        else:
            lines.append(f"{head}{_key(key)}: {_flow(value)}")


def parse_pipeline(text: str) -> dict[str, Any] | None:
    """OML text as the tool's JSON (for chat: the current pipeline shown back to the model)."""
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None
