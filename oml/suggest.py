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


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, transpositions."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def is_safe_match(word: str, matches: list[str]) -> bool:
    """One candidate, one edit away (two for words of 8+ characters), case aside, with the same
    digits: 'upsrt' -> 'upsert' is a typo; 'bzip2' -> 'gzip' is another meaning."""
    if len(matches) != 1 or len(word) < 4:
        return False
    match = matches[0]
    if [c for c in word if c.isdigit()] != [c for c in match if c.isdigit()]:
        return False
    return edit_distance(word.lower(), match.lower()) <= (1 if len(word) < 8 else 2)


def replacements(
    matches: list[str], span: Span, quote: bool = False, word: str | None = None
) -> tuple[Suggestion, ...]:
    """Quick fixes for matches; with the misspelt word given, a lone close match is safe."""
    safe = word is not None and is_safe_match(word, matches)
    return tuple(
        Suggestion(f"Change to '{m}'", f'"{m}"' if quote else m, span, safe=safe) for m in matches
    )
