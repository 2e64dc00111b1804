"""Client CPU per call for the native provider wire formats: evals' runners against the
official SDKs (openai's Responses client, anthropic, google-genai).

Method as in ``bench/transport_cpu.py`` (whose client loop this reuses): each provider's
fake server (evals.fake_responses / fake_anthropic / fake_gemini, 0 ms latency) runs as
its own process; each client runs in a fresh child process that makes ``--warmup``
untimed calls, then ``--calls`` calls with ``--concurrency`` in flight, and reports its
own CPU time (user + sys, all threads) over the timed calls. Median of ``--repeats``.

Clients (each reads the answer's text):

* ``responses-runner`` / ``responses-sdk``: ``openai-responses/`` vs
  ``openai.AsyncOpenAI().responses.create``;
* ``anthropic-runner`` / ``anthropic-sdk``: ``anthropic/`` vs
  ``anthropic.AsyncAnthropic().messages.create``;
* ``google-runner`` / ``google-sdk``: ``google/`` vs
  ``google.genai.Client().aio.models.generate_content``.

An SDK that is not installed is skipped (``pip install anthropic google-genai``).

    python bench/provider_cpu.py [--calls 2000] [--concurrency 1,50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from transport_cpu import Skip, client_main, markdown_table, run_client  # noqa: E402

PROMPT = ("Compute (865 + 395) * 7. Think step by step if you need to, then give the final "
          "line as 'ANSWER: <integer>'.")
MESSAGES = [{"role": "user", "content": PROMPT}]
SERVERS = {"responses": "evals.fake_responses:FakeResponses",
           "anthropic": "evals.fake_anthropic:FakeAnthropic",
           "google": "evals.fake_gemini:FakeGemini"}
RUNNERS = {"responses": "openai-responses/o3", "anthropic": "anthropic/claude-sonnet-4-5",
           "google": "google/gemini-2.5-flash"}
MODES = tuple(f"{p}-{kind}" for p in SERVERS for kind in ("runner", "sdk"))
REPLY = {"content": "1260 * 7 = 8820\nANSWER: 8820", "reasoning_content": "add then multiply"}


async def make_client(mode: str, url: str):
    provider, _, kind = mode.rpartition("-")
    if kind == "runner":
        from evals.runner import Request
        from runners.anthropic import make_runner as anthropic_runner
        from runners.google import make_runner as google_runner
        from runners.openai_responses import make_runner as responses_runner

        factory = {"responses": responses_runner, "anthropic": anthropic_runner,
                   "google": google_runner}[provider]
        runner = factory(RUNNERS[provider].split("/", 1)[1], base_url=url, api_key="dummy")
        request = Request(MESSAGES, max_tokens=2048,
                          thinking_budget=1024 if provider == "anthropic" else None)

        async def runner_call() -> str:
            return (await runner.generate(request)).completions[0].text

        return runner_call, runner.aclose
    try:
        if provider == "responses":
            import openai

            client = openai.AsyncOpenAI(base_url=url, api_key="dummy", max_retries=0)

            async def call() -> str:
                out = await client.responses.create(model="o3", input=MESSAGES,
                                                    max_output_tokens=1024,
                                                    reasoning={"summary": "auto"})
                return out.output_text
            return call, client.close
        if provider == "anthropic":
            import anthropic

            client = anthropic.AsyncAnthropic(base_url=url, api_key="dummy", max_retries=0)

            async def call() -> str:
                out = await client.messages.create(
                    model="claude-sonnet-4-5", max_tokens=2048, messages=MESSAGES,
                    thinking={"type": "enabled", "budget_tokens": 1024})
                return "".join(b.text for b in out.content if b.type == "text")
            return call, client.close
        from google import genai
        from google.genai import types

        client = genai.Client(api_key="dummy", http_options=types.HttpOptions(base_url=url))
        config = types.GenerateContentConfig(
            max_output_tokens=1024, thinking_config=types.ThinkingConfig(include_thoughts=True))

        async def call() -> str:
            out = await client.aio.models.generate_content(model="gemini-2.5-flash",
                                                           contents=PROMPT, config=config)
            return out.text or ""

        async def close() -> None:
            await client.aio.aclose()
        return call, close
    except ImportError as e:
        raise Skip(f"{e.name} is not installed") from None


def start_server(provider: str) -> tuple[subprocess.Popen, str]:
    module, _, cls = SERVERS[provider].partition(":")
    code = (f"from {module} import {cls}; {cls}(default={REPLY!r}, record=False)"
            ".serve_until_signal()")
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert server.stdout is not None
    return server, server.stdout.readline().strip().removeprefix("listening on ")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="CPU per call, native wire formats.")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--concurrency", default="1,50")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--client", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.client:
        try:
            report: dict[str, Any] = asyncio.run(client_main(
                a.client, a.url, a.calls, int(a.concurrency), a.warmup, make=make_client))
        except Skip as e:
            report = {"skip": str(e)}
        print(json.dumps(report), flush=True)
        return

    levels = [int(c) for c in a.concurrency.split(",")]
    modes = [m for m in a.modes.split(",") if m]
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; {a.calls} timed calls "
          f"after {a.warmup} warm-up, median of {a.repeats}", flush=True)
    results: dict[tuple[str, int], str] = {}
    for provider in SERVERS:
        mine = [m for m in modes if m.startswith(provider + "-")]
        if not mine:
            continue
        server, url = start_server(provider)
        try:
            for mode in mine:
                for level in levels:
                    cpus = []
                    for _ in range(a.repeats):
                        report = run_client(mode, url, a.calls, level, a.warmup,
                                            script=__file__)
                        if isinstance(report, str):
                            results[(mode, level)] = f"skipped: {report}"
                            break
                        cpus.append(report["cpu_s"] / a.calls * 1000)
                    if cpus:
                        results[(mode, level)] = f"{statistics.median(cpus):.3f}"
                        print(f"  {mode:18} {level:3} in flight: CPU {results[(mode, level)]} "
                              f"ms/call (runs: {', '.join(f'{c:.3f}' for c in cpus)})", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(markdown_table(modes, levels, lambda mode, level: results.get((mode, level), "")))


if __name__ == "__main__":
    main()
