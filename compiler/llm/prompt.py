"""Prompt assembly, pure: the system block, the user turn, and the repair turn after a failed check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from osiris.compiler.llm.pipeline import TOOL_NAME
from osiris.oml.diagnostics import Diagnostic, Severity

SYSTEM_INTRO = (
    "You write Osiris OML pipelines (YAML, compiled and checked by omlc). Answer only by calling "
    f"{TOOL_NAME} with the complete pipeline. Use only the components, modes and fields of the "
    "registry below, the connection aliases and the discovered tables the user gives; never "
    "invent tables or columns when a schema is given. Registry (JSON):\n"
)
MAX_DIAGNOSTICS = 20  # a repair turn lists at most this many (errors first)


def system_blocks(context_text: str) -> list[dict[str, Any]]:
    """One text block, marked cacheable: it is the same for every request of a registry."""
    return [
        {
            "type": "text",
            "text": SYSTEM_INTRO + context_text,
            "cache_control": {"type": "ephemeral"},
        }
    ]


def aliases_text(aliases: Mapping[str, Sequence[tuple[str, bool]]]) -> str:
    """`@family.alias` names by family, the default marked; never a field of the entries."""
    if not aliases:
        return "Connections: none are defined (osiris_connections.yaml); use files or ask for them."
    lines = ["Connections (use exactly these, quoted):"]
    for family in sorted(aliases):
        names = [f"@{family}.{a}" + (" (default)" if d else "") for a, d in aliases[family]]
        lines.append(f"- {family}: " + ", ".join(names))
    return "\n".join(lines)


def user_turn(
    request: str,
    aliases: Mapping[str, Sequence[tuple[str, bool]]],
    schemas: Iterable[str] = (),
    current: str | None = None,
) -> str:
    """The request, the aliases, the discovered schemas, and (chat) the pipeline to edit."""
    parts = [f"Request: {request.strip()}", aliases_text(aliases)]
    parts.extend(schemas)
    if current:
        parts.append(
            "The current pipeline (edit it as the request says; keep what it does not touch):\n"
            f"```yaml\n{current.rstrip()}\n```"
        )
    return "\n\n".join(parts)


def diagnostic_lines(diagnostics: Iterable[Diagnostic], text: str) -> list[str]:
    """code line:col message; fix; the suggested replacements (a did-you-mean from the
    catalog: the model sees the names it meant); the offending source line, errors first."""
    lines = text.splitlines()
    chosen = sorted(
        (d for d in diagnostics if d.severity in (Severity.ERROR, Severity.WARNING)),
        key=lambda d: (d.severity is not Severity.ERROR, d.span.start.line if d.span else 0),
    )
    out = []
    for d in chosen[:MAX_DIAGNOSTICS]:
        where = f"{d.span.start.line}:{d.span.start.column}" if d.span else "-"
        item = f"{d.code} {d.severity.value} at {where}: {d.summary}"
        if d.fix:
            item += f" Fix: {d.fix}"
        if d.example:
            item += f" Example: {d.example}"
        if d.suggestions:
            item += " Suggested: " + "; ".join(x.title for x in d.suggestions[:3]) + "."
        if d.span and 0 < d.span.start.line <= len(lines):
            item += f"\n    | {lines[d.span.start.line - 1].rstrip()}"
        out.append(item)
    if len(chosen) > MAX_DIAGNOSTICS:
        out.append(f"(and {len(chosen) - MAX_DIAGNOSTICS} more)")
    return out


def repair_text(diagnostics: Iterable[Diagnostic], text: str) -> str:
    """What a failed attempt looked like to the compiler, for the next model call."""
    return (
        "omlc check found problems in your pipeline (line numbers refer to this text):\n"
        f"```yaml\n{text.rstrip()}\n```\n"
        + "\n".join(diagnostic_lines(diagnostics, text))
        + f"\nCall {TOOL_NAME} again with the whole corrected pipeline."
    )


def repair_messages(
    messages: list[dict[str, Any]],
    tool_use: dict[str, Any] | None,
    feedback: str,
    answer_text: str = "",
) -> list[dict[str, Any]]:
    """The conversation after a failed attempt: the model's tool call, answered by a tool
    result that is an error carrying the diagnostics (or, when it called no tool, its text
    answer followed by a user turn saying so)."""
    if tool_use is None:
        return [
            *messages,
            {"role": "assistant", "content": answer_text.strip() or "(no answer)"},
            {"role": "user", "content": feedback},
        ]
    return [
        *messages,
        {"role": "assistant", "content": [tool_use]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use["id"],
                    "is_error": True,
                    "content": feedback,
                }
            ],
        },
    ]


def request_params(
    *,
    model: str,
    system: list[dict[str, Any]],
    tool: dict[str, Any],
    messages: list[dict[str, Any]],
    max_tokens: int = 4096,
) -> dict[str, Any]:
    """messages.create keyword arguments, the tool forced."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": system,
        "tools": [tool],
        "tool_choice": {"type": "tool", "name": tool["name"]},
        "messages": messages,
    }
