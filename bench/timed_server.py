"""The fake OpenAI-compatible server, plus request-phase timing, for the benchmarks.

``evals.fake_openai.FakeServer`` already counts requests and the most it saw in flight.
This subclass also stamps, with ``time.time()``, the arrival of the first chat request
and the completion of the last one (the moment its handler returns the response), and
exposes them over HTTP so that a benchmark driver in another process can read them::

    GET  /stats        -> {"count", "max_in_flight", "in_flight",
                           "first_request_at", "last_response_at",   (null before any request)
                           "cpu_s"}   (this server process's CPU seconds since the last reset)
    POST /stats/reset  -> zeroes the counters and the two stamps; answers the stats before reset

``--answers FILE`` (JSONL with ``input`` and ``target``) makes the server answer each
prompt with ``ANSWER: <target>``, so every harness should score 100% on the benchmark
samples: a check that each harness sent the prompt unchanged and scored the reply.
Anything else gets ``--reply`` (default ``ANSWER: 42``).

Run it as its own process (the harness being measured must not share its CPU time)::

    python bench/timed_server.py --port 0 --latency 0.2 [--answers FILE]

It prints ``listening on http://127.0.0.1:PORT/v1`` once the port is bound and serves
until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from evals.fake_openai import FakeServer


class TimedServer(FakeServer):
    """FakeServer with first-arrival / last-completion stamps and /stats routes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_request_at: float | None = None
        self.last_response_at: float | None = None
        self.cpu_at_reset = time.process_time()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.first_request_at is None:
            self.first_request_at = time.time()
        try:
            return await super()._chat(request)
        finally:
            self.last_response_at = time.time()

    def stats(self) -> dict[str, Any]:
        return {"count": self.count, "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight, "first_request_at": self.first_request_at,
                "last_response_at": self.last_response_at,
                "cpu_s": time.process_time() - self.cpu_at_reset}

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    async def _reset_stats(self, request: web.Request) -> web.Response:
        before = self.stats()
        self.count = self.max_in_flight = 0
        self.first_request_at = self.last_response_at = None
        self.cpu_at_reset = time.process_time()
        self.requests.clear()
        return web.Response(body=orjson.dumps(before), content_type="application/json")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/stats", self._get_stats)
        app.router.add_post("/stats/reset", self._reset_stats)


def load_answers(path: Path) -> dict[str, str]:
    """prompt -> "ANSWER: target" from a JSONL file of {"input", "target"} lines."""
    answers = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            row = orjson.loads(line)
            answers[row["input"]] = f"ANSWER: {row['target']}"
    return answers


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    p.add_argument("--reply", default="ANSWER: 42", help="answer to prompts not in --answers")
    p.add_argument("--answers", type=Path, help="JSONL of {input, target}: answer correctly")
    a = p.parse_args(argv)
    script = load_answers(a.answers) if a.answers else None
    TimedServer(script=script, default=a.reply, latency=a.latency, host=a.host,
                port=a.port, record=False).serve_until_signal()


if __name__ == "__main__":
    main()
