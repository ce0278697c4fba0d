"""DuckDB's errors on reading CSV files, said in the terms of filesystem.csv_extractor."""

from __future__ import annotations

import re

from osiris.runtime.drivers.base import DriverError

# What a user can set in a filesystem.csv_extractor step (specs/components) to fix its layout.
LAYOUT_OPTIONS = "delimiter, quote, escape, header or skip_rows"


def explain(err: BaseException) -> DriverError | None:
    """A one-line DriverError for a DuckDB CSV error (DuckDB's own text as its detail), or None
    when err is something else. DuckDB gives no error codes: its message is all there is."""
    if type(err).__module__.split(".")[0] not in ("duckdb", "_duckdb"):
        return None
    text = str(err)
    detail = " ".join(line.strip() for line in text.splitlines() if line.strip())
    sentence = _csv_sentence(text)
    return DriverError(sentence, detail=detail) if sentence else None


def _csv_sentence(text: str) -> str | None:
    sniffing = re.search(r'Error when sniffing file "(.*?)"', text)
    if sniffing:
        return (
            f"cannot read CSV file {sniffing.group(1)}: its layout (delimiter, quoting, header) "
            f"could not be detected from its first lines; set {LAYOUT_OPTIONS} in the step"
        )
    line = re.search(r"CSV Error on Line: (\d+)", text)
    if line is None:
        return None
    file = re.search(r"^\s*file = (.*?)\s*$", text, re.MULTILINE)
    where = f"CSV file {file.group(1) if file else '?'}, line {line.group(1)}"
    counts = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if counts:
        expected, found = int(counts.group(1)), int(counts.group(2))
        got = f"more than {expected}" if found > expected else f"{found} instead of {expected}"
        return f"{where} has {got} fields; check delimiter, quote and escape, or fix that line"
    value = re.search(
        r"Error when converting column \"(.*?)\"\. Could not convert string \"(.*?)\" to '(.*?)'",
        text,
    )
    if value:
        column, raw, kind = value.groups()
        fix = (
            f"set its type in column_types, e.g. {{{column}: VARCHAR}}"
            if "auto-detected" in text
            else "change its type in column_types, or check null_value"
        )
        return f"{where}: value {raw!r} of column {column!r} is not a {kind}; {fix}"
    if "Invalid unicode" in text:
        return f"{where} is not valid in the file's encoding; set encoding (utf-8, latin-1, utf-16)"
    first = text.splitlines()[0].split(":", 1)[-1].strip()
    return f"{where}: {first}"
