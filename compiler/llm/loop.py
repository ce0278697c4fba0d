"""The repair loop: model call → render → safe fixes → check; diagnostics back to the model, bounded."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from osiris.compiler.fixes import AppliedFix, fix_text
from osiris.compiler.frontend import CheckResult
from osiris.compiler.llm.client import Reply, Usage
from osiris.compiler.llm.pipeline import TOOL_NAME, parse_pipeline, render_pipeline
from osiris.compiler.llm.prompt import repair_messages, repair_text
from osiris.oml.diagnostics import Diagnostic, Severity

Check = Callable[[str], CheckResult]
Call = Callable[[list[dict[str, Any]]], Reply]


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int  # 1-based model call
    proposed: str  # the model's pipeline as OML ("" when it called no tool)
    text: str  # after the safe fixes
    diagnostics: tuple[Diagnostic, ...]  # of text
    fixed_by_rule: tuple[AppliedFix, ...]
    fixed_by_model: tuple[str, ...]  # codes of the previous attempt's errors now gone
    usage: Usage
    tool_use: dict[str, Any] | None = field(default=None, repr=False)
    note: str = ""  # why there is no pipeline (no tool call, truncated answer)

    @property
    def errors(self) -> int:
        return error_count(self.diagnostics) + (1 if not self.proposed else 0)

    @property
    def ok(self) -> bool:
        return bool(self.proposed) and self.errors == 0

    def to_dict(self) -> dict[str, Any]:
        from osiris.oml.render import diagnostic_to_dict

        fixed = [{"by": "rule", **f.to_dict()} for f in self.fixed_by_rule]
        fixed += [{"by": "model", "code": code} for code in self.fixed_by_model]
        out: dict[str, Any] = {
            "attempt": self.number,
            "ok": self.ok,
            "errors": self.errors,
            "diagnostics": [diagnostic_to_dict(d) for d in self.diagnostics],
            "fixed_by": fixed,
            "usage": self.usage.to_dict(),
        }
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    attempts: tuple[Attempt, ...]
    seconds: float

    @property
    def best(self) -> Attempt:
        return best_attempt(self.attempts)

    @property
    def ok(self) -> bool:
        return self.best.ok

    @property
    def usage(self) -> Usage:
        total = Usage()
        for a in self.attempts:
            total = total + a.usage
        return total


# -- decisions (pure) ---------------------------------------------------------------------------


def error_count(diagnostics: Iterable[Diagnostic]) -> int:
    return sum(1 for d in diagnostics if d.severity is Severity.ERROR)


def best_attempt(attempts: Iterable[Attempt]) -> Attempt:
    """Fewest errors; among equals the later one (it has seen more feedback)."""
    chosen: Attempt | None = None
    for attempt in attempts:
        if chosen is None or attempt.errors <= chosen.errors:
            chosen = attempt
    if chosen is None:
        raise ValueError("no attempts")
    return chosen


def another_call(attempts: list[Attempt], max_attempts: int) -> bool:
    """Call the model again: the last attempt still has errors and calls are left."""
    return bool(attempts) and not attempts[-1].ok and len(attempts) < max_attempts


def fixed_by_model(previous: Attempt | None, current: tuple[Diagnostic, ...]) -> tuple[str, ...]:
    """Codes of the previous attempt's errors that the model's new answer no longer has."""
    if previous is None:
        return ()
    left = [d.code for d in current if d.severity is Severity.ERROR]
    gone = []
    for d in previous.diagnostics:
        if d.severity is not Severity.ERROR:
            continue
        if d.code in left:
            left.remove(d.code)
        else:
            gone.append(d.code)
    return tuple(gone)


def feedback(attempt: Attempt) -> str:
    if not attempt.proposed:
        return f"{attempt.note} Call {TOOL_NAME} with the whole pipeline."
    return repair_text(attempt.diagnostics, attempt.text)


def canonical(text: str, request: str) -> str:
    """A renamed key stays where the model put it (`needs` after `config`): the same document
    rendered again in canonical key order, or text itself when it does not read back the same."""
    data = parse_pipeline(text)
    if data is None:
        return text
    again = render_pipeline(data, request)
    return again if parse_pipeline(again) == data else text


# -- the loop -----------------------------------------------------------------------------------


def evaluate(
    reply: Reply,
    number: int,
    request: str,
    check: Check,
    previous: Attempt | None,
) -> Attempt:
    """One model answer → rendered OML → safe fixes (no model call) → its diagnostics."""
    if reply.tool_use is None or not isinstance(reply.tool_use.get("input"), dict):
        why = (
            "Your answer was cut off (max_tokens)."
            if reply.stop_reason == "max_tokens"
            else f"You answered without calling {TOOL_NAME}."
        )
        return Attempt(number, "", "", (), (), (), reply.usage, reply.tool_use, why)
    proposed = render_pipeline(reply.tool_use["input"], request)
    outcome = fix_text(proposed, check, partial(canonical, request=request))
    text, diagnostics = outcome.text, outcome.result.diagnostics
    return Attempt(
        number,
        proposed,
        text,
        diagnostics,
        outcome.applied,
        fixed_by_model(previous, diagnostics),
        reply.usage,
        reply.tool_use,
    )


def run_loop(
    messages: list[dict[str, Any]],
    call: Call,
    check: Check,
    *,
    request: str,
    max_attempts: int,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> Outcome:
    """At most max_attempts model calls; each answer is fixed by rule first, and only what is
    left goes back to the model. The outcome keeps every attempt; `best` is the one to keep."""
    start = time.perf_counter()
    attempts: list[Attempt] = []
    while not attempts or another_call(attempts, max_attempts):
        reply = call(messages)
        previous = attempts[-1] if attempts else None
        attempt = evaluate(reply, len(attempts) + 1, request, check, previous)
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt)
        messages = repair_messages(messages, attempt.tool_use, feedback(attempt), reply.text)
    return Outcome(tuple(attempts), time.perf_counter() - start)
