"""Which discovered tables (and columns) the model sees: ranked against the request, within a budget."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from osiris.compiler.llm.context import estimate_tokens
from osiris.runtime.catalog.model import Catalog, Column, Table

DEFAULT_BUDGET = 1000  # tokens of schema text per request
MAX_SAMPLES = 2  # sample rows per table (masked before they get here)
MAX_SAMPLE_CHARS = 40  # per value
MIN_COLUMNS = 6  # a trimmed table keeps at least this many columns

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
        "per",
        "each",
        "all",
        "every",
        "then",
        "load",
        "copy",
        "read",
        "write",
        "move",
        "sync",
        "merge",
        "append",
        "table",
        "tables",
        "data",
        "database",
        "new",
        "daily",
    ]
)


@dataclass(frozen=True, slots=True)
class SentTable:
    source: str  # the @family.alias the catalog came from
    schema: str | None
    name: str
    score: float
    columns_sent: int
    columns_total: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True, slots=True)
class Selection:
    tables: tuple[SentTable, ...]  # in the order sent, best first
    omitted: tuple[str, ...]  # "source:schema.table" of the tables not sent
    text: str  # what goes into the user turn
    tokens: int

    def to_dict(self) -> list[dict[str, object]]:
        return [
            {
                "source": t.source,
                "table": t.qualified,
                "columns_sent": t.columns_sent,
                "columns_total": t.columns_total,
            }
            for t in self.tables
        ]


def words(text: str) -> set[str]:
    """Lower-case words of text and their singular/plural forms; snake_case split too."""
    found: set[str] = set()
    for word in _WORD.findall(text.lower().replace("_", " ")):
        if word in _STOP or len(word) < 2:
            continue
        found.add(word)
        if word.endswith("ies") and len(word) > 4:
            found.add(word[:-3] + "y")
        elif word.endswith("es") and len(word) > 4:
            found.update({word[:-2], word[:-1]})
        elif word.endswith("s") and len(word) > 3:
            found.add(word[:-1])
        else:
            found.add(word + "s")
    return found


def _name_words(name: str) -> set[str]:
    return set(_WORD.findall(name.lower().replace("_", " ")))


def _distinctive(wanted: set[str], tables: Sequence[Table]) -> set[str]:
    """Drop request words that most tables share (`id`, `created_at`): they rank nothing."""
    if len(tables) <= 4:
        return wanted
    limit = len(tables) / 2
    keep = set()
    for word in wanted:
        hits = sum(
            1
            for t in tables
            if word in _name_words(t.name) or any(word in _name_words(c.name) for c in t.columns)
        )
        if hits <= limit:
            keep.add(word)
    return keep


def score_table(table: Table, wanted: set[str]) -> float:
    """3 per request word in the table's name, 1 per column named by one, 0.5 per partial."""
    score = 3.0 * len(_name_words(table.name) & wanted)
    if table.name.lower() in wanted:
        score += 3.0
    for column in table.columns:
        parts = _name_words(column.name)
        if parts & wanted:
            score += 1.0
        elif any(len(w) >= 4 and (w in p or p in w) for w in wanted for p in parts if len(p) >= 4):
            score += 0.5
    return score


def _column_rank(table: Table, column: Column, wanted: set[str]) -> tuple[int, int]:
    keys = set(table.primary_key) | {c for fk in table.foreign_keys for c in fk.columns}
    if column.name in keys:
        return (0, 0)
    return (1, 0) if _name_words(column.name) & wanted else (2, 0)


