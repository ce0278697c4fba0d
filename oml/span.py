"""Source positions: the Span every node and diagnostic carries, and SourceText to compute them."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import NamedTuple


# Position and Span are immutable value types created tens of thousands of times per check;
# NamedTuple gives the frozen, slotted semantics at a fraction of a dataclass's construction cost.
class Position(NamedTuple):
    """A point in a file: 1-based line and column (in characters), 0-based UTF-8 byte offset."""

    line: int
    column: int
    byte: int


class Span(NamedTuple):
    """A range in a file; start inclusive, end exclusive."""

    file: str
    start: Position
    end: Position

    def to_dict(self) -> dict[str, object]:
        return {
            "filename": self.file,
            "start": {
                "line": self.start.line,
                "column": self.start.column,
                "byte": self.start.byte,
            },
            "end": {"line": self.end.line, "column": self.end.column, "byte": self.end.byte},
        }


@dataclass(slots=True)
class SourceText:
    """A source file's text with fast conversion between character offsets, lines and bytes."""

    file: str
    text: str
    _line_starts: list[int] = field(init=False, repr=False)  # character offset of each line
    _ascii: bool = field(init=False, repr=False)
    _line_bytes: list[int] | None = field(init=False, repr=False)  # byte offset of each line

    def __post_init__(self) -> None:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i != -1:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self._line_starts = starts
        self._ascii = self.text.isascii()
        self._line_bytes: list[int] | None = None

    @property
    def line_count(self) -> int:
        return len(self._line_starts)

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if not 1 <= line <= len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return self.text[start:end].rstrip("\r")

    def _byte_of(self, line: int, offset: int) -> int:
        """UTF-8 byte offset of a character offset known to be on 0-based line."""
        if self._line_bytes is None:
            total, out = 0, []
            for start, end in zip(
                self._line_starts, [*self._line_starts[1:], len(self.text)], strict=True
            ):
                out.append(total)
                total += len(self.text[start:end].encode("utf-8", "surrogatepass"))
            self._line_bytes = out
        start = self._line_starts[line]
        return self._line_bytes[line] + len(
            self.text[start:offset].encode("utf-8", "surrogatepass")
        )

    def position_at(self, line: int, column: int, offset: int) -> Position:
        """Position from a 0-based line, column and character offset that agree (YAML marks)."""
        if self._ascii:
            return Position(line + 1, column + 1, offset)
        if line >= len(self._line_starts):
            return self.position(offset)
        return Position(line + 1, column + 1, self._byte_of(line, offset))

    def position(self, offset: int) -> Position:
        """Position of a 0-based character offset."""
        offset = max(0, min(offset, len(self.text)))
        index = bisect.bisect_right(self._line_starts, offset) - 1
        byte = offset if self._ascii else self._byte_of(index, offset)
        return Position(index + 1, offset - self._line_starts[index] + 1, byte)

    def offset_of(self, line: int, column: int) -> int:
        """Character offset of a 0-based line and column (as YAML marks give them)."""
        line = max(0, min(line, len(self._line_starts) - 1))
        return min(self._line_starts[line] + column, len(self.text))

    def span(self, start: int, end: int) -> Span:
        """Span between two character offsets."""
        return Span(self.file, self.position(start), self.position(max(start, end)))

    def whole(self) -> Span:
        return self.span(0, len(self.text))
