"""Client CPU per chat completion: the openai SDK's transports against plain aiohttp and ours.

Method
------
The fake server (``bench/timed_server.py``, 0 ms latency) runs as its own process. Each
client below runs in a fresh child process (``--client MODE``) that builds its client,
makes ``--warmup`` untimed calls (connections, lazy imports, first-call set-up), then
makes ``--calls`` calls with ``--concurrency`` of them in flight (a pool of workers), and
reports its own CPU time (``getrusage(RUSAGE_SELF)``, user + sys, all threads) and wall
time over the timed calls only. The driver checks that the server served every call and
reports the median over ``--repeats`` children, in CPU milliseconds per call.

Clients (each reads the reply text, as a harness would):

* ``sdk``: ``openai.AsyncOpenAI`` with its default transport (httpx);
* ``sdk-aiohttp``: ``AsyncOpenAI(http_client=openai.DefaultAioHttpClient())``, the SDK's
  aiohttp transport (skipped if this openai version lacks it or aiohttp support);
* ``aiohttp``: one ``aiohttp.ClientSession``, ``orjson.dumps`` body, ``orjson.loads`` reply;
* ``runner-http`` / ``runner-sdk``: ``evals``' ``openai/`` runner
  (``runners.openai_api.OpenAIRunner``) with ``transport="http"`` / ``"sdk"``, through
  ``make_runner`` and ``await runner.generate(Request(...))``.

Usage (from the repository root; prints a Markdown table)::

    python bench/transport_cpu.py [--calls 3000] [--concurrency 1,50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODES = ("sdk", "sdk-aiohttp", "aiohttp", "runner-http", "runner-sdk")
PROMPT = ("Compute (865 + 395) * 7. Think step by step if you need to, then give the final "
          "line as 'ANSWER: <integer>'.")
MESSAGES = [{"role": "user", "content": PROMPT}]

Call = Callable[[], Awaitable[str]]


class Skip(Exception):
    """This client cannot be built here (missing package or feature)."""


async def make_client(mode: str, url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """A zero-argument coroutine that makes one call and returns the text, and a closer."""
    if mode in ("sdk", "sdk-aiohttp"):
        import openai

        kwargs: dict[str, Any] = {}
        if mode == "sdk-aiohttp":
            if not hasattr(openai, "DefaultAioHttpClient"):
                raise Skip(f"openai {openai.__version__} has no DefaultAioHttpClient")
            try:
                kwargs["http_client"] = openai.DefaultAioHttpClient()
            except Exception as e:  # noqa: BLE001 - raised when openai[aiohttp] is missing
                raise Skip(f"DefaultAioHttpClient unavailable: {e}") from None
        client = openai.AsyncOpenAI(base_url=url, api_key="dummy", max_retries=0, **kwargs)

        async def sdk_call() -> str:
            result = await client.chat.completions.create(model="fake-model", messages=MESSAGES)
            return result.choices[0].message.content or ""

        return sdk_call, client.close

    if mode == "aiohttp":
        import aiohttp
        import orjson

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            headers={"Authorization": "Bearer dummy", "Content-Type": "application/json"})
        endpoint = url + "/chat/completions"
        body = {"model": "fake-model", "messages": MESSAGES}

        async def aiohttp_call() -> str:
            async with session.post(endpoint, data=orjson.dumps(body)) as resp:
                raw = await resp.read()
            return orjson.loads(raw)["choices"][0]["message"]["content"]

        return aiohttp_call, session.close

    if mode in ("runner-http", "runner-sdk"):
        sys.path.insert(0, str(REPO))
        from evals.runner import Request, make_runner

        runner = make_runner("openai/fake-model", base_url=url, api_key="dummy",
                             transport=mode.removeprefix("runner-"))

        async def runner_call() -> str:
            response = await runner.generate(Request(messages=MESSAGES))
            return response.completions[0].text

        return runner_call, runner.aclose

    raise ValueError(f"unknown client {mode!r}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def client_main(mode: str, url: str, calls: int, concurrency: int, warmup: int,
                      make: Callable[[str, str], Awaitable[tuple[Call, Any]]] | None = None
                      ) -> dict[str, Any]:
    """``make``: the client factory (bench/provider_cpu.py passes its own)."""
    call, close = await (make or make_client)(mode, url)

    async def pool(total: int) -> None:
        remaining = iter(range(total))

        async def worker() -> None:
            for _ in remaining:  # shared iterator: each call made once
                text = await call()
                assert text, "empty reply"

        await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))

    await pool(warmup)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    await pool(calls)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    await close()
    return {"cpu_s": cpu, "wall_s": wall}


def run_client(mode: str, url: str, calls: int, concurrency: int, warmup: int,
               script: str = __file__) -> dict[str, Any] | str:
    """One child process (``script --client MODE``); returns its report or why it skipped."""
    out = subprocess.run(
        [sys.executable, script, "--client", mode, "--url", url, "--calls", str(calls),
         "--concurrency", str(concurrency), "--warmup", str(warmup)],
        capture_output=True, text=True, cwd=REPO, check=False)
    last = (out.stdout.strip().splitlines() or [""])[-1]
    if out.returncode != 0 or not last.startswith("{"):
        raise RuntimeError(f"client {mode} failed:\n{out.stdout}\n{out.stderr}")
    report = json.loads(last)
    return report.get("skip") or report


def markdown_table(modes: list[str], levels: list[int], cell: Callable[[str, int], str]) -> str:
    """Clients down, concurrency levels across: the table bench/README.md quotes."""
    lines = ["\n| client | " + " | ".join(f"CPU ms/call, {c} in flight" for c in levels) + " |",
             "|---" * (len(levels) + 1) + "|"]
    lines += [f"| {mode} | " + " | ".join(cell(mode, level) for level in levels) + " |"
              for mode in modes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="CPU per chat completion, by client transport.")
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--concurrency", default="1,50", help="comma-separated; one column each")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--client", choices=MODES, help=argparse.SUPPRESS)  # child process role
    p.add_argument("--url", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.client:  # the child: measure one client, print one JSON line
        try:
            report = asyncio.run(client_main(a.client, a.url, a.calls, int(a.concurrency), a.warmup))
        except Skip as e:
            report = {"skip": str(e)}
        print(json.dumps(report), flush=True)
        return

    sys.path.insert(0, str(REPO / "bench"))
    from timed_server import TimedServer  # noqa: F401  (fails early if the server cannot import)

    levels = [int(c) for c in a.concurrency.split(",")]
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    import aiohttp
    import openai
    print(f"openai {openai.__version__}, aiohttp {aiohttp.__version__}, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cores; {a.calls} timed calls after "
          f"{a.warmup} warm-up, median of {a.repeats}", flush=True)

    server = subprocess.Popen([sys.executable, str(REPO / "bench" / "timed_server.py"), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert server.stdout is not None
    url = server.stdout.readline().strip().removeprefix("listening on ")
    results: dict[tuple[str, int], tuple[float, float] | str] = {}
    try:
        import urllib.request
        root = url.removesuffix("/v1")
        for mode in modes:
            for level in levels:
                cpus, walls = [], []
                for _ in range(a.repeats):
                    urllib.request.urlopen(urllib.request.Request(root + "/stats/reset", method="POST",
                                                                  data=b""), timeout=10).read()
                    report = run_client(mode, url, a.calls, level, a.warmup)
                    if isinstance(report, str):
                        results[(mode, level)] = report
                        break
                    served = json.loads(urllib.request.urlopen(root + "/stats", timeout=10).read())
                    if served["count"] != a.calls + a.warmup:
                        raise RuntimeError(f"{mode}: server served {served['count']} requests, "
                                           f"expected {a.calls + a.warmup}")
                    cpus.append(report["cpu_s"] / a.calls * 1000)
                    walls.append(report["wall_s"] / a.calls * 1000)
                if cpus:
                    results[(mode, level)] = (statistics.median(cpus), statistics.median(walls))
                    print(f"  {mode:12} concurrency {level:3}: CPU {statistics.median(cpus):.3f} ms/call "
                          f"(runs: {', '.join(f'{c:.3f}' for c in cpus)}), wall "
                          f"{statistics.median(walls):.3f} ms/call", flush=True)
                else:
                    print(f"  {mode:12} skipped: {results[(mode, level)]}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)

    def cell(mode: str, level: int) -> str:
        got = results.get((mode, level))
        return str(got if isinstance(got, str) or got is None else f"{got[0]:.3f}")
    print(markdown_table(modes, levels, cell))


if __name__ == "__main__":
    main()
