"""Benchmark the LLM front end's own overhead per attempt, and the size of the registry context.

Per attempt = render the model's structured answer as OML (formatted) + safe fixes and check
(re-checks included) + the next request's prompt (repair turn, params, JSON body), for a
10-step pipeline. Target: p50 ≤ 20 ms (the plan allowed 350 ms). Two answers: a valid one, and
one with the legacy keys models write (depends_on, version), fixed by rule and re-rendered.
Baseline measured in the same run: check_text of the same pipeline alone.
Context: components, characters, estimated tokens (target ≤ 1,500), build and cached-read time.

Usage: python bench/llm_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import generate_pipeline, p50, row, time_calls

TARGET = 0.020
CONTEXT_TOKENS = 1500


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    import yaml

    from osiris.compiler.frontend import check_text
    from osiris.compiler.llm.client import DEFAULT_MODEL, Reply, Usage
    from osiris.compiler.llm.context import load_context
    from osiris.compiler.llm.loop import evaluate, feedback
    from osiris.compiler.llm.pipeline import render_pipeline, tool_definition
    from osiris.compiler.llm.prompt import (
        repair_messages,
        request_params,
        system_blocks,
        user_turn,
    )
    from osiris.compiler.registry import load_registry

    registry = load_registry()
    text = generate_pipeline(10)
    answer = yaml.safe_load(text)
    answer.pop("oml_version")
    legacy = json.loads(json.dumps(answer))
    legacy["version"] = "0.1.0"
    for step in legacy["steps"]:
        if "needs" in step:
            step["depends_on"] = step.pop("needs")
    tool = tool_definition(registry)
    with tempfile.TemporaryDirectory() as tmp:
        context = load_context(registry, Path(tmp))
        system = system_blocks(context.text)
        aliases = {"mysql": [("shop", True)], "postgres": [("dwh", True), ("crm", False)]}
        first = [{"role": "user", "content": user_turn("a 10-step pipeline", aliases)}]

        def check(source: str) -> object:
            return check_text(source, "p.oml", registry=registry)

        def attempt(tool_input: dict[str, object]) -> None:
            reply = Reply(
                {"type": "tool_use", "id": "t1", "name": tool["name"], "input": tool_input},
                Usage(),
                "tool_use",
            )
            result = evaluate(reply, 1, "a 10-step pipeline", check, None)  # type: ignore[arg-type]
            messages = repair_messages(first, reply.tool_use, feedback(result))
            params = request_params(
                model=DEFAULT_MODEL, system=system, tool=tool, messages=messages
            )
            json.dumps(params)

        print(f"LLM front-end overhead (python {sys.version.split()[0]}, p50 of {args.repeat})")
        valid = p50(time_calls(lambda: attempt(answer), repeat=args.repeat))
        fixed = p50(time_calls(lambda: attempt(legacy), repeat=args.repeat))
        base = p50(time_calls(lambda: check(text), repeat=args.repeat))

        def ours_only() -> None:  # everything but the compiler's check
            rendered = render_pipeline(answer, "a 10-step pipeline")
            reply = Reply(
                {"type": "tool_use", "id": "t1", "name": tool["name"], "input": answer},
                Usage(),
                "tool_use",
            )
            messages = repair_messages(first, reply.tool_use, rendered)
            params = request_params(
                model=DEFAULT_MODEL, system=system, tool=tool, messages=messages
            )
            json.dumps(params)

        own = p50(time_calls(ours_only, repeat=args.repeat))
        row("attempt, 10 steps, valid answer", valid, TARGET)
        row("attempt, 10 steps, 11 legacy keys fixed by rule", fixed, TARGET)
        row("  of which render + prompt (no check)", own)
        row("  baseline: check_text alone", base, note=f"ratio {valid / base:.1f}x")
        cold = p50(time_calls(lambda: load_context(registry, None), repeat=args.repeat))
        warm = p50(time_calls(lambda: load_context(registry, Path(tmp)), repeat=args.repeat))
        row("context build (uncached)", cold)
        row("context read from .osiris/prompts/", warm)
    verdict = "ok" if context.tokens <= CONTEXT_TOKENS else "MISS"
    print(
        f"  context: {len(context.data['components'])} components, {len(context.text)} chars, "
        f"~{context.tokens} tokens (target ≤ {CONTEXT_TOKENS})  {verdict}"
    )
    missed = valid > TARGET or fixed > TARGET or context.tokens > CONTEXT_TOKENS
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
