"""Client CPU to build one agent turn's request, by runner family and episode length.

Each turn of an agent episode sends the whole conversation so far; a native runner
translates it from OpenAI's chat form to its wire format (tool calls, tool answers, the
provider items it sends back verbatim) and the orchestrator hashes it for the cache key.
This measures that work alone, per turn, at turns ``--turns`` of an episode:

1. An episode of ``max(--turns)`` steps runs against each family's fake server (in this
   process, thinking on, ``--thinking-words`` words of reasoning a turn) through
   ``tasks.agent.run_agent``; every turn's ``Request`` is kept.
2. For the requests at each turn count: ``runner.body`` (the translation), ``orjson.dumps``
   of the body (what the transport sends) and ``Request.cache_key``, repeated ``--reps``
   times; CPU time (``time.process_time``), median of ``--repeats``.

    python bench/agent_turn_cpu.py [--turns 10,30,50] [--reps 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals.fake_anthropic import FakeAnthropic  # noqa: E402
from evals.fake_gemini import FakeGemini  # noqa: E402
from evals.fake_openai import FakeServer  # noqa: E402
from evals.fake_responses import FakeResponses  # noqa: E402
from evals.runner import Request, make_runner  # noqa: E402
from tasks.agent import AgentLimits, run_agent  # noqa: E402

FAMILIES = {  # model, fake server, compute, how a request counts its tool answers
    "openai": ("openai/fake-model", FakeServer, {},
               lambda b: sum(m["role"] == "tool" for m in b["messages"])),
    "openai-responses": ("openai-responses/o3", FakeResponses, {"effort": "high"},
                         lambda b: len(FakeResponses.tool_results(b))),
    "anthropic": ("anthropic/claude-sonnet-4-5", FakeAnthropic, {"thinking_budget": 2048},
                  lambda b: len(FakeAnthropic.tool_results(b))),
    "google": ("google/gemini-3-flash-preview", FakeGemini, {"effort": "low"},
               lambda b: len(FakeGemini.tool_results(b))),
}
OUTPUT = "\n".join(f"line {i}: some output of the command" for i in range(40))


class Shell:
    async def run(self, command: str, timeout: float) -> tuple[int | None, str]:
        return 0, OUTPUT


def script(answered, steps: int, thinking: str):
    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        done = answered(body)
        call = {"name": "bash", "arguments": {"command": f"grep -n thing file{done}.py"}} \
            if done < steps - 1 else {"name": "submit", "arguments": {}}
        return {"content": f"step {done}", "reasoning_content": thinking, "tool_calls": [call]}
    return reply


async def episode(family: str, steps: int, thinking: str) -> tuple[Any, list[Request]]:
    model, server, compute, answered = FAMILIES[family]
    asked: list[Request] = []
    with server(script=script(answered, steps, thinking), record=False) as srv:
        runner = make_runner(model, base_url=srv.url)

        async def generate(request: Request):
            # the loop appends to one history list: keep this turn's conversation as sent
            asked.append(replace(request, messages=list(request.messages)))
            return await runner.generate(request)

        trajectory = await run_agent(generate, [{"role": "user", "content": "Fix the bug."}],
                                     Shell(), AgentLimits(max_steps=steps),
                                     request=Request([], **compute))
        await runner.aclose()
    assert trajectory.stop == "submitted", (family, trajectory.stop, trajectory.error)
    return runner, asked


def per_turn(runner: Any, request: Request, reps: int, repeats: int) -> tuple[float, int]:
    """Median CPU ms to build, serialise and key one request; and its body's bytes."""
    def build() -> bytes:
        body = runner.body(request, 1, None) if runner.model.startswith("google/") \
            else runner.body(request, 1) if runner.model.startswith("openai/") \
            else runner.body(request)
        body = body[0] if isinstance(body, tuple) else body  # anthropic: (body, applied)
        request.cache_key(runner.model)
        return orjson.dumps(body)
    size = len(build())
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(reps):
            build()
        times.append((time.process_time() - start) / reps * 1000)
    return statistics.median(times), size


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--turns", default="10,30,50")
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--thinking-words", type=int, default=200)
    a = p.parse_args(argv)
    turns = [int(t) for t in a.turns.split(",")]
    thinking = " ".join(f"thought{i}" for i in range(a.thinking_words))
    print("| runner | " + " | ".join(f"turn {t}: CPU ms (body KB)" for t in turns) + " |")
    print("|---|" + "---|" * len(turns))
    for family in FAMILIES:
        runner, asked = asyncio.run(episode(family, max(turns), thinking))
        cells = []
        for t in turns:
            ms, size = per_turn(runner, asked[t - 1], a.reps, a.repeats)
            cells.append(f"{ms:.3f} ({size / 1024:.0f})")
        print(f"| `{family}/` | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
