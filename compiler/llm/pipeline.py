"""The structured answer: the forced tool's input schema (from the registry) and its rendering as OML."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from osiris.compiler.registry import Registry

TOOL_NAME = "emit_pipeline"
_TOP_ORDER = ("oml_version", "name", "description", "params", "profiles", "steps")
_STEP_ORDER = ("id", "component", "mode", "description", "needs", "inputs", "config")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    text = " ".join(_CONTROL.sub(" ", request).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"# request: {text}"


def render_pipeline(answer: Any, request: str | None = None) -> str:
    """The tool input as OML text, formatted like `omlc fmt`. YAML quoting is the emitter's,
    so `@family.alias` and `${…}` strings are always quoted and the text always parses; what
    it means is for the compiler to judge (unknown keys are kept for it to report)."""
    import yaml

    from osiris.oml.format import format_text

    data = dict(answer) if isinstance(answer, dict) else {"steps": answer}
    if "oml_version" not in data and "version" not in data:
        data["oml_version"] = "0.1.0"
    data = _ordered(data, _TOP_ORDER)
    if isinstance(data.get("steps"), list):
        data["steps"] = [
            _ordered(s, _STEP_ORDER) if isinstance(s, dict) else s for s in data["steps"]
        ]
    text = yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    formatted, _ = format_text(text, "<generated>")
    body = formatted if formatted is not None else text
    return (comment_line(request) + "\n" + body) if request else body


def parse_pipeline(text: str) -> dict[str, Any] | None:
    """OML text as the tool's JSON (for chat: the current pipeline shown back to the model)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None