def render_table(table: Table, wanted: set[str], max_columns: int | None = None) -> tuple[str, int]:
    """`schema.table (~N rows): col type [pk|fk→t.c|null], …` + samples; (text, columns kept)."""
    columns = list(table.columns)
    if max_columns is not None and len(columns) > max_columns:
        ranked = sorted(
            range(len(columns)), key=lambda i: (_column_rank(table, columns[i], wanted), i)
        )
        keep = sorted(ranked[:max_columns])
        columns = [columns[i] for i in keep]
    fks = {c: fk for fk in table.foreign_keys for c in fk.columns}
    parts = []
    for column in columns:
        tags = []
        if column.name in table.primary_key:
            tags.append("pk")
        if column.name in fks:
            fk = fks[column.name]
            tags.append(f"fk→{fk.ref_table}.{','.join(fk.ref_columns)}")
        if column.nullable:
            tags.append("null")
        parts.append(" ".join([column.name, column.db_type, *tags]))
    name = f"{table.schema}.{table.name}" if table.schema else table.name
    rows = f" ~{table.row_estimate} rows" if table.row_estimate is not None else ""
    kind = f" [{table.kind}]" if table.kind != "table" else ""
    more = (
        f", …{len(table.columns) - len(columns)} more" if len(columns) < len(table.columns) else ""
    )
    lines = [f"- {name}{kind}{rows}: " + ", ".join(parts) + more]
    kept = {c.name for c in columns}
    for sample in table.samples[:MAX_SAMPLES]:
        row = {k: _short(v) for k, v in sample.items() if k in kept}
        lines.append("  e.g. " + json.dumps(row, ensure_ascii=False, default=str))
    return "\n".join(lines), len(columns)


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_SAMPLE_CHARS:
        return value[: MAX_SAMPLE_CHARS - 1] + "…"
    return value


def _head(source: str, not_sent: int) -> str:
    head = f"Discovered schema of {source} (column database types; samples masked)"
    return head + (f"; {not_sent} less relevant tables not shown" if not_sent else "")


def rank_tables(
    request: str,
    catalogs: Sequence[tuple[str, Catalog]],
    budget_tokens: int = DEFAULT_BUDGET,
) -> Selection:
    """The tables to send for request: all of them when they fit the budget; else the ones
    the request names (by table and column words), best first, trimmed to their key and
    named columns when needed; when none is named, the largest tables that fit."""
    wanted = _distinctive(words(request), [t for _, c in catalogs for t in c.tables])
    entries = []
    for order, (source, catalog) in enumerate(catalogs):
        for index, table in enumerate(catalog.tables):
            entries.append((score_table(table, wanted), order, index, source, table))
    full = {id(e[4]): render_table(e[4], wanted) for e in entries}
    total = sum(estimate_tokens(text) for text, _ in full.values())
    if total <= budget_tokens:
        chosen = sorted(entries, key=lambda e: (-e[0], e[1], e[2]))
    elif any(e[0] > 0 for e in entries):
        chosen = sorted((e for e in entries if e[0] > 0), key=lambda e: (-e[0], e[1], e[2]))
    else:
        chosen = sorted(entries, key=lambda e: (-(e[4].row_estimate or 0), e[1], e[2]))
    sent: list[SentTable] = []
    blocks: dict[str, list[str]] = {}
    used = sum(estimate_tokens(_head(source, 9999) + ":\n\n\n") for source, _ in catalogs)
    for score, _, _, source, table in chosen:
        text, kept = full[id(table)]
        cost = estimate_tokens(text)
        if used + cost > budget_tokens and len(table.columns) > MIN_COLUMNS:
            text, kept = render_table(table, wanted, MIN_COLUMNS)
            cost = estimate_tokens(text)
        if used + cost > budget_tokens:
            continue
        used += cost
        blocks.setdefault(source, []).append(text)
        sent.append(SentTable(source, table.schema, table.name, score, kept, len(table.columns)))
    sent_ids = {(t.source, t.schema, t.name) for t in sent}
    omitted = tuple(
        f"{source}:{table.schema + '.' if table.schema else ''}{table.name}"
        for _, _, _, source, table in entries
        if (source, table.schema, table.name) not in sent_ids
    )
    sections = []
    for source, _ in catalogs:
        if source not in blocks:
            continue
        not_sent = sum(1 for o in omitted if o.startswith(source + ":"))
        sections.append(_head(source, not_sent) + ":\n" + "\n".join(blocks[source]))
    text = "\n\n".join(sections)
    return Selection(tuple(sent), omitted, text, estimate_tokens(text))
