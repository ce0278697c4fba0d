"""Did-you-mean: close matches for a misspelt name, and the quick-fix suggestions built from them."""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable

from osiris.oml.diagnostics import Suggestion
from osiris.oml.span import Span

CUTOFF = 0.6  # the difflib similarity a candidate needs


def close_matches(
    word: str, candidates: Iterable[str], n: int = 3, band: float | None = None
) -> list[str]:
    """Up to n candidates close to word, best first; with band, only those within band of the
    best (a clear winner is offered alone). Compared case-insensitively when the exact
    spelling finds none."""
    pool = list(dict.fromkeys(candidates))
    found = _best(word, pool, n, band)
    if not found:
        lowered = {c.lower(): c for c in pool}
        found = [lowered[m] for m in _best(word.lower(), list(lowered), n, band)]
    return found


def _best(word: str, pool: list[str], n: int, band: float | None) -> list[str]:
    matcher = difflib.SequenceMatcher(b=word)
    scored = []
    for candidate in pool:
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() >= CUTOFF and matcher.quick_ratio() >= CUTOFF:
            score = matcher.ratio()
            if score >= CUTOFF:
                scored.append((score, candidate))
    if band is not None and scored:
        best = max(score for score, _ in scored)
        scored = [(s, c) for s, c in scored if s >= best - band]
    return [c for _, c in heapq.nlargest(n, scored)]


def did_you_mean(matches: list[str]) -> str:
    if not matches:
        return ""
    return " Did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"


def replacements(matches: list[str], span: Span, quote: bool = False) -> tuple[Suggestion, ...]:
    return tuple(Suggestion(f"Change to '{m}'", f'"{m}"' if quote else m, span) for m in matches)
