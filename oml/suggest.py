"""Did-you-mean: close matches for a misspelt name, and the quick-fix suggestions built from them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from osiris.oml.diagnostics import Suggestion
from osiris.oml.span import Span


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    pool = list(dict.fromkeys(candidates))
    matches = difflib.get_close_matches(word, pool, n=n, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        matches = [
            lowered[m] for m in difflib.get_close_matches(word.lower(), lowered, n=n, cutoff=0.6)
        ]
    return matches


def did_you_mean(matches: list[str]) -> str:
    if not matches:
        return ""
    return " Did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"


def replacements(matches: list[str], span: Span, quote: bool = False) -> tuple[Suggestion, ...]:
    return tuple(Suggestion(f"Change to '{m}'", f'"{m}"' if quote else m, span) for m in matches)
