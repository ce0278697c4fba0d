"""Control characters from a source file: escaped in everything shown, rejected in names."""

from __future__ import annotations

import re

# C0 (but tab and newline), DEL, C1, the line and paragraph separators and the bidirectional
# overrides and isolates: characters that move a terminal's cursor, change its state or reorder
# the text around them ("Trojan source").
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_IN_TEXT = re.compile(f"[{_UNSAFE}]")
_IN_LINE = re.compile(f"[\n{_UNSAFE}]")
_IN_NAME = re.compile(f"[\t\n{_UNSAFE}]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x0A:
        return "\\n"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str, *, newlines: bool = True) -> str:
    """text with each control character written as an escape (`\\x1b`, `\\u202e`); newlines kept
    unless newlines is False (one-line texts: summaries, file names, source lines)."""
    pattern = _IN_TEXT if newlines else _IN_LINE
    return pattern.sub(_escaped, text) if pattern.search(text) else text


def first_control(name: str) -> str | None:
    """The first control character (tab and newline included) in a name, escaped; None if none."""
    found = _IN_NAME.search(name)
    if found is None:
        return None
    return "\\t" if found.group() == "\t" else _escaped(found)
